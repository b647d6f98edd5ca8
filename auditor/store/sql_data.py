"""Counters, coverage, policy history, retention and the snapshot in SQL."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from auditor.errors import StoreError
from auditor.model.findings import FindingKind, Severity
from auditor.store.records import (
    COUNTER_COLUMNS,
    CounterRow,
    Coverage,
    Gap,
    OpenFindingCount,
    PolicyChangeRecord,
    RetentionResult,
    StoreSnapshot,
    Window,
    hour_floor,
)
from auditor.store.schema import Executor, current_version
from auditor.store.sql_findings import in_clause, marks

_COUNTER_KEY = "hour_ns, writer, namespace, workload, verdict, direction, policy"
_ADD_COUNTS = (
    f"INSERT INTO counters ({_COUNTER_KEY}, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    f"ON CONFLICT ({_COUNTER_KEY}) DO UPDATE SET count = counters.count + excluded.count"
)
_RUNTIME_KINDS = tuple(kind.value for kind in FindingKind if not kind.is_static)


def add_counts(tx: Executor, rows: Iterable[CounterRow], writer: str = "") -> int:
    """Add to the hour rows of `writer` (each writer has its own rows; reads sum them)."""
    merged: dict[tuple[int, str, str, str, str, str, str], int] = {}
    for row in rows:
        key = (hour_floor(row.hour_ns), writer, row.namespace, row.workload, row.verdict, row.direction,
               row.policy)
        merged[key] = merged.get(key, 0) + row.count
    tx.run_many(_ADD_COUNTS, ((*key, count) for key, count in merged.items()))
    return len(merged)


def counts(
    tx: Executor,
    since_ns: int,
    until_ns: int,
    group_by: Sequence[str],
    namespaces: Collection[str] | None,
    verdicts: Collection[str] | None,
) -> list[CounterRow]:
    unknown = [name for name in group_by if name not in COUNTER_COLUMNS]
    if unknown or len(set(group_by)) != len(group_by):
        raise ValueError(f"group_by {list(group_by)!r}: use distinct names among {', '.join(COUNTER_COLUMNS)}")
    columns = ["hour_ns" if name == "hour" else name for name in group_by]
    where = "hour_ns >= ? AND hour_ns < ?"
    params: list[object] = [hour_floor(since_ns), until_ns]
    for column, allowed in (("namespace", namespaces), ("verdict", verdicts)):
        if allowed is not None:
            where += f" AND {in_clause(column, allowed)}"
            params.extend(allowed)
    select = ", ".join([*columns, "SUM(count)"])
    sql = f"SELECT {select} FROM counters WHERE {where}"
    if columns:
        sql += f" GROUP BY {', '.join(columns)} ORDER BY SUM(count) DESC, {', '.join(columns)}"
    result = []
    for row in tx.query(sql, params):
        if row[-1] is None:  # SUM over no rows without GROUP BY
            continue
        values: dict[str, object] = dict.fromkeys(
            ("namespace", "workload", "verdict", "direction", "policy"), ""
        )
        values["hour_ns"] = 0
        values.update(zip(columns, row[:-1], strict=True))
        result.append(CounterRow(count=int(row[-1]), **values))  # type: ignore[arg-type]
    return result


def record_window(tx: Executor, from_ns: int, to_ns: int, source: str, join_ns: int, writer: str = "") -> None:
    """Merge into the touching windows of the same source and writer (writers keep their own)."""
    if to_ns < from_ns:
        raise ValueError(f"coverage window of {source!r} ends ({to_ns}) before it starts ({from_ns})")
    touching = tx.query(
        "SELECT id, from_ns, to_ns FROM windows WHERE source = ? AND writer = ? AND from_ns <= ? "
        "AND to_ns >= ? ORDER BY id",
        (source, writer, to_ns + join_ns, from_ns - join_ns),
    )
    if not touching:
        tx.run("INSERT INTO windows (source, writer, from_ns, to_ns) VALUES (?, ?, ?, ?)",
               (source, writer, from_ns, to_ns))
        return
    start = min(from_ns, *(row[1] for row in touching))
    end = max(to_ns, *(row[2] for row in touching))
    tx.run("UPDATE windows SET from_ns = ?, to_ns = ? WHERE id = ?", (start, end, touching[0][0]))
    tx.run_many("DELETE FROM windows WHERE id = ?", ((row[0],) for row in touching[1:]))


def record_gap(tx: Executor, from_ns: int, to_ns: int, reason: str, lost_count: int, writer: str = "") -> None:
    if to_ns < from_ns or lost_count < 0:
        raise ValueError(f"gap {reason!r}: bad span [{from_ns}, {to_ns}] or lost count {lost_count}")
    tx.run(
        "INSERT INTO gaps (from_ns, to_ns, reason, lost_count, writer) VALUES (?, ?, ?, ?, ?)",
        (from_ns, to_ns, reason, lost_count, writer),
    )


def coverage(tx: Executor, since_ns: int, until_ns: int) -> Coverage:
    """The cluster-wide view: windows of one source from every writer as their union; every writer's gaps."""
    span = (since_ns, until_ns)
    windows = _union(
        Window(from_ns=max(row[0], since_ns), to_ns=min(row[1], until_ns), source=row[2])
        for row in tx.query(
            "SELECT from_ns, to_ns, source FROM windows WHERE to_ns >= ? AND from_ns < ? "
            "ORDER BY from_ns, source",
            span,
        )
    )
    gaps = tuple(
        Gap(from_ns=row[0], to_ns=row[1], reason=row[2], lost_count=row[3])
        for row in tx.query(
            "SELECT from_ns, to_ns, reason, lost_count FROM gaps WHERE to_ns >= ? AND from_ns < ? "
            "ORDER BY from_ns, id",
            span,
        )
    )
    return Coverage(
        since_ns=since_ns,
        until_ns=until_ns,
        windows=windows,
        gaps=gaps,
        lost_total=sum(gap.lost_count for gap in gaps),
    )


def _union(windows: Iterable[Window]) -> tuple[Window, ...]:
    """Overlapping windows of the same source (different writers) as one; ordered by start, source."""
    last: dict[str, int] = {}
    out: list[Window] = []
    for window in windows:
        at = last.get(window.source)
        if at is not None and window.from_ns <= out[at].to_ns:
            out[at] = Window(out[at].from_ns, max(out[at].to_ns, window.to_ns), window.source)
        else:
            last[window.source] = len(out)
            out.append(window)
    return tuple(out)


def record_policy_change(tx: Executor, record: PolicyChangeRecord) -> bool:
    return (
        tx.run(
            "INSERT INTO policy_changes (time_ns, change_type, kind, namespace, name, revision, spec_json) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (kind, namespace, name, revision, change_type) DO NOTHING",
            (
                record.time_ns,
                record.change_type,
                record.kind,
                record.namespace,
                record.name,
                record.revision,
                record.spec_json,
            ),
        )
        > 0
    )


def policy_changes(
    tx: Executor, since_ns: int | None, until_ns: int | None, namespaces: Collection[str] | None
) -> list[PolicyChangeRecord]:
    where, params = ["1 = 1"], list[object]()
    if since_ns is not None:
        where.append("time_ns >= ?")
        params.append(since_ns)
    if until_ns is not None:
        where.append("time_ns < ?")
        params.append(until_ns)
    if namespaces is not None:
        where.append(in_clause("namespace", namespaces))
        params.extend(namespaces)
    sql = (
        "SELECT time_ns, change_type, namespace, name, revision, spec_json, kind FROM policy_changes "
        f"WHERE {' AND '.join(where)} ORDER BY time_ns, id"
    )
    return [PolicyChangeRecord(*row) for row in tx.query(sql, params)]


def apply_retention(tx: Executor, cutoff_ns: int) -> RetentionResult:
    runtime = marks(len(_RUNTIME_KINDS))
    return RetentionResult(
        counters=tx.run("DELETE FROM counters WHERE hour_ns < ?", (hour_floor(cutoff_ns),)),
        windows=tx.run("DELETE FROM windows WHERE to_ns < ?", (cutoff_ns,)),
        gaps=tx.run("DELETE FROM gaps WHERE to_ns < ?", (cutoff_ns,)),
        findings=tx.run(
            "DELETE FROM findings WHERE (status = 'resolved' AND resolved_at_ns < ?) "
            f"OR (kind IN ({runtime}) AND last_seen_ns <> 0 AND last_seen_ns < ?)",
            (cutoff_ns, *_RUNTIME_KINDS, cutoff_ns),
        ),
        # The last change of a policy still in force says which revision was in force: keep it.
        policy_changes=tx.run(
            "DELETE FROM policy_changes WHERE time_ns < ? AND (change_type = 'DELETED' OR time_ns < "
            "(SELECT MAX(p.time_ns) FROM policy_changes p "
            "WHERE p.kind = policy_changes.kind AND p.namespace = policy_changes.namespace "
            "AND p.name = policy_changes.name))",
            (cutoff_ns,),
        ),
    )


def snapshot(tx: Executor) -> StoreSnapshot:
    groups = tx.query(
        "SELECT kind, severity, namespace, COUNT(*) FROM findings WHERE status = 'open' "
        "GROUP BY kind, severity, namespace ORDER BY kind, severity, namespace"
    )
    try:
        open_findings = tuple(
            OpenFindingCount(kind=FindingKind(k), severity=Severity(s), namespace=ns, count=int(n))
            for k, s, ns, n in groups
        )
    except ValueError as exc:
        raise StoreError(f"open findings: unreadable kind or severity: {exc}") from exc
    window = tx.query("SELECT MIN(from_ns), MAX(to_ns) FROM windows")[0]
    return StoreSnapshot(
        schema_version=current_version(tx),
        open_findings=open_findings,
        resolved_findings=_scalar(tx, "SELECT COUNT(*) FROM findings WHERE status = 'resolved'"),
        coverage_from_ns=int(window[0] or 0),
        coverage_to_ns=int(window[1] or 0),
        lost_total=_scalar(tx, "SELECT COALESCE(SUM(lost_count), 0) FROM gaps"),
        policy_changes=_scalar(tx, "SELECT COUNT(*) FROM policy_changes"),
    )


def _scalar(tx: Executor, sql: str) -> int:
    return int(tx.query(sql)[0][0] or 0)
