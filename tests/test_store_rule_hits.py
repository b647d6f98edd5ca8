"""Per-hour rule hit counters (schema version 5): the session counts them per flow, the store keeps,
merges, reads and prunes them, and an older database migrates to an empty table."""

from __future__ import annotations

from pathlib import Path

from auditor.app.audit import analyse_files, load_cluster_inputs
from auditor.findings.session import AnalysisOptions
from auditor.model.delta import HOUR_NS, AnalysisDelta, RuleHourCount
from auditor.store import SqliteStore, open_store
from auditor.store.schema import MIGRATIONS
from tests.report_support import DEMO

T0 = 1_700_000_000_000_000_000 - 1_700_000_000_000_000_000 % HOUR_NS
RULE = ("shop", "api-from-web", "NetworkPolicy", "Ingress", "rule 0")
ISOLATED = ("shop", "default-deny", "NetworkPolicy", "", "")


def _delta(*hits: RuleHourCount) -> AnalysisDelta:
    return AnalysisDelta(rule_hits=hits)


class TestStore:
    def test_hits_add_up_per_hour_and_rule(self, tmp_path: Path) -> None:
        """Two deltas for the same rule and hour add; the recorded hour is listed with its flows."""
        with open_store(f"sqlite:///{tmp_path / 'a.db'}") as store:
            store.apply(_delta(RuleHourCount(T0 + 5, 2, RULE), RuleHourCount(T0, 3)))
            store.apply(_delta(RuleHourCount(T0 + 9, 4, RULE), RuleHourCount(T0 + 1, 1)))
            rows = store.rule_hits(T0, T0 + HOUR_NS)
        assert [(r.kind, r.rule, r.count) for r in rows if r.kind] == [("NetworkPolicy", "rule 0", 6)]
        assert [(r.hour_ns, r.count) for r in rows if not r.kind] == [(T0, 4)]

    def test_window_selects_hours(self, tmp_path: Path) -> None:
        """Only the hours starting in the window are summed."""
        with open_store(f"sqlite:///{tmp_path / 'a.db'}") as store:
            store.apply(_delta(RuleHourCount(T0, 1, RULE), RuleHourCount(T0 + 2 * HOUR_NS, 5, RULE)))
            assert [r.count for r in store.rule_hits(T0 + HOUR_NS, T0 + 3 * HOUR_NS)] == [5]

    def test_isolating_hits_have_no_rule(self, tmp_path: Path) -> None:
        """A policy that isolated a denied flow is stored with empty direction and rule."""
        with open_store(f"sqlite:///{tmp_path / 'a.db'}") as store:
            store.apply(_delta(RuleHourCount(T0, 7, ISOLATED)))
            (row,) = store.rule_hits(T0, T0 + HOUR_NS)
        assert (row.name, row.direction, row.rule, row.count) == ("default-deny", "", "", 7)

    def test_retention_prunes_old_hours(self, tmp_path: Path) -> None:
        """apply_retention deletes rule hits of hours before the cutoff and counts them."""
        with open_store(f"sqlite:///{tmp_path / 'a.db'}") as store:
            store.apply(_delta(RuleHourCount(T0, 1, RULE), RuleHourCount(T0 + 3 * HOUR_NS, 1, RULE)))
            result = store.apply_retention(T0 + 4 * HOUR_NS, max_age_ns=2 * HOUR_NS)
            assert result.rule_hits == 1
            assert [r.count for r in store.rule_hits(0, T0 + 5 * HOUR_NS)] == [1]

    def test_version_4_database_migrates_with_no_recorded_hours(self, tmp_path: Path) -> None:
        """An older store gains an empty rule_hits table: no hour counts as recorded."""
        path = str(tmp_path / "a.db")
        SqliteStore(path, migrations=MIGRATIONS[:4]).close()
        with SqliteStore(path) as store:
            assert store.schema_version() == MIGRATIONS[-1].version
            assert store.rule_hits(0, 2**62) == []


class TestDelta:
    def test_then_merges_rule_hits(self) -> None:
        """A failed flush's rule hits are merged with the next delta's, per hour and key."""
        later = _delta(RuleHourCount(T0, 2, RULE), RuleHourCount(T0, 1))
        merged = _delta(RuleHourCount(T0, 1, RULE)).then(later)
        assert sorted((h.count, h.key is None) for h in merged.rule_hits) == [(1, True), (3, False)]

    def test_rule_hits_make_a_delta_non_empty(self) -> None:
        """A delta with only rule hits is still written."""
        assert not _delta(RuleHourCount(T0, 1)).empty


class TestSession:
    def test_demo_session_counts_flows_per_rule(self) -> None:
        """Over the demo flows, every analysed flow's hour is recorded and allowed flows hit their rules."""
        inputs = load_cluster_inputs([str(DEMO / "cluster.yaml")], None)
        delta = analyse_files(inputs.history(), AnalysisOptions(), [str(DEMO / "flows.jsonl")]).delta
        recorded = sum(h.count for h in delta.rule_hits if h.key is None)
        assert recorded == sum(row.count for row in delta.counts if row.policy is None)
        allowed = sum(row.count for row in delta.counts if row.verdict == "ALLOWED")
        admitted = sum(h.count for h in delta.rule_hits if h.key is not None and h.key[4])
        assert admitted >= allowed > 0
