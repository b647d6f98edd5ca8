"""Store counters, coverage windows and gaps, policy history and the snapshot."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from auditor.model.events import LostEvents, LostEventSource
from auditor.model.findings import FindingKind, Severity
from auditor.store import HOUR_NS, CounterRow, Gap, OpenFindingCount, Store, Window, open_store
from tests.test_store_helpers import T0, counter, finding

S = 1_000_000_000


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as opened:
        yield opened


class TestCounters:
    def test_same_bucket_adds_up(self, store: Store) -> None:
        """Counts for one (hour, namespace, workload, verdict, direction, policy) add up across calls."""
        store.add_counts([counter(count=2)])
        store.add_counts([counter(count=3), counter(count=5)])
        assert [row.count for row in store.counts(T0 - HOUR_NS, T0 + HOUR_NS, ("namespace",))] == [10]

    def test_hour_is_floored(self, store: Store) -> None:
        """Rows inside one hour land in the bucket that starts the hour."""
        inside = counter()
        store.add_counts([CounterRow(inside.hour_ns + 1234, *_rest(inside))])
        (row,) = store.counts(T0 - HOUR_NS, T0 + HOUR_NS, ("hour",))
        assert row.hour_ns == inside.hour_ns

    def test_group_by_columns(self, store: Store) -> None:
        """Grouping sums over the columns left out, which come back empty; largest first."""
        store.add_counts(
            [counter(verdict="DROPPED", count=4), counter(verdict="FORWARDED", count=9, policy="shop/allow")]
        )
        store.add_counts([counter(verdict="DROPPED", workload="db", count=1)])
        rows = store.counts(T0 - HOUR_NS, T0 + HOUR_NS, ("verdict",))
        assert [(r.verdict, r.count, r.workload, r.hour_ns) for r in rows] == [
            ("FORWARDED", 9, "", 0),
            ("DROPPED", 5, "", 0),
        ]

    def test_time_range_selects_hours(self, store: Store) -> None:
        """Only buckets starting in [hour of since, until) count."""
        store.add_counts([counter(hour=0, count=1), counter(hour=1, count=10), counter(hour=2, count=100)])
        start = counter(hour=1).hour_ns
        assert store.counts(start + 5, start + HOUR_NS, ())[0].count == 10

    def test_namespace_filter(self, store: Store) -> None:
        """namespaces restricts the rows summed."""
        store.add_counts([counter(namespace="shop", count=1), counter(namespace="bank", count=2)])
        rows = store.counts(T0 - HOUR_NS, T0 + HOUR_NS, ("namespace",), namespaces=["bank"])
        assert [(r.namespace, r.count) for r in rows] == [("bank", 2)]

    def test_verdict_filter(self, store: Store) -> None:
        """verdicts restricts the rows summed, e.g. top workloads by drops."""
        store.add_counts([counter(workload="a", count=5), counter(workload="b", verdict="FORWARDED", count=50)])
        rows = store.counts(T0 - HOUR_NS, T0 + HOUR_NS, ("workload",), verdicts=["DROPPED"])
        assert [(r.workload, r.count) for r in rows] == [("a", 5)]

    def test_unknown_group_by_rejected(self, store: Store) -> None:
        """A group_by name outside the counter columns is a clear ValueError."""
        with pytest.raises(ValueError, match="pod"):
            store.counts(0, T0, ("pod",))

    def test_empty_range_has_no_rows(self, store: Store) -> None:
        """Totals over an empty range are an empty list, not a zero row."""
        assert store.counts(0, T0, ()) == []


class TestCoverage:
    def test_contiguous_windows_merge(self, store: Store) -> None:
        """Windows of one source that touch or overlap become one."""
        store.record_window(T0, T0 + 10 * S)
        store.record_window(T0 + 10 * S, T0 + 20 * S)
        store.record_window(T0 + 15 * S, T0 + 25 * S)
        assert store.coverage(0, T0 * 2).windows == (Window(T0, T0 + 25 * S, "hubble"),)

    def test_window_bridging_two_merges_all(self, store: Store) -> None:
        """A window filling the hole between two others joins the three."""
        store.record_window(T0, T0 + S)
        store.record_window(T0 + 10 * S, T0 + 11 * S)
        store.record_window(T0 + S, T0 + 10 * S)
        assert store.coverage(0, T0 * 2).windows == (Window(T0, T0 + 11 * S, "hubble"),)

    def test_distant_windows_and_other_sources_stay_apart(self, store: Store) -> None:
        """A hole longer than join_ns, or another source, keeps windows separate."""
        store.record_window(T0, T0 + S)
        store.record_window(T0 + 5 * S, T0 + 6 * S)
        store.record_window(T0, T0 + S, "file")
        assert len(store.coverage(0, T0 * 2).windows) == 3

    def test_windows_clipped_and_covered_time(self, store: Store) -> None:
        """Windows are clipped to the requested range and their union measured."""
        store.record_window(T0, T0 + 10 * S)
        store.record_window(T0 + 5 * S, T0 + 20 * S, "file")
        cov = store.coverage(T0 + 2 * S, T0 + 12 * S)
        spans = {(w.from_ns, w.to_ns) for w in cov.windows}
        assert spans == {(T0 + 2 * S, T0 + 10 * S), (T0 + 5 * S, T0 + 12 * S)}
        assert (cov.covered_ns, cov.fraction) == (10 * S, 1.0)

    def test_gaps_and_lost_total(self, store: Store) -> None:
        """Gaps overlapping the range are listed and their lost events summed."""
        store.record_gap(T0, T0 + S, "lost-events:hubble_ring_buffer", 40)
        store.record_gap(T0 + 5 * S, T0 + 6 * S, "stream-disconnected", 0)
        store.record_gap(T0 + 50 * S, T0 + 51 * S, "lost-events:hubble_ring_buffer", 7)
        cov = store.coverage(T0, T0 + 10 * S)
        assert [g.reason for g in cov.gaps] == ["lost-events:hubble_ring_buffer", "stream-disconnected"]
        assert cov.lost_total == 40

    def test_lost_events_become_a_gap(self, store: Store) -> None:
        """A Hubble LostEvents is recorded as a gap naming its source and node."""
        store.record_lost_events(
            LostEvents(LostEventSource.PERF_EVENT_RING_BUFFER, 12, node_name="kind-worker", time_ns=T0)
        )
        expected = Gap(T0, T0, "lost-events:perf_event_ring_buffer@kind-worker", 12)
        assert store.coverage(T0, T0 + 1).gaps == (expected,)

    def test_backwards_window_rejected(self, store: Store) -> None:
        """A window that ends before it starts is a ValueError naming the source."""
        with pytest.raises(ValueError, match="hubble"):
            store.record_window(T0 + 1, T0)


class TestPolicyHistory:
    def test_changes_listed_oldest_first(self, store: Store) -> None:
        """Recorded changes come back in time order with every field."""
        store.record_policy_change(T0 + 2, "MODIFIED", "shop", "deny", "2", '{"v": 2}')
        store.record_policy_change(T0 + 1, "ADDED", "shop", "deny", "1", '{"v": 1}')
        changes = store.policy_changes()
        assert [(c.time_ns, c.change_type, c.revision, c.spec_json) for c in changes] == [
            (T0 + 1, "ADDED", "1", '{"v": 1}'),
            (T0 + 2, "MODIFIED", "2", '{"v": 2}'),
        ]

    def test_duplicate_change_ignored(self, store: Store) -> None:
        """Recording the same revision and type again (a restart re-listing) changes nothing."""
        assert store.record_policy_change(T0, "ADDED", "shop", "deny", "1", "{}") is True
        assert store.record_policy_change(T0 + 9, "ADDED", "shop", "deny", "1", "{}") is False
        assert len(store.policy_changes()) == 1

    def test_time_and_namespace_filters(self, store: Store) -> None:
        """since/until and namespaces select the changes."""
        store.record_policy_change(T0, "ADDED", "shop", "a", "1", "{}")
        store.record_policy_change(T0 + 10, "ADDED", "bank", "b", "1", "{}")
        store.record_policy_change(T0 + 20, "ADDED", "shop", "c", "1", "{}")
        assert [c.name for c in store.policy_changes(T0 + 5, T0 + 25)] == ["b", "c"]
        assert [c.name for c in store.policy_changes(namespaces=["shop"])] == ["a", "c"]

    def test_kind_defaults_to_network_policy(self, store: Store) -> None:
        """A change recorded without a kind reads back as a NetworkPolicy's."""
        store.record_policy_change(T0, "ADDED", "shop", "a", "1", "{}")
        assert [c.kind for c in store.policy_changes()] == ["NetworkPolicy"]

    def test_cilium_kinds_recorded_and_read_back(self, store: Store) -> None:
        """CNP and CCNP changes keep their kind; a CCNP's namespace is empty."""
        store.record_policy_change(T0, "ADDED", "shop", "web", "7", "{}", kind="CiliumNetworkPolicy")
        store.record_policy_change(T0 + 1, "DELETED", "", "world", "8", "{}",
                                   kind="CiliumClusterwideNetworkPolicy")
        assert [(c.kind, c.namespace, c.name) for c in store.policy_changes()] == [
            ("CiliumNetworkPolicy", "shop", "web"), ("CiliumClusterwideNetworkPolicy", "", "world")]

    def test_same_name_of_another_kind_is_another_policy(self, store: Store) -> None:
        """A NetworkPolicy and a CiliumNetworkPolicy sharing namespace, name and revision are both kept."""
        assert store.record_policy_change(T0, "ADDED", "shop", "web", "1", "{}") is True
        assert store.record_policy_change(T0, "ADDED", "shop", "web", "1", "{}", kind="CiliumNetworkPolicy")
        assert sorted(c.kind for c in store.policy_changes()) == ["CiliumNetworkPolicy", "NetworkPolicy"]


class TestSnapshot:
    def test_empty_store(self, store: Store) -> None:
        """A fresh store's snapshot is all zeros at the current schema version."""
        snap = store.snapshot()
        assert (snap.open_total, snap.resolved_findings, snap.lost_total, snap.coverage_to_ns) == (0, 0, 0, 0)
        assert snap.schema_version == store.schema_version() > 0

    def test_open_findings_grouped(self, store: Store) -> None:
        """Open findings are counted by kind, severity and namespace; resolved ones separately."""
        store.upsert_findings(
            [
                finding(port=1),
                finding(port=2),
                finding(FindingKind.UNEXPECTED_ALLOW, severity=Severity.HIGH, namespace="bank"),
                finding(FindingKind.UNUSED_POLICY, severity=Severity.LOW),
            ]
        )
        store.resolve_missing_static([])
        snap = store.snapshot()
        assert snap.open_findings == (
            OpenFindingCount(FindingKind.POLICY_DROP, Severity.MEDIUM, "shop", 2),
            OpenFindingCount(FindingKind.UNEXPECTED_ALLOW, Severity.HIGH, "bank", 1),
        )
        assert (snap.open_total, snap.resolved_findings) == (3, 1)
        assert snap.open_by_namespace() == {"shop": 2, "bank": 1}

    def test_coverage_and_history_summary(self, store: Store) -> None:
        """The snapshot spans all windows and sums lost events and policy changes."""
        store.record_window(T0, T0 + S)
        store.record_window(T0 + 100 * S, T0 + 101 * S)
        store.record_gap(T0, T0, "lost-events:unknown", 3)
        store.record_policy_change(T0, "ADDED", "shop", "a", "1", "{}")
        snap = store.snapshot()
        assert (snap.coverage_from_ns, snap.coverage_to_ns, snap.lost_total) == (T0, T0 + 101 * S, 3)
        assert snap.policy_changes == 1


def _rest(row: CounterRow) -> tuple[str, str, str, str, str, int]:
    return row.namespace, row.workload, row.verdict, row.direction, row.policy, row.count
