"""Hand-built report inputs for the report tests (synthetic, labelled so)."""

from __future__ import annotations

from pathlib import Path

from auditor.model.findings import Finding, FindingKind, Severity
from auditor.model.k8s import (
    KubeObject,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Pod,
    PolicyDirection,
    WorkloadRef,
)
from auditor.policy.state import ClusterState
from auditor.report.build import ReportInputs, build_report
from auditor.report.data import Completeness, GapInfo, PolicyChange, ReportData

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "auditor" / "data" / "demo"
SCHEMA = ROOT / "docs" / "report-schema.json"
T0 = 1_763_632_800_000_000_000
"""2025-11-20T10:00:00Z."""
MINUTE = 60_000_000_000
HOSTILE_QUERY = "<img src=x onerror=alert(1)>.example."
HOSTILE_PEER = "<script>document.title='pwned'</script>"


def pod(ns: str, name: str, app: str) -> Pod:
    return Pod(ns, name, labels={"app": app}, ips=(f"10.0.{len(ns)}.{len(name)}",), node_name="node-1",
               workload=WorkloadRef("Deployment", app))


def deny_all(ns: str) -> NetworkPolicy:
    return NetworkPolicy(ns, "default-deny", LabelSelector(), (PolicyDirection.INGRESS, PolicyDirection.EGRESS),
                         resource_version="7")


def state(*objects: KubeObject) -> ClusterState:
    return ClusterState.build(objects)


def shop_state() -> ClusterState:
    """shop: two pods under a default deny; legacy: one pod, no policy."""
    return state(Namespace("shop"), Namespace("legacy"), pod("shop", "web-1", "web"), pod("shop", "db-1", "db"),
                 pod("legacy", "batch-1", "batch"), deny_all("shop"))


def completeness(flows: int = 10, lost: int = 0) -> Completeness:
    gaps = (GapInfo(T0 + MINUTE, T0 + MINUTE, "lost-events:hubble_ring_buffer", lost),) if lost else ()
    return Completeness(T0, T0 + 10 * MINUTE, 10 * MINUTE, lost, gaps, flows=flows)


def finding(kind: FindingKind, severity: Severity = Severity.MEDIUM, *, ns: str = "shop", workload: str = "web",
            peer: str = "legacy/batch", port: int = 5432, count: int = 1,
            details: tuple[tuple[str, str], ...] = (), policies: tuple[str, ...] = ("shop/default-deny@7",),
            message: str = "") -> Finding:
    return Finding(kind=kind, severity=severity, namespace=ns, workload=workload, pod=f"{workload}-1",
                   message=message or f"{kind.value} of {ns}/{workload}", peer=peer, peer_workload=peer,
                   port=port, protocol="TCP", direction="ingress", policies=policies, count=count,
                   first_seen_ns=T0 + MINUTE, last_seen_ns=T0 + 2 * MINUTE,
                   sample_flow="00000000-0000-4000-8000-000000000001", details=details)


def hostile_findings() -> list[Finding]:
    """A DNS denial whose query name is markup, and a drop from a peer whose name is a script."""
    return [
        finding(FindingKind.DNS_DENIED, Severity.HIGH, peer="kube-system/coredns", port=53,
                details=(("query", HOSTILE_QUERY), ("cause", "policy-drop")),
                message=f"DNS lookup of {HOSTILE_QUERY} was dropped | by policy"),
        finding(FindingKind.POLICY_DROP, Severity.LOW, peer=HOSTILE_PEER, count=12),
    ]


def report(findings: list[Finding] | None = None, st: ClusterState | None = None, **kw: object) -> ReportData:
    changes = kw.pop("changes", [PolicyChange(T0 + MINUTE, "MODIFIED", "shop", "default-deny", "7")])
    inputs = ReportInputs(findings=findings or [], completeness=completeness(), source="files",
                          source_detail="synthetic", state=st, changes=changes,  # type: ignore[arg-type]
                          flows_by_verdict={"DROPPED": 4, "FORWARDED": 6}, **kw)  # type: ignore[arg-type]
    return build_report(inputs)
