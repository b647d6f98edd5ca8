"""Findings in SQL: upsert by aggregate key, filtered reads, resolving static findings."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Iterable, Iterator, Sequence

from auditor.errors import StoreError
from auditor.model.findings import Finding, FindingKey, FindingKind, Severity
from auditor.store.records import FindingStatus, StoredFinding
from auditor.store.schema import Dialect, Executor, Row

_COLUMNS = (
    "key", "kind", "severity", "namespace", "workload", "peer_workload", "port", "protocol", "direction",
    "pod", "peer", "message", "policies", "details", "sample_flow", "count", "first_seen_ns", "last_seen_ns",
    "status", "resolved_at_ns",
)  # fmt: skip
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM findings"
_LATEST_WINS = ("severity", "pod", "peer", "message", "policies", "details", "sample_flow")
"""Columns taken from whichever side was seen last (ties go to the incoming finding)."""


def _upsert_sql() -> str:
    newer = "excluded.last_seen_ns >= findings.last_seen_ns"
    updates = [f"{col} = CASE WHEN {newer} THEN excluded.{col} ELSE findings.{col} END" for col in _LATEST_WINS]
    updates += [
        "count = findings.count + excluded.count",
        "first_seen_ns = CASE WHEN findings.first_seen_ns = 0 OR (excluded.first_seen_ns <> 0 AND "
        "excluded.first_seen_ns < findings.first_seen_ns) "
        "THEN excluded.first_seen_ns ELSE findings.first_seen_ns END",
        "last_seen_ns = CASE WHEN excluded.last_seen_ns > findings.last_seen_ns "
        "THEN excluded.last_seen_ns ELSE findings.last_seen_ns END",
        "status = excluded.status",
        "resolved_at_ns = 0",
    ]
    marks = ", ".join("?" for _ in _COLUMNS)
    return (
        f"INSERT INTO findings ({', '.join(_COLUMNS)}) VALUES ({marks}) "
        f"ON CONFLICT (key) DO UPDATE SET {', '.join(updates)}"
    )


_UPSERT = _upsert_sql()


def merge(old: Finding, new: Finding) -> Finding:
    """The in-memory twin of the SQL upsert, for duplicates inside one batch."""
    latest = new if new.last_seen_ns >= old.last_seen_ns else old
    firsts = [t for t in (old.first_seen_ns, new.first_seen_ns) if t]
    return dataclasses.replace(
        latest,
        count=old.count + new.count,
        first_seen_ns=min(firsts) if firsts else 0,
        last_seen_ns=max(old.last_seen_ns, new.last_seen_ns),
    )


def chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def marks(count: int) -> str:
    return ", ".join("?" for _ in range(count))


def in_clause(column: str, values: Collection[object]) -> str:
    """`column IN (?, ...)` for `values`; an empty collection matches nothing."""
    return f"{column} IN ({marks(len(values))})" if values else "1 = 0"


def upsert(tx: Executor, dialect: Dialect, findings: Iterable[Finding]) -> list[Finding]:
    """Merge a batch; the findings (merged within the batch) that were not open before."""
    batch: dict[str, Finding] = {}
    for finding in findings:
        key = finding.key.as_string()
        previous = batch.get(key)
        batch[key] = finding if previous is None else merge(previous, finding)
    if not batch:
        return []
    already_open: set[str] = set()
    for part in chunks(list(batch), dialect.max_params):
        sql = f"SELECT key FROM findings WHERE status = 'open' AND key IN ({marks(len(part))})"
        already_open.update(row[0] for row in tx.query(sql, part))
    tx.run_many(_UPSERT, (_to_row(key, finding) for key, finding in batch.items()))
    return [finding for key, finding in batch.items() if key not in already_open]


def _to_row(key: str, f: Finding) -> tuple[object, ...]:
    return (
        key, f.kind.value, f.severity.value, f.namespace, f.workload, f.peer_workload, f.port, f.protocol,
        f.direction, f.pod, f.peer, f.message, json.dumps(list(f.policies)),
        json.dumps([list(pair) for pair in f.details]), f.sample_flow, f.count, f.first_seen_ns,
        f.last_seen_ns, FindingStatus.OPEN.value, 0,
    )  # fmt: skip


def _from_row(row: Row) -> StoredFinding:
    values = dict(zip(_COLUMNS, row, strict=True))
    try:
        finding = Finding(
            kind=FindingKind(values["kind"]),
            severity=Severity(values["severity"]),
            namespace=values["namespace"],
            workload=values["workload"],
            message=values["message"],
            pod=values["pod"],
            peer=values["peer"],
            peer_workload=values["peer_workload"],
            port=int(values["port"]),
            protocol=values["protocol"],
            direction=values["direction"],
            policies=tuple(json.loads(values["policies"])),
            count=int(values["count"]),
            first_seen_ns=int(values["first_seen_ns"]),
            last_seen_ns=int(values["last_seen_ns"]),
            sample_flow=values["sample_flow"],
            details=tuple((str(k), str(v)) for k, v in json.loads(values["details"])),
        )
        status = FindingStatus(values["status"])
    except (ValueError, TypeError) as exc:
        raise StoreError(f"finding {values['key']!r}: unreadable row: {exc}") from exc
    return StoredFinding(finding=finding, status=status, resolved_at_ns=int(values["resolved_at_ns"]))


def select(
    tx: Executor,
    *,
    since_ns: int | None,
    until_ns: int | None,
    namespaces: Collection[str] | None,
    kinds: Collection[FindingKind] | None,
    open_only: bool,
) -> list[StoredFinding]:
    where: list[str] = []
    params: list[object] = []
    if since_ns is not None:
        where.append("(last_seen_ns = 0 OR last_seen_ns >= ?)")
        params.append(since_ns)
    if until_ns is not None:
        where.append("(last_seen_ns = 0 OR first_seen_ns < ?)")
        params.append(until_ns)
    if namespaces is not None:
        where.append(in_clause("namespace", namespaces))
        params.extend(namespaces)
    if kinds is not None:
        where.append(in_clause("kind", kinds))
        params.extend(kind.value for kind in kinds)
    if open_only:
        where.append("status = 'open'")
    sql = _SELECT + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY key"
    return [_from_row(row) for row in tx.query(sql, params)]


def resolve_missing(
    tx: Executor, kinds: Collection[FindingKind], keep_keys: Iterable[FindingKey | str], now_ns: int
) -> list[Finding]:
    if not kinds:
        return []
    keep = {key if isinstance(key, str) else key.as_string() for key in keep_keys}
    sql = f"{_SELECT} WHERE status = 'open' AND kind IN ({marks(len(kinds))}) ORDER BY key"
    gone = [row for row in tx.query(sql, [kind.value for kind in kinds]) if row[0] not in keep]
    tx.run_many(
        "UPDATE findings SET status = 'resolved', resolved_at_ns = ? WHERE key = ?",
        ((now_ns, row[0]) for row in gone),
    )
    return [_from_row(row).finding for row in gone]
