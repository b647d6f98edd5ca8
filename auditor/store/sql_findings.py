"""Findings in SQL: merge by aggregate key (the model's one rule), static findings replaced, filtered reads."""

from __future__ import annotations

import json
import zlib
from collections.abc import Collection, Iterable, Iterator, Sequence

from auditor.errors import StoreError
from auditor.model.findings import Finding, FindingKey, FindingKind, Severity, merge_findings
from auditor.store.records import FindingStatus, StoredFinding
from auditor.store.schema import Dialect, Executor, Row

_COLUMNS = (
    "key", "kind", "severity", "namespace", "workload", "peer_workload", "port", "protocol", "direction",
    "pod", "peer", "message", "policies", "details", "sample_flow", "count", "first_seen_ns", "last_seen_ns",
    "status", "resolved_at_ns",
)  # fmt: skip
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM findings"


def _replace_sql() -> str:
    """Insert, or overwrite every column of the row with the same key (the caller merged already)."""
    updates = ", ".join(f"{col} = excluded.{col}" for col in _COLUMNS[1:])
    marks = ", ".join("?" for _ in _COLUMNS)
    return (f"INSERT INTO findings ({', '.join(_COLUMNS)}) VALUES ({marks}) "
            f"ON CONFLICT (key) DO UPDATE SET {updates}")


_REPLACE = _replace_sql()
_INSERT_NEW = (f"INSERT INTO findings ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)}) "
               "ON CONFLICT (key) DO NOTHING")


def chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def marks(count: int) -> str:
    return ", ".join("?" for _ in range(count))


def in_clause(column: str, values: Collection[object]) -> str:
    """`column IN (?, ...)` for `values`; an empty collection matches nothing."""
    return f"{column} IN ({marks(len(values))})" if values else "1 = 0"


def _batch(findings: Iterable[Finding]) -> dict[str, Finding]:
    """Findings by key string, duplicates inside the batch merged in order by the model's rule."""
    batch: dict[str, Finding] = {}
    for finding in findings:
        key = finding.key.as_string()
        previous = batch.get(key)
        batch[key] = finding if previous is None else merge_findings(previous, finding)
    return batch


LOCK_CLASS = 0x41554454
"""The advisory lock class of auditor's key locks ("AUDT")."""
LOCK_BUCKETS = 128
"""Keys share this many locks: a flush of any size takes at most this many (the lock table is small)."""


def lock_keys(tx: Executor, dialect: Dialect, keys: Iterable[str]) -> None:
    """Lock the buckets of `keys` for the rest of the transaction, in ascending order (so two
    transactions never wait on each other in a cycle); a no-op where writes exclude each other."""
    if not dialect.key_lock:
        return
    buckets = sorted({zlib.crc32(key.encode()) % LOCK_BUCKETS for key in keys})
    if buckets:
        tx.query(dialect.key_lock, (LOCK_CLASS, buckets))


def _stored(tx: Executor, dialect: Dialect, keys: Sequence[str]) -> dict[str, StoredFinding]:
    """The stored rows of `keys`, row-locked (in key order, so two writers never wait in a cycle) against
    a concurrent merge of the same keys by another process where the backend has row locks."""
    stored: dict[str, StoredFinding] = {}
    for part in chunks(sorted(keys), dialect.max_params):
        sql = f"{_SELECT} WHERE key IN ({marks(len(part))}) ORDER BY key{dialect.row_lock}"
        for row in tx.query(sql, part):
            stored[row[0]] = _from_row(row)
    return stored


def upsert(tx: Executor, dialect: Dialect, findings: Iterable[Finding]) -> list[Finding]:
    """Merge a batch into the stored findings by the model's one rule (`merge_findings`: the stored
    finding is the older); a resolved finding that shows up again is reopened.  Returns the batch's
    findings whose key was not open before.

    Stored rows are read locked; keys not stored are inserted unless another writer inserted them
    meanwhile (ON CONFLICT DO NOTHING), and those are read (locked) and merged like the others, so
    concurrent writers never overwrite each other's counts."""
    batch = _batch(findings)
    if not batch:
        return []
    stored = _stored(tx, dialect, list(batch))
    fresh = sorted(key for key in batch if key not in stored)
    inserted = set(tx.insert_new(_INSERT_NEW, [_to_row(key, batch[key]) for key in fresh])) if fresh else set()
    raced = [key for key in fresh if key not in inserted]
    if raced:
        stored.update(_stored(tx, dialect, raced))
    rows, new = [], []
    for key, finding in batch.items():
        old = stored.get(key)
        if old is None or not old.is_open:
            new.append(finding)
        if old is not None:
            rows.append(_to_row(key, merge_findings(old.finding, finding)))
    tx.run_many(_REPLACE, rows)
    return new


def replace_static(tx: Executor, dialect: Dialect, findings: Iterable[Finding], kinds: Collection[FindingKind],
                   now_ns: int) -> list[Finding]:
    """The static findings of a full evaluation replace the stored ones (counts do not add up); open
    ones of `kinds` not in it are resolved.  Returns those that were not open before."""
    batch = _batch(findings)
    stored = _stored(tx, dialect, list(batch)) if batch else {}
    new = [f for key, f in batch.items() if key not in stored or not stored[key].is_open]
    tx.run_many(_REPLACE, (_to_row(key, finding) for key, finding in batch.items()))
    resolve_missing(tx, kinds, batch, now_ns)
    return new


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
