"""Connections from a daemon's store, for `auditor whatif --store` and `auditor recommend --store`.

The store keeps findings, not flows: one finding per (kind, namespace, workload, peer workload,
port, protocol, direction) with a sample pod and peer, counts and first/last seen.  Each runtime
finding that names a connection becomes one `Observation`: its sample pod and sample peer are
resolved (`findings.resolve.resolve_endpoint`, as for a flow) in the state in force at its last
sighting.  What the store cannot give is said in the notes: connections the policies admitted as
expected leave no finding, so they are not there.
"""

from __future__ import annotations

import ipaddress

from auditor.findings.connections import CollectStats, ConnectionKey, Observation
from auditor.findings.resolve import Resolved, resolve_endpoint
from auditor.model.findings import Finding, FindingKind
from auditor.model.flows import Endpoint
from auditor.policy.history import ClusterHistory
from auditor.store import open_store

Collected = tuple[list[Observation], CollectStats, str, tuple[str, ...]]
"""Observations, their stats, where they came from, and notes on what the source cannot hold."""

OBSERVED = {
    FindingKind.POLICY_DROP: "denied", FindingKind.UNEXPECTED_DROP: "denied", FindingKind.DNS_DENIED: "denied",
    FindingKind.HEALTH_CHECK_BLOCKED: "denied", FindingKind.UNEXPECTED_ALLOW: "allowed",
    FindingKind.UNPROTECTED_POD: "allowed",
}
"""Runtime finding kinds that stand for a connection, and the dataplane's verdict on it."""
STORE_NOTE = ("store: only connections the daemon kept as findings (policy drops, unprotected pods, "
              "unexpected allows and drops, DNS and health-check denials) are judged; connections the "
              "current policies admitted as expected leave no finding, so what the change would newly deny "
              "among them is not seen. Judge recorded flow files (auditor record --out) for the whole picture.")
_PROTOCOLS = {"ICMPv4": "ICMP"}


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def peer_endpoint(finding: Finding) -> tuple[Endpoint, str]:
    """The finding's sample peer as a flow endpoint, and the node name for `reserved:host`."""
    peer, aggregate = finding.peer, finding.peer_workload
    if peer.startswith("reserved:"):
        identity, _, node = peer[len("reserved:"):].partition(" (")
        return Endpoint(labels=(f"reserved:{identity}",)), node.rstrip(")")
    if _is_ip(peer):
        labels = (aggregate,) if aggregate.startswith("cidr:") else ()
        if aggregate.startswith("reserved:") and aggregate != "reserved:world":
            labels = (aggregate,)
        return Endpoint(ip=peer, labels=labels), ""
    namespace, _, name = peer.partition("/")
    return Endpoint(namespace=namespace, pod_name=name), ""


def observation_of(finding: Finding, history: ClusterHistory) -> Observation | None:
    """The connection a runtime finding stands for; None when it names none or does not resolve."""
    observed = OBSERVED.get(finding.kind)
    if observed is None or not finding.pod or not finding.peer:
        return None
    state = history.at(finding.last_seen_ns)
    own = resolve_endpoint(Endpoint(namespace=finding.namespace, pod_name=finding.pod), "", state)
    endpoint, node = peer_endpoint(finding)
    other = resolve_endpoint(endpoint, node, state)
    if own.subject is None or other.subject is None:
        return None
    src, dst = (other, own) if finding.direction == "ingress" else (own, other)
    protocol = _PROTOCOLS.get(finding.protocol, finding.protocol)
    key = ConnectionKey(_name(src), _name(dst), finding.port, protocol)
    return Observation(key, state, src, dst, finding.port, protocol, observed, count=finding.count,
                       first_ns=finding.first_seen_ns, last_ns=finding.last_seen_ns, sample=finding.sample_flow)


def _name(resolved: Resolved) -> str:
    return resolved.peer_workload


def collect_store(history: ClusterHistory, url: str, from_ns: int | None, to_ns: int | None) -> Collected:
    """One observation per connection the store's runtime findings name (the largest count per key)."""
    # Imported here: app.report imports this module (for its whatif section).
    from auditor.app.report import _require_existing_store

    _require_existing_store(url)
    with open_store(url) as store:
        findings = store.findings(since_ns=from_ns, until_ns=to_ns)
    stats = CollectStats()
    kept: dict[tuple[ConnectionKey, str], Observation] = {}
    for finding in findings:
        if finding.kind.is_static:
            continue
        observation = observation_of(finding, history)
        if observation is None:
            stats.unresolved += finding.count if finding.kind in OBSERVED else 0
            continue
        stats.flows += observation.count
        stats.judged += observation.count
        if not stats.first_ns or observation.first_ns < stats.first_ns:
            stats.first_ns = observation.first_ns
        stats.last_ns = max(stats.last_ns, observation.last_ns)
        slot = (observation.key, observation.observed)
        if slot not in kept or kept[slot].count < observation.count:
            kept[slot] = observation
    observations = sorted(kept.values(), key=lambda o: (o.key, o.first_ns))
    return observations, stats, f"store {url}", (STORE_NOTE,)
