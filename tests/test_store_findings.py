"""Store findings: upsert by aggregate key, new-vs-existing, filters, resolving static findings."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.model.findings import Finding, FindingKind, Severity
from auditor.model.findings import merge_findings as merge
from auditor.store import FindingStatus, Store, open_store
from tests.test_store_helpers import T0, finding

NO_DNS = FindingKind.MISSING_DNS_EGRESS
Obs = tuple[int, int, int, str]


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as opened:
        yield opened


class TestUpsert:
    def test_counts_add_up(self, store: Store) -> None:
        """Upserting the same key twice adds the counts."""
        store.upsert_findings([finding(count=3)])
        store.upsert_findings([finding(count=4)])
        assert [f.count for f in store.findings()] == [7]

    def test_time_bounds_widen(self, store: Store) -> None:
        """first_seen keeps the earliest, last_seen the latest."""
        store.upsert_findings([finding(first=T0 + 10, last=T0 + 20)])
        store.upsert_findings([finding(first=T0 + 5, last=T0 + 15)])
        store.upsert_findings([finding(first=T0 + 12, last=T0 + 30)])
        (stored,) = store.findings()
        assert (stored.first_seen_ns, stored.last_seen_ns) == (T0 + 5, T0 + 30)

    def test_zero_first_seen_is_unknown(self, store: Store) -> None:
        """A first_seen of 0 means unknown and never replaces a real time."""
        store.upsert_findings([finding(first=T0 + 10, last=T0 + 20)])
        store.upsert_findings([finding(first=0, last=T0 + 25)])
        assert store.findings()[0].first_seen_ns == T0 + 10

    def test_merge_rule_is_the_models(self, store: Store) -> None:
        """Message and details from the latest, highest severity, policies united, the first sample."""
        older = finding(message="old", last=T0 + 1, policies=("shop/a@1",), sample_flow="uuid-1",
                        severity=Severity.HIGH, details=(("query", "old.shop.svc."),))
        newer = finding(
            message="new",
            last=T0 + 2,
            severity=Severity.LOW,
            policies=("shop/a@2", "shop/b@7"),
            sample_flow="uuid-2",
            details=(("closest_miss", "shop/a rule 0"), ("query", "db.shop.svc.")),
        )
        store.upsert_findings([older])
        store.upsert_findings([newer])
        (stored,) = store.findings()
        assert (stored.message, stored.severity) == ("new", Severity.HIGH)
        assert stored.policies == ("shop/a@1", "shop/a@2", "shop/b@7")
        assert stored.sample_flow == "uuid-1"
        assert dict(stored.details) == {"query": "db.shop.svc.", "closest_miss": "shop/a rule 0"}
        assert stored == merge(older, newer)

    def test_out_of_order_older_finding_keeps_latest_facts(self, store: Store) -> None:
        """A finding seen earlier than the stored one does not overwrite its message."""
        store.upsert_findings([finding(message="latest", last=T0 + 50)])
        store.upsert_findings([finding(message="stale", last=T0 + 10)])
        assert store.findings()[0].message == "latest"

    def test_all_fields_round_trip(self, store: Store) -> None:
        """Every Finding field comes back exactly as written."""
        original = finding(pod="api-7d9-x", peer="shop/web-1", policies=("shop/p@3",), details=(("k", "v"),))
        store.upsert_findings([original])
        assert store.findings() == [original]

    def test_duplicates_in_one_batch_merge(self, store: Store) -> None:
        """Two findings with one key in the same batch become one row with both counts."""
        new = store.upsert_findings([finding(count=2, last=T0 + 1), finding(count=5, last=T0 + 9)])
        assert [(f.count, f.last_seen_ns) for f in new] == [(7, T0 + 9)]
        assert [f.count for f in store.findings()] == [7]


class TestNewDetection:
    def test_first_upsert_is_new(self, store: Store) -> None:
        """A key the store has never held is returned as new."""
        assert store.upsert_findings([finding()]) == [finding()]

    def test_existing_key_is_not_new(self, store: Store) -> None:
        """A key already open is not returned again."""
        store.upsert_findings([finding()])
        assert store.upsert_findings([finding(count=9)]) == []

    def test_only_new_keys_returned_from_mixed_batch(self, store: Store) -> None:
        """In a batch of known and unknown keys only the unknown ones come back."""
        store.upsert_findings([finding(port=1)])
        new = store.upsert_findings([finding(port=1), finding(port=2), finding(port=3)])
        assert sorted(f.port for f in new) == [2, 3]

    def test_resolved_finding_that_returns_is_new_and_open(self, store: Store) -> None:
        """A resolved finding seen again is reopened and reported as new."""
        static = finding(NO_DNS, first=0, last=0)
        store.upsert_findings([static])
        store.resolve_missing_static([])
        assert store.upsert_findings([static]) == [static]
        assert store.stored_findings()[0].status is FindingStatus.OPEN


class TestFilters:
    def test_time_range_overlap(self, store: Store) -> None:
        """since/until select findings whose [first, last] overlaps the range."""
        store.upsert_findings(
            [finding(port=1, first=T0, last=T0 + 10), finding(port=2, first=T0 + 20, last=T0 + 30)]
        )
        assert [f.port for f in store.findings(since_ns=T0 + 11)] == [2]
        assert [f.port for f in store.findings(until_ns=T0 + 20)] == [1]
        assert [f.port for f in store.findings(since_ns=T0 + 5, until_ns=T0 + 25)] == [1, 2]

    def test_timeless_findings_match_any_range(self, store: Store) -> None:
        """A static finding without times is part of every time range."""
        store.upsert_findings([finding(NO_DNS, first=0, last=0)])
        assert len(store.findings(since_ns=T0, until_ns=T0 + 1)) == 1

    def test_namespace_filter(self, store: Store) -> None:
        """namespaces keeps only findings in those namespaces; an empty list matches nothing."""
        store.upsert_findings([finding(namespace="shop"), finding(namespace="bank"), finding(namespace="ops")])
        assert sorted(f.namespace for f in store.findings(namespaces=["shop", "ops"])) == ["ops", "shop"]
        assert store.findings(namespaces=[]) == []

    def test_kind_filter(self, store: Store) -> None:
        """kinds keeps only findings of those kinds."""
        store.upsert_findings([finding(FindingKind.POLICY_DROP), finding(FindingKind.UNEXPECTED_ALLOW)])
        kinds = [f.kind for f in store.findings(kinds={FindingKind.UNEXPECTED_ALLOW})]
        assert kinds == [FindingKind.UNEXPECTED_ALLOW]

    def test_open_only(self, store: Store) -> None:
        """open_only leaves resolved findings out."""
        store.upsert_findings([finding(NO_DNS, workload="a"), finding(NO_DNS, workload="b")])
        store.resolve_missing_static([finding(NO_DNS, workload="a").key])
        assert [f.workload for f in store.findings(open_only=True)] == ["a"]
        assert len(store.findings()) == 2


class TestResolveStatic:
    def test_missing_static_findings_resolve(self, store: Store) -> None:
        """Static findings absent from the latest evaluation become resolved, with the time."""
        store.upsert_findings([finding(NO_DNS, workload="a"), finding(NO_DNS, workload="b")])
        resolved = store.resolve_missing_static([finding(NO_DNS, workload="a").key], now_ns=T0 + 99)
        assert [f.workload for f in resolved] == ["b"]
        rows = {row.finding.workload: row for row in store.stored_findings()}
        assert (rows["b"].status, rows["b"].resolved_at_ns) == (FindingStatus.RESOLVED, T0 + 99)
        assert rows["a"].is_open

    def test_runtime_findings_untouched(self, store: Store) -> None:
        """Runtime kinds are not resolved by a static re-evaluation."""
        store.upsert_findings([finding(FindingKind.POLICY_DROP)])
        assert store.resolve_missing_static([]) == []
        assert store.findings(open_only=True) != []

    def test_keys_accepted_as_strings(self, store: Store) -> None:
        """keep_keys may hold FindingKey.as_string() values."""
        kept = finding(NO_DNS)
        store.upsert_findings([kept])
        assert store.resolve_missing_static([kept.key.as_string()]) == []


_observations = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=5),  # count
        st.integers(min_value=0, max_value=50),  # first_seen offset (0 = unknown)
        st.integers(min_value=0, max_value=50),  # extra span
        st.sampled_from(["a", "b", "c"]),  # message
    ),
    min_size=1,
    max_size=12,
)


class TestUpsertProperties:
    @settings(max_examples=60, deadline=None)
    @given(observations=_observations, cuts=st.lists(st.integers(min_value=0, max_value=12), max_size=4))
    def test_batching_does_not_change_the_result(
        self, observations: list[tuple[int, int, int, str]], cuts: list[int]
    ) -> None:
        """However observations of one key are split into batches, the stored finding is their merge."""
        items = [
            finding(count=c, first=(T0 + f) if f else 0, last=T0 + f + span, message=m)
            for c, f, span, m in observations
        ]
        expected: Finding = items[0]
        for item in items[1:]:
            expected = merge(expected, item)
        bounds = sorted({0, len(items), *(min(cut, len(items)) for cut in cuts)})
        with open_store("sqlite:///:memory:") as store:
            for start, end in itertools.pairwise(bounds):
                store.upsert_findings(items[start:end])
            assert store.findings() == [expected]
