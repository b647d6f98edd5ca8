"""The one analysis session and `Store.apply`: what a flush writes is exactly what happened."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditor.app.analysis import skipped_flows
from auditor.findings.correlate import CorrelatorStats
from auditor.findings.session import AnalysisOptions, AnalysisSession
from auditor.model.cilium import CiliumKind, CiliumNetworkPolicy
from auditor.model.decision import CNP_KIND, KNP_KIND
from auditor.model.delta import HOUR_NS, AnalysisDelta, DataGap, HourCount, policy_column, policy_key
from auditor.model.findings import Finding, FindingKind, Severity, merge_findings
from auditor.model.flows import Direction, Endpoint
from auditor.model.k8s import Change, ChangeType, Namespace
from auditor.policy.history import ClusterHistory
from auditor.policy.state import ClusterState
from auditor.store import Store, open_store
from tests.findings_support import (
    API,
    API_FROM_WEB,
    DENY_ALL_INGRESS,
    SECOND,
    T0,
    WEB,
    drop,
    ep,
    flow,
    inventory,
    policy,
)

HOUR0 = T0 - T0 % HOUR_NS


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path}/auditor.db") as opened:
        yield opened


def session(*objects: object, options: AnalysisOptions | None = None) -> tuple[AnalysisSession, ClusterHistory]:
    history = ClusterHistory(initial=ClusterState.build(inventory(*objects)))  # type: ignore[arg-type]
    return AnalysisSession(history, options), history


def finding(severity: Severity, *, last: int, count: int = 1, sample: str = "") -> Finding:
    return Finding(FindingKind.POLICY_DROP, severity, "shop", "api", f"seen at {last}", port=8080,
                   protocol="TCP", direction="ingress", count=count, first_seen_ns=last, last_seen_ns=last,
                   sample_flow=sample)


class TestHourlyCounters:
    def test_counters_land_in_each_flows_own_hour(self, store: Store) -> None:
        """Flows of two hours flushed together are counted in their own hours, not the newest flow's."""
        analysis, _ = session(WEB, API)
        analysis.flow(flow(ep(WEB), ep(API, 8080), time_ns=HOUR0 + SECOND))
        analysis.flow(flow(ep(WEB), ep(API, 8080), time_ns=HOUR0 + HOUR_NS + SECOND))
        store.apply(analysis.delta())
        rows = store.counts(HOUR0, HOUR0 + 2 * HOUR_NS, ("hour", "verdict"))
        assert sorted((row.hour_ns, row.count) for row in rows) == [(HOUR0, 1), (HOUR0 + HOUR_NS, 1)]

    def test_policy_rows_land_in_each_flows_own_hour(self) -> None:
        """The attributed policy's count is in the hour of the flow it decided."""
        analysis, _ = session(WEB, API, API_FROM_WEB)
        analysis.flow(flow(ep(WEB), ep(API, 8080), time_ns=HOUR0 + 2 * HOUR_NS))
        rows = [row for row in analysis.delta().counts if row.policy is not None]
        policy_ref = ("shop", "api-from-web", KNP_KIND)
        assert rows == [HourCount(HOUR0 + 2 * HOUR_NS, "ALLOWED", "ingress", 1, policy_ref)]

    def test_policy_column_round_trips_every_kind(self) -> None:
        """The counter's policy column reads back as the (namespace, name, kind) written."""
        keys = [("shop", "a", KNP_KIND), ("shop", "b", CNP_KIND), ("", "c", "CiliumClusterwideNetworkPolicy")]
        assert [policy_key(policy_column(key)) for key in keys] == keys


class TestStaticFindings:
    def test_static_count_stays_put_across_state_changes(self, store: Store) -> None:
        """A static finding re-evaluated at every state change is replaced, its count does not grow."""
        analysis, history = session(WEB, API)
        store.apply(analysis.delta())
        for step in range(3):
            history.apply(Change(T0 + step, ChangeType.ADDED, Namespace(f"extra-{step}")))
            store.apply(analysis.delta())
        counts = {f.count for f in store.findings() if f.kind is FindingKind.NO_DEFAULT_DENY}
        assert counts == {1}

    def test_static_finding_fixed_by_a_policy_is_resolved(self, store: Store) -> None:
        """When the newest state no longer has a static finding, the store resolves it."""
        analysis, history = session(WEB, API)
        store.apply(analysis.delta())
        history.apply(Change(T0, ChangeType.ADDED, DENY_ALL_INGRESS))
        store.apply(analysis.delta(), now_ns=T0 + SECOND)
        resolved = [f for f in store.stored_findings() if not f.is_open]
        assert resolved
        assert all(f.finding.kind.is_static for f in resolved)

    def test_no_state_change_no_static_in_the_delta(self) -> None:
        """A second delta without a state change carries no static findings (None, not empty)."""
        analysis, _ = session(WEB, API)
        analysis.delta()
        assert analysis.delta().static is None


class TestOneMergeRule:
    def test_stored_severity_does_not_depend_on_where_flushes_fall(self, store: Store) -> None:
        """HIGH then LOW for one key: the store keeps HIGH, as one aggregation does."""
        high, low = finding(Severity.HIGH, last=T0, sample="uuid-1"), finding(Severity.LOW, last=T0 + 1)
        store.apply(AnalysisDelta(findings=(high,)))
        store.apply(AnalysisDelta(findings=(low,)))
        (stored,) = store.findings()
        assert stored == merge_findings(high, low)
        assert (stored.severity, stored.sample_flow, stored.message) == (Severity.HIGH, "uuid-1", low.message)

    def test_a_failed_apply_writes_nothing(self, store: Store) -> None:
        """A delta the store refuses part of leaves the store as it was: one transaction."""
        bad = AnalysisDelta(findings=(finding(Severity.LOW, last=T0),), gaps=(DataGap(T0 + 5, T0, "broken"),))
        with pytest.raises(ValueError, match="bad span"):
            store.apply(bad)
        assert store.findings() == []

    def test_deltas_merge_like_one(self) -> None:
        """A delta a failed flush kept, then the next one, equal the two merged by the model's rule."""
        first = AnalysisDelta(findings=(finding(Severity.HIGH, last=T0),),
                              counts=(HourCount(HOUR0, "DROPPED", "", 2),))
        second = AnalysisDelta(findings=(finding(Severity.LOW, last=T0 + 1),),
                               counts=(HourCount(HOUR0, "DROPPED", "", 3),))
        merged = first.then(second)
        assert merged.findings == (merge_findings(first.findings[0], second.findings[0]),)
        assert merged.counts == (HourCount(HOUR0, "DROPPED", "", 5),)


class TestOutcomeCache:
    def test_cidr_flow_after_world_flow_to_the_same_ip_gets_its_own_peer(self) -> None:
        """The cache key is the resolved value: a cidr: identity after reserved:world is not the stale peer."""
        analysis, _ = session(WEB, policy("web-out", app="web", egress=()))
        world = Endpoint(ip="203.0.113.7", port=443, identity=2, labels=("reserved:world",))
        cidr = dataclasses.replace(world, identity=16777217, labels=("cidr:203.0.113.7/32", "reserved:world"))
        for destination in (world, cidr):
            analysis.flow(drop(ep(WEB, 40000), destination, direction=Direction.EGRESS))
        peers = {f.peer_workload for f in analysis.delta().findings}
        assert peers == {"reserved:world", "cidr:203.0.113.7/32"}


class TestPolicyHistory:
    def test_cilium_policy_changes_are_recorded_with_their_kind(self, store: Store) -> None:
        """A CiliumNetworkPolicy change reaches the store's policy history like a NetworkPolicy's."""
        analysis, _ = session()
        cnp = CiliumNetworkPolicy(CiliumKind.CNP, "web-out", "shop", resource_version="7")
        analysis.change(Change(T0, ChangeType.ADDED, cnp))
        store.apply(analysis.delta())
        (record,) = store.policy_changes()
        assert (record.namespace, record.name, record.revision) == ("shop", "web-out", "7")
        assert record.kind == CNP_KIND

    def test_policies_without_resource_version_get_one_row_per_change(self, store: Store) -> None:
        """Two changes of a policy written without resourceVersion (manifests) are two history rows."""
        analysis, _ = session()
        unversioned = policy("p", rv="")
        analysis.change(Change(T0, ChangeType.MODIFIED, unversioned))
        analysis.change(Change(T0 + SECOND, ChangeType.MODIFIED, dataclasses.replace(unversioned, ingress=())))
        store.apply(analysis.delta())
        assert len(store.policy_changes()) == 2

    def test_stream_outage_reaches_the_store_as_a_gap(self, store: Store) -> None:
        """An outage of the flow stream is a gap in the store's coverage."""
        analysis, _ = session()
        analysis.outage(T0, T0 + 5 * SECOND)
        store.apply(analysis.delta())
        gaps = store.coverage(T0 - SECOND, T0 + 10 * SECOND).gaps
        assert [(g.from_ns, g.to_ns, g.reason) for g in gaps] == [(T0, T0 + 5 * SECOND, "stream-down")]


class TestSkipped:
    def test_undecided_fqdn_flows_reach_the_skipped_output(self) -> None:
        """`undecided-fqdn` is exported under its own reason, not folded into "other"."""
        stats = CorrelatorStats()
        stats.skipped["undecided-fqdn"] = 3
        assert skipped_flows(stats)["undecided-fqdn"] == 3

