"""The policy kind carried from the correlator's counters into the store, the report and rule usage.

A CiliumNetworkPolicy (shop/api-in), a CiliumClusterwideNetworkPolicy with a deny rule (no-worker)
and a Kubernetes NetworkPolicy (shop/web-out) decide synthetic flows through the real engine.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from auditor.app.analysis import Analyzer
from auditor.cli import main
from auditor.findings.correlate import Correlator
from auditor.model.cilium import CiliumKind, CiliumNetworkPolicy, CiliumPolicySpec, CiliumRule
from auditor.model.decision import CCNP_KIND, CNP_KIND, PolicyId
from auditor.model.flows import Direction, EventType, Flow
from auditor.model.k8s import Peer, PolicyDirection, Rule
from auditor.model.labels import LabelSelector
from auditor.policy.engine import PolicyEngine
from auditor.policy.history import ClusterHistory
from auditor.policy.state import ClusterState
from auditor.report.usage import RuleUsageRecorder
from auditor.store import open_store
from tests.findings_support import API, T0, WEB, drop, ep, flow, inventory, pod, policy, select

SCENARIO = Path(__file__).parent / "fixtures" / "scenarios" / "policy-drop"
WORKER = pod("worker-1", "10.0.0.3")
OTHER = pod("other-1", "10.0.0.4")


def app(name: str) -> LabelSelector:
    return LabelSelector(match_labels={"app": name})


CNP = CiliumNetworkPolicy(CiliumKind.CNP, "api-in", "shop", resource_version="3", specs=(
    CiliumPolicySpec(endpoint_selector=app("api"), ingress=(CiliumRule(endpoints=(app("web"),)),)),))
CCNP = CiliumNetworkPolicy(CiliumKind.CCNP, "no-worker", specs=(
    CiliumPolicySpec(endpoint_selector=app("api"), ingress_deny=(CiliumRule(endpoints=(app("worker"),)),)),))
KNP = policy("web-out", app="web", types=(PolicyDirection.EGRESS,),
             egress=(Rule(peers=(Peer(pod_selector=select(app="api")),)),))


def history() -> ClusterHistory:
    return ClusterHistory(initial=ClusterState.build(inventory(WEB, API, WORKER, OTHER, CNP, CCNP, KNP)))


def flows() -> list[Flow]:
    """web -> api seen at api's ingress (CNP allows) and at web's egress (KNP allows); worker -> api
    denied by the CCNP's deny rule; other -> api isolated by both Cilium policies (the CCNP, namespace
    "", is the primary one)."""
    return [
        flow(ep(WEB, 40000), ep(API, 8080)),
        flow(ep(WEB, 40001), ep(API, 8080), direction=Direction.EGRESS, event=EventType.POLICY_VERDICT),
        drop(ep(WORKER, 40000), ep(API, 8080)),
        drop(ep(OTHER, 40000), ep(API, 8080), time_ns=T0 + 1000),
    ]


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """A real SQLite store the Analyzer flushed the flows' counters into."""
    url = f"sqlite://{tmp_path / 'auditor.db'}"
    states = history()
    analyzer = Analyzer(correlator=Correlator(states, PolicyEngine()), store=open_store(url),
                        latest_state=states.latest, clock_ns=time.time_ns)
    for item in flows():
        analyzer.handle(item)
    analyzer.flush()
    analyzer.store.close()
    return url


def report_hits(path: Path) -> dict[str, tuple[int, int]]:
    """policy -> (allowed, dropped) of a JSON report's per-policy hits."""
    listed = json.loads(path.read_text())["evidence"]["policy_hits"]
    return {h["policy"]: (h["allowed"], h["dropped"]) for h in listed}


class TestStoreRows:
    def test_policy_column_names_the_kind(self, store_url: str) -> None:
        """Rows say `ns/name` for a NetworkPolicy and `PolicyId.ref` for Cilium's kinds."""
        with open_store(store_url) as store:
            rows = store.counts(0, 2**62, ("namespace", "policy", "verdict"))
        found = {(r.namespace, r.policy, r.verdict): r.count for r in rows if r.policy}
        assert found == {
            ("shop", "CiliumNetworkPolicy shop/api-in", "ALLOWED"): 1,
            ("shop", "shop/web-out", "ALLOWED"): 1,
            ("", "CiliumClusterwideNetworkPolicy no-worker", "DROPPED"): 2,
        }

    def test_store_report_reads_the_kinds_back(self, store_url: str, tmp_path: Path) -> None:
        """`auditor report --store` lists each policy's hits under its kind-qualified name."""
        out = tmp_path / "r.json"
        assert main(["report", "--store", store_url, "--no-live-cluster", "--format", "json",
                     "--output", str(out)]) == 0
        hits = report_hits(out)
        assert hits == {"CiliumClusterwideNetworkPolicy no-worker": (0, 2),
                        "CiliumNetworkPolicy shop/api-in": (1, 0), "shop/web-out": (1, 0)}


class TestRuleUsage:
    def usage_after_flows(self) -> RuleUsageRecorder:
        recorder = RuleUsageRecorder(PolicyEngine())
        correlator = Correlator(history(), recorder)
        for item in flows():
            correlator.process(item)
        return recorder

    def test_cilium_rules_are_counted_by_path_and_kind(self) -> None:
        """The CNP's allow rule (two web -> api connections) and the CCNP's deny rule count at their paths."""
        usage = self.usage_after_flows().usage()
        assert usage.path_hits(PolicyId("shop", "api-in", kind=CNP_KIND), "Ingress", "ingress[0]") == 2
        assert usage.path_hits(PolicyId("", "no-worker", kind=CCNP_KIND), "Ingress", "ingressDeny[0]") == 1

    def test_networkpolicy_rules_keep_their_index_lookup(self) -> None:
        """A NetworkPolicy's rule is still looked up by direction and index."""
        assert self.usage_after_flows().usage().rule_hits("shop", "web-out", "Egress", 0) == 2

    def test_isolating_hits_are_per_kind(self) -> None:
        """The CNP isolating api from other counts under its kind, not under a NetworkPolicy of its name."""
        usage = self.usage_after_flows().usage()
        assert usage.isolating_hits("shop", "api-in", CNP_KIND) == 1
        assert usage.isolating_hits("shop", "api-in") == 0


class TestFilesReport:
    def test_cluster_wide_deny_is_listed_with_its_kind(self, tmp_path: Path) -> None:
        """Files mode: a CCNP denying the scenario's drop gets the drop; the NetworkPolicy keeps its row."""
        ccnp = tmp_path / "ccnp.yaml"
        ccnp.write_text(
            "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: no-worker}\n"
            "spec:\n  endpointSelector: {matchLabels: {app: api}}\n"
            "  ingressDeny:\n  - fromEndpoints: [{matchLabels: {app: worker}}]\n")
        out = tmp_path / "r.json"
        args = ["report", "--manifests", str(SCENARIO / "manifests.yaml"), str(ccnp),
                "--flows", str(SCENARIO / "flows.jsonl"), "--format", "json", "--output", str(out)]
        assert main(args) == 0
        hits = report_hits(out)
        assert hits == {"shop/api-from-web": (0, 0), "CiliumClusterwideNetworkPolicy no-worker": (0, 1)}

    def test_cilium_policy_change_is_in_the_timeline(self, tmp_path: Path) -> None:
        """Files mode: a CiliumNetworkPolicy added by the cluster events is listed among the policy changes."""
        events = tmp_path / "events.jsonl"
        events.write_text(json.dumps({"time": "2026-11-20T10:00:01.000002Z", "type": "ADDED", "object": {
            "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "api-cnp", "namespace": "shop", "resourceVersion": "9"},
            "spec": {"endpointSelector": {"matchLabels": {"app": "api"}},
                     "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "web"}}]}]}}}) + "\n")
        out = tmp_path / "r.json"
        args = ["report", "--manifests", str(SCENARIO / "manifests.yaml"), "--cluster-events", str(events),
                "--flows", str(SCENARIO / "flows.jsonl"), "--format", "json", "--output", str(out)]
        assert main(args) == 0
        changes = json.loads(out.read_text())["evidence"]["policy_changes"]
        assert [(c["type"], c["namespace"], c["name"], c["revision"]) for c in changes] == [
            ("ADDED", "shop", "api-cnp", "9")]
