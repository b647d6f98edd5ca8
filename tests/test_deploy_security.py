"""Pod hardening of both modes: non-root, read-only root, no capabilities, seccomp, resources,
probes on the metrics port, and the volumes each mode needs (and nothing more)."""

from __future__ import annotations

import pytest

from tests.deploy_support import (
    METRICS_PORT,
    OVERLAYS,
    POSTGRES_OVERLAYS,
    RELAY_OVERLAYS,
    UID,
    Doc,
    container,
    env,
    one,
    pod_spec,
    render,
)

STORE = "/var/lib/auditor"
TLS_DIR = "/var/lib/auditor-tls"


_SUFFIXES = {"m": 0.001, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}


def _quantity(text: str) -> float:
    """A Kubernetes resource quantity (the suffixes these manifests use) as a number."""
    for suffix, factor in sorted(_SUFFIXES.items(), key=lambda item: -len(item[0])):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def _volumes(docs: list[Doc]) -> dict[str, Doc]:
    return {v["name"]: v for v in pod_spec(docs)["volumes"]}


def _mounts(docs: list[Doc]) -> dict[str, Doc]:
    return {m["name"]: m for m in container(docs)["volumeMounts"]}


class TestSecurityContext:
    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_pod_runs_as_numeric_non_root(self, overlay: str) -> None:
        """The pod runs as UID/GID 65532 with runAsNonRoot and seccomp RuntimeDefault."""
        ctx = pod_spec(render(overlay))["securityContext"]
        assert ctx["runAsNonRoot"] is True
        assert ctx["runAsUser"] == UID
        assert ctx["runAsGroup"] == UID
        assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}

    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_container_is_locked_down(self, overlay: str) -> None:
        """The container: read-only root, no privilege escalation, all capabilities dropped."""
        ctx = container(render(overlay))["securityContext"]
        assert ctx["readOnlyRootFilesystem"] is True
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["privileged"] is False
        assert ctx["runAsNonRoot"] is True
        assert ctx["runAsUser"] == UID
        assert ctx["capabilities"] == {"drop": ["ALL"]}
        assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}

    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_no_host_namespaces(self, overlay: str) -> None:
        """No host network, PID or IPC namespace: the pod stays under its NetworkPolicy."""
        spec = pod_spec(render(overlay))
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(key, False), key

    @pytest.mark.parametrize("overlay", RELAY_OVERLAYS)
    def test_relay_mode_has_no_extra_groups(self, overlay: str) -> None:
        """Relay mode needs no supplemental groups (nothing on the host to read)."""
        assert "supplementalGroups" not in pod_spec(render(overlay))["securityContext"]

    def test_node_mode_reads_socket_through_group_not_root(self) -> None:
        """Node mode gets the socket's group (0) as a supplemental group instead of running as root."""
        ctx = pod_spec(render("node"))["securityContext"]
        assert ctx["supplementalGroups"] == [0]
        assert ctx["runAsUser"] != 0

    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_service_links_disabled(self, overlay: str) -> None:
        """enableServiceLinks is off so no injected variables land in the AUDITOR_* namespace."""
        assert pod_spec(render(overlay))["enableServiceLinks"] is False

    @pytest.mark.parametrize(("overlay", "level"), [("relay", "restricted"), ("relay-tls", "restricted"),
                                                    ("node", "privileged")])
    def test_namespace_pod_security_level(self, overlay: str, level: str) -> None:
        """Relay mode enforces the restricted Pod Security Standard; node mode needs privileged (hostPath)."""
        labels = one(render(overlay), "Namespace")["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == level


class TestResourcesAndProbes:
    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_requests_and_limits_set(self, overlay: str) -> None:
        """CPU and memory have both a request and a limit, requests below limits."""
        resources = container(render(overlay))["resources"]
        for key in ("cpu", "memory"):
            request, limit = resources["requests"][key], resources["limits"][key]
            assert _quantity(request) < _quantity(limit), f"{key}: request {request} not below limit {limit}"

    @pytest.mark.parametrize("overlay", OVERLAYS)
    @pytest.mark.parametrize(("probe", "path"), [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")])
    def test_probes_hit_health_endpoints_on_metrics_port(self, overlay: str, probe: str, path: str) -> None:
        """Liveness probes /healthz and readiness /readyz over HTTP on the metrics port."""
        c = container(render(overlay))
        get = c[probe]["httpGet"]
        assert get["path"] == path
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports[get["port"]] == METRICS_PORT

    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_metrics_listens_on_the_probed_port(self, overlay: str) -> None:
        """The daemon's metrics address is the port the probes and the Service use."""
        assert env(render(overlay))["AUDITOR_METRICS_ADDRESS"]["value"] == f"0.0.0.0:{METRICS_PORT}"


class TestVolumes:
    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_store_is_the_only_writable_mount(self, overlay: str) -> None:
        """The store volume (the claim in relay mode, an emptyDir per node pod) is the only writable mount."""
        docs = render(overlay)
        writable = [m["mountPath"] for m in _mounts(docs).values() if not m.get("readOnly", False)]
        assert writable == [STORE]
        assert {"persistentVolumeClaim", "emptyDir"} & set(_volumes(docs)["store"])
        store = env(docs)["AUDITOR_STORE"]
        if overlay in POSTGRES_OVERLAYS:  # the database URL comes from the Secret
            assert store["valueFrom"]["secretKeyRef"] == {"name": "auditor-store", "key": "url"}
        else:
            assert store["value"] == f"sqlite://{STORE}/auditor.db"

    @pytest.mark.parametrize(("overlay", "optional"), [("relay", True), ("relay-tls", False)])
    def test_relay_tls_secret_mount(self, overlay: str, optional: bool) -> None:
        """The Relay client-cert secret is mounted read-only; optional unless TLS is on."""
        docs = render(overlay)
        secret = _volumes(docs)["hubble-relay-client-certs"]["secret"]
        assert secret["secretName"] == "hubble-relay-client-certs"
        assert secret["optional"] is optional
        mount = _mounts(docs)["hubble-relay-client-certs"]
        assert mount == {"name": "hubble-relay-client-certs", "mountPath": TLS_DIR, "readOnly": True}

    def test_node_mode_mounts_cilium_run_read_only(self) -> None:
        """Node mode mounts the host's /var/run/cilium directory read-only, nothing else from the host."""
        docs = render("node")
        host = {name: v["hostPath"] for name, v in _volumes(docs).items() if "hostPath" in v}
        assert host == {"cilium-run": {"path": "/var/run/cilium", "type": "Directory"}}
        assert _mounts(docs)["cilium-run"] == {"name": "cilium-run", "mountPath": "/var/run/cilium",
                                               "readOnly": True}

    @pytest.mark.parametrize("overlay", RELAY_OVERLAYS)
    def test_relay_mode_has_no_host_paths(self, overlay: str) -> None:
        """Relay mode touches nothing on the host."""
        assert not [v for v in _volumes(render(overlay)).values() if "hostPath" in v]


class TestHubbleSource:
    def test_relay_reads_relay_service_plaintext(self) -> None:
        """Relay mode reads Hubble Relay's Service on port 80 without TLS."""
        variables = env(render("relay"))
        assert variables["AUDITOR_HUBBLE_SERVER"]["value"] == "hubble-relay.kube-system.svc:80"
        assert "AUDITOR_TLS" not in variables

    def test_relay_tls_uses_mounted_certs_and_relay_server_name(self) -> None:
        """relay-tls reads port 443 with TLS, the mounted CA and client pair, and Relay's cert name."""
        variables = {k: v["value"] for k, v in env(render("relay-tls")).items()}
        assert variables["AUDITOR_HUBBLE_SERVER"] == "hubble-relay.kube-system.svc:443"
        assert variables["AUDITOR_TLS"] == "true"
        assert variables["AUDITOR_TLS_CA_CERT_FILES"] == f"{TLS_DIR}/ca.crt"
        assert variables["AUDITOR_TLS_CLIENT_CERT_FILE"] == f"{TLS_DIR}/tls.crt"
        assert variables["AUDITOR_TLS_CLIENT_KEY_FILE"] == f"{TLS_DIR}/tls.key"
        assert variables["AUDITOR_TLS_SERVER_NAME"] == "instance.hubble-relay.cilium.io"

    def test_node_reads_local_socket_and_filters_own_node(self) -> None:
        """Node mode reads the node's Hubble socket and gets its node name from the downward API."""
        variables = env(render("node"))
        assert variables["AUDITOR_HUBBLE_SERVER"]["value"] == "unix:///var/run/cilium/hubble.sock"
        assert variables["AUDITOR_NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
