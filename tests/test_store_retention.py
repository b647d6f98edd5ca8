"""Store retention: old rows go, recent rows and current state stay."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from auditor.model.findings import FindingKind
from auditor.store import DAY_NS, HOUR_NS, RetentionResult, Store, open_store
from tests.test_store_helpers import T0, counter, finding

NOW = T0 + 40 * DAY_NS
OLD = NOW - 31 * DAY_NS
RECENT = NOW - DAY_NS


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as opened:
        yield opened


class TestRetention:
    def test_old_counters_go_recent_stay(self, store: Store) -> None:
        """Hour buckets that ended before the cutoff are deleted, later ones kept (default 30 days)."""
        store.add_counts([counter(hour=h) for h in range(0, 40 * 24, 24)])
        result = store.apply_retention(NOW)
        kept = store.counts(0, NOW * 2, ("hour",))
        assert result.counters == 10
        assert min(row.hour_ns for row in kept) >= NOW - 30 * DAY_NS - HOUR_NS
        assert len(kept) == 30

    def test_windows_and_gaps(self, store: Store) -> None:
        """Windows and gaps that ended before the cutoff are deleted."""
        store.record_window(OLD, OLD + 1)
        store.record_window(RECENT, RECENT + 1)
        store.record_gap(OLD, OLD, "lost-events:unknown", 5)
        store.record_gap(RECENT, RECENT, "lost-events:unknown", 7)
        result = store.apply_retention(NOW)
        cov = store.coverage(0, NOW)
        assert (result.windows, result.gaps, cov.lost_total, len(cov.windows)) == (1, 1, 7, 1)

    def test_resolved_findings_go_after_age(self, store: Store) -> None:
        """Findings resolved before the cutoff are deleted; recently resolved ones stay."""
        kind = FindingKind.UNUSED_POLICY
        store.upsert_findings([finding(kind, workload="a", first=0, last=0)])
        store.resolve_missing_static([], now_ns=OLD)
        store.upsert_findings([finding(kind, workload="b", first=0, last=0)])
        store.resolve_missing_static([], now_ns=RECENT)
        assert store.apply_retention(NOW).findings == 1
        assert [f.workload for f in store.findings()] == ["b"]

    def test_stale_runtime_findings_go_open_static_stay(self, store: Store) -> None:
        """Runtime findings last seen before the cutoff go; open static findings stay whatever their age."""
        store.upsert_findings(
            [
                finding(FindingKind.POLICY_DROP, workload="old", first=OLD, last=OLD),
                finding(FindingKind.POLICY_DROP, workload="new", first=OLD, last=RECENT),
                finding(FindingKind.NO_DEFAULT_DENY, workload="static", first=OLD, last=OLD),
            ]
        )
        store.apply_retention(NOW)
        assert sorted(f.workload for f in store.findings()) == ["new", "static"]

    def test_policy_history_keeps_revision_in_force(self, store: Store) -> None:
        """Old changes go, except the last change of a policy that still exists."""
        store.record_policy_change(OLD, "ADDED", "shop", "live", "1", "{}")
        store.record_policy_change(OLD + 1, "MODIFIED", "shop", "live", "2", "{}")
        store.record_policy_change(OLD, "ADDED", "shop", "gone", "1", "{}")
        store.record_policy_change(OLD + 1, "DELETED", "shop", "gone", "1", "{}")
        store.record_policy_change(RECENT, "ADDED", "shop", "fresh", "1", "{}")
        assert store.apply_retention(NOW).policy_changes == 3
        assert [(c.name, c.revision) for c in store.policy_changes()] == [("live", "2"), ("fresh", "1")]

    def test_policy_history_keeps_revision_in_force_per_kind(self, store: Store) -> None:
        """A newer change of a same-named Cilium policy does not retire a NetworkPolicy's last change."""
        store.record_policy_change(OLD, "ADDED", "shop", "web", "1", "{}")
        store.record_policy_change(OLD + 1, "ADDED", "shop", "web", "2", "{}", kind="CiliumNetworkPolicy")
        assert store.apply_retention(NOW).policy_changes == 0
        assert [c.kind for c in store.policy_changes()] == ["NetworkPolicy", "CiliumNetworkPolicy"]

    def test_nothing_old_nothing_deleted(self, store: Store) -> None:
        """A store with only recent data loses nothing."""
        store.upsert_findings([finding(first=RECENT, last=RECENT)])
        store.add_counts([counter()])
        assert store.apply_retention(T0 + HOUR_NS) == RetentionResult()
        assert len(store.findings()) == 1

    def test_custom_max_age(self, store: Store) -> None:
        """max_age_ns shortens the retention."""
        store.record_window(RECENT, RECENT + 1)
        assert store.apply_retention(NOW, max_age_ns=HOUR_NS).windows == 1

    def test_non_positive_max_age_rejected(self, store: Store) -> None:
        """A zero or negative max age is a ValueError, not a wiped store."""
        with pytest.raises(ValueError, match="positive"):
            store.apply_retention(NOW, max_age_ns=0)
