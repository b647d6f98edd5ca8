"""Kubelet probes that reach a pod over the network, matched against ports."""

from __future__ import annotations

from auditor.model.k8s import Pod, Probe

PROBE_PROTOCOL = "TCP"
"""httpGet, tcpSocket and grpc probes all connect over TCP."""


def probe_port(pod: Pod, probe: Probe) -> int | None:
    """The numeric port a probe connects to (named ports resolved), None if the name is unknown.

    The kubelet (`findPortByName`) looks a probe's port name up among the ports of the probe's own
    container, by name only, so a name declared by two containers resolves to the probe
    container's port.  Without container information the pod's TCP ports are searched.
    """
    if isinstance(probe.port, int):
        return probe.port
    if probe.container and any(declared.container for declared in pod.container_ports):
        for declared in pod.container_ports:
            if declared.container == probe.container and declared.name == probe.port:
                return declared.port
        return None
    return pod.resolve_port(probe.port, PROBE_PROTOCOL)


def probes_on_port(pod: Pod, port: int, protocol: str) -> tuple[Probe, ...]:
    """The pod's probes that connect to `port`/`protocol`."""
    if protocol.upper() != PROBE_PROTOCOL or port <= 0:
        return ()
    return tuple(probe for probe in pod.probes if probe_port(pod, probe) == port)


def describe_probe(probe: Probe, port: int) -> str:
    """e.g. `readiness httpGet /healthz on port 8080 (named "http")`."""
    path = f" {probe.path}" if probe.path else ""
    named = f' (named "{probe.port}")' if isinstance(probe.port, str) else ""
    container = f" of container {probe.container}" if probe.container else ""
    return f"{probe.kind.value} {probe.handler}{path} on port {port}{named}{container}"


def readiness_change(at_flow: Pod, latest: Pod | None) -> tuple[str, bool]:
    """A sentence fragment about the pod's readiness, and True when it went from ready to not ready."""
    if latest is None:
        return "the pod no longer exists", False
    before, now = at_flow.ready, latest.ready
    if before is True and now is False:
        return "the pod was Ready at the drop and is not Ready now", True
    if before is not now and now is not None:
        state = "Ready" if now else "not Ready"
        return f"the pod's readiness changed since the drop (now {state})", False
    if now is None:
        return "the pod's readiness is unknown", False
    return f"the pod's readiness did not change ({'Ready' if now else 'not Ready'})", False
