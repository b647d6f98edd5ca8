"""Distinct judged connections (schema version 7): the session folds them, the store keeps, merges,
reads and prunes them (real SQLite files)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditor.findings.session import AnalysisOptions, AnalysisSession
from auditor.model.delta import AnalysisDelta, ConnectionCount
from auditor.model.flows import Direction, Endpoint
from auditor.policy.history import ClusterHistory
from auditor.policy.state import ClusterState
from auditor.store import SqliteStore, Store, open_store
from auditor.store.schema import MIGRATIONS
from tests.findings_support import API, API_FROM_WEB, DNS, SECOND, T0, WEB, drop, ep, flow, inventory

SRC = Endpoint(ip="10.0.0.1", identity=20003, namespace="shop", pod_name="web-1", labels=("k8s:app=web",))
DST = Endpoint(ip="10.0.0.2", identity=20004, namespace="shop", pod_name="api-1", labels=("k8s:app=api",))


def _connection(count: int, first_ns: int, last_ns: int, sample: str = "s", **key: object) -> ConnectionCount:
    values: dict[str, object] = {"source": "shop/web", "destination": "shop/api", "port": 8080,
                                 "protocol": "TCP", "direction": "egress", "verdict": "allowed", **key}
    return ConnectionCount(**values, count=count, first_ns=first_ns, last_ns=last_ns,  # type: ignore[arg-type]
                           sample_flow=sample, source_endpoint=SRC, destination_endpoint=DST, node="node-1")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """On both backends (tests/conftest.py)."""
    with open_store(store_url) as opened:
        yield opened


class TestStore:
    def test_a_connection_reads_back_as_written(self, store: Store) -> None:
        """Key, counts, span, sample id, both sample endpoints and the node survive the round trip."""
        written = _connection(3, T0, T0 + SECOND)
        store.apply(AnalysisDelta(connections=(written,)))
        assert store.connections() == [written]

    def test_deltas_of_one_key_merge(self, store: Store) -> None:
        """Counts add, the span widens, and the newest flow's sample stays."""
        store.apply(AnalysisDelta(connections=(_connection(3, T0 + 5, T0 + 9, "first"),)))
        store.apply(AnalysisDelta(connections=(_connection(2, T0, T0 + 20, "newest"),)))
        store.apply(AnalysisDelta(connections=(_connection(1, T0 + 1, T0 + 2, "older"),)))
        [row] = store.connections()
        assert (row.count, row.first_ns, row.last_ns, row.sample_flow) == (6, T0, T0 + 20, "newest")

    def test_direction_and_verdict_are_part_of_the_key(self, store: Store) -> None:
        """The same workloads and port observed at ingress, or denied, are rows of their own."""
        ingress, denied = _connection(1, T0, T0, direction="ingress"), _connection(1, T0, T0, verdict="denied")
        store.apply(AnalysisDelta(connections=(_connection(1, T0, T0), ingress, denied)))
        assert [(r.direction, r.verdict) for r in store.connections()] == [
            ("egress", "allowed"), ("egress", "denied"), ("ingress", "allowed")]

    def test_window_selects_overlapping_connections(self, store: Store) -> None:
        """A connection is read when [first, last] overlaps [since, until)."""
        store.apply(AnalysisDelta(connections=(
            _connection(1, T0, T0 + SECOND), _connection(1, T0 + 10 * SECOND, T0 + 11 * SECOND, port=9090))))
        assert [r.port for r in store.connections(T0 + 2 * SECOND, None)] == [9090]
        assert [r.port for r in store.connections(None, T0 + 5 * SECOND)] == [8080]
        assert [r.port for r in store.connections(T0 + SECOND, T0 + 10 * SECOND + 1)] == [8080, 9090]

    def test_retention_deletes_connections_last_seen_before_the_cutoff(self, store: Store) -> None:
        """Bounded like runtime findings: old connections go, and the result counts them."""
        store.apply(AnalysisDelta(connections=(_connection(1, T0, T0),
                                               _connection(1, T0, T0 + 100 * SECOND, port=1))))
        result = store.apply_retention(T0 + 60 * SECOND, max_age_ns=30 * SECOND)
        assert result.connections == 1
        assert [r.port for r in store.connections()] == [1]

    def test_an_older_database_migrates_to_an_empty_table(self, tmp_path: Path) -> None:
        """A store at schema version 6 opens at the newest version with no connections."""
        path = tmp_path / "old.db"
        older = tuple(m for m in MIGRATIONS if m.version < 7)
        with SqliteStore(str(path), migrations=older) as old:
            assert old.schema_version() == 6
        with open_store(f"sqlite:///{path}") as store:
            assert store.schema_version() >= 7
            assert store.connections() == []


def test_then_merges_connections_of_one_key() -> None:
    """A delta a failed flush left and the next one hold one connection per key."""
    merged = AnalysisDelta(connections=(_connection(2, T0, T0 + 5, "a"),)).then(
        AnalysisDelta(connections=(_connection(1, T0 + 1, T0 + 9, "b"), _connection(1, T0, T0, port=1))))
    assert sorted((c.port, c.count, c.first_ns, c.last_ns, c.sample_flow) for c in merged.connections) == [
        (1, 1, T0, T0, "s"), (8080, 3, T0, T0 + 9, "b")]


def _session(*, keep: bool, max_keys: int = 1000) -> AnalysisSession:
    history = ClusterHistory(initial=ClusterState.build(inventory(WEB, API, DNS, API_FROM_WEB)))
    return AnalysisSession(history, AnalysisOptions(max_findings=max_keys), keep_connections=keep)


class TestSession:
    def test_judged_flows_fold_into_connections(self) -> None:
        """Two allowed flows and one drop: two connections, counted, with the newest sample."""
        session = _session(keep=True)
        session.flow(flow(ep(WEB), ep(API, 8080), time_ns=T0, uuid="u1"))
        session.flow(flow(ep(WEB), ep(API, 8080), time_ns=T0 + SECOND, uuid="u2"))
        session.flow(drop(ep(DNS), ep(API, 8080), time_ns=T0 + 2 * SECOND, uuid="u3"))
        found = [(c.source, c.destination, c.port, c.direction, c.verdict, c.count, c.sample_flow)
                 for c in session.delta().connections]
        assert found == [("kube-system/kube-dns", "shop/api", 8080, "ingress", "denied", 1, "u3"),
                         ("shop/web", "shop/api", 8080, "ingress", "allowed", 2, "u2")]

    def test_the_sample_keeps_only_what_resolution_reads(self) -> None:
        """The stored endpoint has the resolution fields of the flow's, not its port or workloads."""
        session = _session(keep=True)
        session.flow(flow(ep(WEB), ep(API, 8080)))
        [connection] = session.delta().connections
        assert connection.destination_endpoint == dataclasses.replace(ep(API), port=0)

    def test_replies_are_not_connections(self) -> None:
        """A reply carries no decision: no connection, as the whatif collector skips it."""
        session = _session(keep=True)
        session.flow(flow(ep(API, 0), ep(WEB, 40000), is_reply=True, direction=Direction.EGRESS))
        assert session.delta().connections == ()

    def test_sessions_not_asked_keep_none(self) -> None:
        """audit and report sessions do not pay for connections they never write."""
        session = _session(keep=False)
        session.flow(flow(ep(WEB), ep(API, 8080)))
        assert session.delta().connections == ()

    def test_keys_beyond_the_bound_are_counted_not_kept(self) -> None:
        """With one key allowed per delta, the second key's flow is counted in connections_overflow."""
        session = _session(keep=True, max_keys=1)
        session.flow(flow(ep(WEB), ep(API, 8080)))
        session.flow(flow(ep(DNS), ep(API, 8080)))
        assert (len(session.delta().connections), session.connections_overflow) == (1, 1)
