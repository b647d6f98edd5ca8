"""Per-hour rule hit counters (schema version 5) in SQL: written by `apply`, read by store-mode reports.

A row is (hour, policy kind, namespace, name, direction, rule path) -> flows; direction and rule ""
count the denied flows a policy isolated; the row with an empty kind counts the hour's analysed
flows and marks the hour as recorded (an hour the daemon analysed before it kept rule hits has no
such row, so a report does not take missing hits for unused rules).
"""

from __future__ import annotations

from collections.abc import Iterable

from auditor.model.delta import RuleHourCount
from auditor.store.records import RuleHitRow, hour_floor
from auditor.store.schema import Executor

_KEY = "hour_ns, writer, kind, namespace, name, direction, rule"
_ADD = (f"INSERT INTO rule_hits ({_KEY}, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        f"ON CONFLICT ({_KEY}) DO UPDATE SET count = rule_hits.count + excluded.count")


def add(tx: Executor, hits: Iterable[RuleHourCount], writer: str = "") -> int:
    """Add the delta's hits to the hour rows of `writer`; the number of rows written."""
    merged: dict[tuple[int, str, str, str, str, str, str], int] = {}
    for hit in hits:
        namespace, name, kind, direction, rule = hit.key or ("", "", "", "", "")
        key = (hour_floor(hit.hour_ns), writer, kind, namespace, name, direction, rule)
        merged[key] = merged.get(key, 0) + hit.count
    tx.run_many(_ADD, ((*key, count) for key, count in merged.items()))
    return len(merged)


def select(tx: Executor, since_ns: int, until_ns: int) -> list[RuleHitRow]:
    """Sums over the hours starting in [hour_floor(since), until), per rule, plus one row per recorded
    hour (empty kind; its `hour_ns` set), ordered."""
    params = (hour_floor(since_ns), until_ns)
    rules = tx.query(
        "SELECT kind, namespace, name, direction, rule, SUM(count) FROM rule_hits "
        "WHERE hour_ns >= ? AND hour_ns < ? AND kind <> '' "
        "GROUP BY kind, namespace, name, direction, rule ORDER BY kind, namespace, name, direction, rule",
        params)
    hours = tx.query("SELECT hour_ns, SUM(count) FROM rule_hits WHERE hour_ns >= ? AND hour_ns < ? "
                     "AND kind = '' GROUP BY hour_ns ORDER BY hour_ns", params)
    return [*(RuleHitRow(0, str(k), str(ns), str(n), str(d), str(r), int(c)) for k, ns, n, d, r, c in rules),
            *(RuleHitRow(int(h), "", "", "", "", "", int(c)) for h, c in hours)]


def retention(tx: Executor, cutoff_ns: int) -> int:
    """Delete the hours that ended before the cutoff, like the flow counters."""
    return tx.run("DELETE FROM rule_hits WHERE hour_ns < ?", (hour_floor(cutoff_ns),))
