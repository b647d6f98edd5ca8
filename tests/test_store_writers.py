"""Many writers, one store (both backends): identity leases, per-writer data adding up, the cluster lease,
retention one writer at a time, concurrent merges of the same findings."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest

from auditor.errors import StoreError
from auditor.model.events import LostEvents, LostEventSource
from auditor.store import HOUR_NS, Store, open_store
from auditor.store.sql_findings import LOCK_CLASS
from tests.pg_support import PgServer
from tests.test_store_helpers import T0, counter, finding

S = 1_000_000_000
TTL = 30 * S


@pytest.fixture
def stores(store_url: str) -> Iterator[list[Store]]:
    """Three stores on one database, as three daemons have."""
    opened = [open_store(store_url) for _ in range(3)]
    yield opened
    for store in opened:
        store.close()


class TestIdentity:
    def test_second_live_writer_refused(self, stores: list[Store]) -> None:
        """A second process claiming a live identity is refused with one line naming it and the remedy."""
        stores[0].claim_writer("node-a", now_ns=T0)
        with pytest.raises(StoreError, match=r"identity 'node-a' is already live .*--instance") as caught:
            stores[1].claim_writer("node-a", now_ns=T0 + S)
        assert "\n" not in str(caught.value)

    def test_released_identity_free_at_once(self, stores: list[Store]) -> None:
        """A writer that stopped cleanly leaves its identity free for its successor."""
        stores[0].claim_writer("node-a", now_ns=T0)
        stores[0].release_writer()
        stores[1].claim_writer("node-a", now_ns=T0 + S)
        assert stores[1].writer == "node-a"

    def test_expired_lease_taken_over_and_old_writer_told(self, stores: list[Store]) -> None:
        """An identity whose heartbeat stopped is free after the lease expires; the old holder's next
        heartbeat fails saying the lease was lost."""
        stores[0].claim_writer("node-a", now_ns=T0, ttl_ns=TTL)
        stores[1].claim_writer("node-a", now_ns=T0 + TTL + S)
        with pytest.raises(StoreError, match=r"already live .*\(lost\)"):
            stores[0].heartbeat(now_ns=T0 + TTL + 2 * S)

    def test_heartbeat_keeps_lease(self, stores: list[Store]) -> None:
        """Heartbeats push the expiry on: a claim after the first TTL is still refused."""
        stores[0].claim_writer("node-a", now_ns=T0, ttl_ns=TTL)
        stores[0].heartbeat(now_ns=T0 + TTL - S)
        with pytest.raises(StoreError, match="already live"):
            stores[1].claim_writer("node-a", now_ns=T0 + TTL + S)

    def test_distinct_identities_coexist(self, stores: list[Store]) -> None:
        """Writers with their own identities all hold their leases."""
        for n, store in enumerate(stores):
            store.claim_writer(f"node-{n}", now_ns=T0)
        assert [store.writer for store in stores] == ["node-0", "node-1", "node-2"]


class TestClusterLease:
    def test_one_holder(self, stores: list[Store]) -> None:
        """Of three writers heartbeating, exactly the first holds the cluster lease."""
        for n, store in enumerate(stores):
            store.claim_writer(f"node-{n}", now_ns=T0)
        assert [store.heartbeat(now_ns=T0 + S) for store in stores] == [True, False, False]

    def test_passes_on_when_holder_stops(self, stores: list[Store]) -> None:
        """When the holder releases, the next writer to heartbeat takes the cluster lease."""
        for n, store in enumerate(stores[:2]):
            store.claim_writer(f"node-{n}", now_ns=T0)
            store.heartbeat(now_ns=T0)
        stores[0].release_writer()
        assert stores[1].heartbeat(now_ns=T0 + S)

    def test_passes_on_when_holder_expires(self, stores: list[Store]) -> None:
        """A holder that stopped heartbeating loses the cluster lease at expiry."""
        stores[0].claim_writer("node-0", now_ns=T0, ttl_ns=TTL)
        stores[1].claim_writer("node-1", now_ns=T0, ttl_ns=TTL)
        assert stores[0].heartbeat(now_ns=T0)
        assert not stores[1].heartbeat(now_ns=T0 + S)
        assert stores[1].heartbeat(now_ns=T0 + TTL + S)


class TestAddingUp:
    def test_counters_sum_exactly(self, stores: list[Store]) -> None:
        """The same counter key from three writers sums to the total of all three."""
        for n, store in enumerate(stores):
            store.claim_writer(f"node-{n}", now_ns=T0)
            store.add_counts([counter(count=n + 1), counter(count=10)])
        rows = stores[0].counts(T0 - HOUR_NS, T0 + HOUR_NS, ("namespace",))
        assert [row.count for row in rows] == [1 + 2 + 3 + 30]

    def test_windows_union_across_writers(self, stores: list[Store]) -> None:
        """Overlapping windows of different writers read as one window: their union, not a sum."""
        for n, store in enumerate(stores):
            store.claim_writer(f"node-{n}", now_ns=T0)
            store.record_window(T0 + n * 10 * S, T0 + (n * 10 + 15) * S, join_ns=0)
        windows = stores[0].coverage(T0, T0 + HOUR_NS).windows
        assert [(w.from_ns, w.to_ns) for w in windows] == [(T0, T0 + 35 * S)]

    def test_writers_windows_kept_apart(self, stores: list[Store]) -> None:
        """A writer's window does not swallow a disjoint window of another writer of the same source."""
        stores[0].claim_writer("node-0", now_ns=T0)
        stores[1].claim_writer("node-1", now_ns=T0)
        stores[0].record_window(T0, T0 + S, join_ns=0)
        stores[1].record_window(T0 + 5 * S, T0 + 6 * S, join_ns=0)
        windows = stores[0].coverage(T0, T0 + HOUR_NS).windows
        assert [(w.from_ns, w.to_ns) for w in windows] == [(T0, T0 + S), (T0 + 5 * S, T0 + 6 * S)]

    def test_lost_events_sum(self, stores: list[Store]) -> None:
        """Lost events recorded by every writer add up in the cluster-wide coverage."""
        for n, store in enumerate(stores):
            store.claim_writer(f"node-{n}", now_ns=T0)
            store.record_lost_events(LostEvents(source=LostEventSource.HUBBLE_RING_BUFFER, count=n + 5,
                                                first_ns=T0, last_ns=T0 + S, node_name=f"node-{n}"))
        assert stores[0].coverage(T0, T0 + HOUR_NS).lost_total == 5 + 6 + 7

    def test_findings_merge_across_writers(self, stores: list[Store]) -> None:
        """One finding seen by three writers is one row, merged by the one rule (counts add)."""
        for n, store in enumerate(stores):
            store.claim_writer(f"node-{n}", now_ns=T0)
            store.upsert_findings([finding(count=n + 1, first=T0 + n, last=T0 + 10 + n)])
        [merged] = stores[0].findings()
        assert (merged.count, merged.first_seen_ns, merged.last_seen_ns) == (6, T0, T0 + 12)


class TestConcurrency:
    def test_concurrent_merges_lose_nothing(self, stores: list[Store]) -> None:
        """Three writers merging the same 20 findings at once, 30 times each: every count is exactly 90."""
        def write(store: Store) -> None:
            for _ in range(30):
                store.upsert_findings([finding(port=p) for p in range(20)])

        threads = [threading.Thread(target=write, args=(store,)) for store in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert {f.count for f in stores[0].findings()} == {90}

    def test_concurrent_claims_one_winner(self, stores: list[Store]) -> None:
        """Three processes claiming one identity at once: exactly one wins, the others are refused."""
        results: list[str] = []

        def claim(store: Store) -> None:
            try:
                store.claim_writer("node-x")
                results.append("won")
            except StoreError:
                results.append("refused")

        threads = [threading.Thread(target=claim, args=(store,)) for store in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == ["refused", "refused", "won"]


class TestRetentionLock:
    def test_skipped_while_another_writer_runs_it(self, pg_server: PgServer) -> None:
        """While another process holds the retention lock, apply_retention deletes nothing and says so."""
        with open_store(pg_server.url_for(pg_server.new_schema())) as store:
            store.add_counts([counter(hour=-1000)])
            with psycopg.connect(pg_server.url, autocommit=True) as other:
                other.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_CLASS, -2))
                skipped = store.apply_retention(T0, HOUR_NS)
            done = store.apply_retention(T0, HOUR_NS)
        assert (skipped.skipped, skipped.total, done.skipped, done.counters) == (True, 0, False, 1)
