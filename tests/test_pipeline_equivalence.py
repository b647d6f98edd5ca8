"""One analysis, four commands: audit, report --flows, run --flows (+ report --store) and demo agree.

Each command drives the same `AnalysisSession`; this runs all of them on the same inputs and
compares the findings (key, count, severity, first/last seen, policies), the flows by verdict and
the hourly counters.  The daemon flushes every few events, so flush boundaries are part of the test.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import pytest

from auditor.app.audit import AuditOptions, AuditResult, run_audit
from auditor.app.demo import DEMO_FLAGS, DemoOptions, demo_files, run_demo
from auditor.app.report import ReportOptions, run_report
from auditor.model.delta import policy_column
from auditor.model.findings import Finding
from auditor.store import Store, open_store
from tests.daemon_support import build

ROOT = Path(__file__).parent
REAL = sorted((ROOT / "fixtures" / "real-flows").glob("*.jsonl"))
REAL_MANIFESTS = ROOT / "fixtures" / "scenarios" / "real-dns" / "manifests.yaml"
FLUSH_EVERY = 37
"""Events between the daemon's flushes in this test (a prime, so flushes fall mid-burst)."""

FindingFacts = dict[tuple[object, ...], tuple[object, ...]]
HourRows = Counter[tuple[int, str, str, str, str]]


def facts(findings: list[Finding] | tuple[Finding, ...]) -> FindingFacts:
    """What must agree of each finding, by its key."""
    return {(f.kind.value, f.key.as_string()): (f.count, f.severity.value, f.first_seen_ns, f.last_seen_ns,
                                                 f.policies, f.peer) for f in findings}


def audit_hours(result: AuditResult) -> HourRows:
    rows: HourRows = Counter()
    for row in result.counts:
        rows[(row.hour_ns, row.namespace, row.verdict, row.direction,
              policy_column(row.policy) if row.policy else "")] += row.count
    return rows


def store_hours(store: Store) -> HourRows:
    rows: HourRows = Counter()
    for row in store.counts(0, 2**62, ("hour", "namespace", "verdict", "direction", "policy")):
        rows[(row.hour_ns, row.namespace, row.verdict, row.direction, row.policy)] += row.count
    return rows


def run_daemon(tmp_path: Path, manifests: str, flows: list[str], flags: list[str]) -> str:
    """`auditor run --flows` analysed event by event with a flush every FLUSH_EVERY events; the store URL."""
    url = f"sqlite:{tmp_path / 'auditor.db'}"
    daemon = build(tmp_path, ["--manifests", manifests, "--flows", *flows, *flags])
    try:
        for index, event in enumerate(daemon.source.events(), start=1):
            daemon.analyzer.handle(event)
            if index % FLUSH_EVERY == 0:
                daemon.analyzer.flush()
        daemon.analyzer.flush()
    finally:
        daemon.store.close()
    return url


def cases() -> list[tuple[str, str, list[str]]]:
    manifests, flows = demo_files()
    return [("demo", manifests, [flows]), *((f"real/{p.name}", str(REAL_MANIFESTS), [str(p)]) for p in REAL),
            ("real/all", str(REAL_MANIFESTS), [str(p) for p in REAL])]


@pytest.mark.parametrize(("name", "manifests", "flows"), cases(), ids=[c[0] for c in cases()])
def test_audit_report_run_and_report_store_agree(tmp_path: Path, name: str, manifests: str, flows: list[str]
                                                 ) -> None:
    """Findings, flows by verdict and hourly counters are the same whichever command analysed the flows."""
    node = name == "demo"
    audit = run_audit(AuditOptions(manifests=(manifests,), flows=tuple(flows), enforce_node_traffic=node))
    files = run_report(ReportOptions(format="json", flows=tuple(flows), manifests=(manifests,),
                                     enforce_node_traffic=node)).data
    url = run_daemon(tmp_path, manifests, flows, ["--enforce-node-traffic"] if node else [])
    stored = run_report(ReportOptions(format="json", store=url, manifests=(manifests,),
                                      enforce_node_traffic=node)).data
    with open_store(url) as store:
        in_store, hours = store.findings(), store_hours(store)
    expected = facts(audit.findings)
    assert expected
    assert facts(files.findings) == expected
    assert facts(in_store) == expected
    assert facts(stored.findings) == expected
    assert hours == audit_hours(audit)
    assert stored.completeness.flows == files.completeness.flows == audit.summary.flows


def test_demo_agrees_with_audit(tmp_path: Path) -> None:
    """`auditor demo` (the daemon over real gRPC) stores what `auditor audit` with its printed flags finds."""
    manifests, flows = demo_files()
    run_demo(DemoOptions(out=tmp_path, metrics_address="127.0.0.1:0"), io.StringIO())
    audit = run_audit(AuditOptions(manifests=(manifests,), flows=(flows,),
                                   enforce_node_traffic="--enforce-node-traffic" in DEMO_FLAGS))
    with open_store(f"sqlite:{tmp_path / 'auditor-demo.db'}") as store:
        assert facts(store.findings()) == facts(audit.findings)
        assert store_hours(store) == audit_hours(audit)
