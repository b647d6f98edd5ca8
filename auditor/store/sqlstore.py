"""`SqlStore`: the whole `Store` in dialect-neutral SQL; a backend only supplies transactions.

A backend (SQLite here, PostgreSQL later) subclasses it and implements `_transaction`, which opens
a transaction on one of its connections and hands out an `Executor` that speaks the backend's
parameter style.  Everything else, including the schema, is shared.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace

from auditor.model.decision import KNP_KIND
from auditor.model.delta import AnalysisDelta, policy_column
from auditor.model.findings import Finding, FindingKey, FindingKind
from auditor.store import sql_data, sql_findings, sql_rules
from auditor.store.base import STATIC_KINDS, Store
from auditor.store.records import (
    DEFAULT_JOIN_NS,
    DEFAULT_RETENTION_NS,
    CounterRow,
    Coverage,
    PolicyChangeRecord,
    RetentionResult,
    RuleHitRow,
    StoredFinding,
    StoreSnapshot,
)
from auditor.store.schema import Dialect, Executor, current_version


def _change_record(time_ns: int, change_type: str, namespace: str, name: str, revision: str, spec_json: str,
                   kind: str) -> PolicyChangeRecord:
    """A history record; the policy's kind goes with it once the history has a kind column."""
    if "kind" in PolicyChangeRecord.__dataclass_fields__:
        return PolicyChangeRecord(time_ns, change_type, namespace, name, revision, spec_json,
                                  kind=kind)  # type: ignore[call-arg,unused-ignore]
    return PolicyChangeRecord(time_ns, change_type, namespace, name, revision, spec_json)


class SqlStore(Store):
    dialect: Dialect

    @abc.abstractmethod
    def _transaction(self, operation: str, *, write: bool) -> AbstractContextManager[Executor]:
        """One transaction: committed when the block ends, rolled back if it raises.

        Write transactions are serialised; read transactions see one consistent state.  Driver
        errors come out as StoreError naming the database and `operation`.
        """

    def apply(self, delta: AnalysisDelta, *, now_ns: int | None = None) -> list[Finding]:
        now = time.time_ns() if now_ns is None else now_ns
        with self._transaction("apply analysis delta", write=True) as tx:
            new = sql_findings.upsert(tx, self.dialect, delta.findings)
            if delta.static is not None:
                new += sql_findings.replace_static(tx, self.dialect, delta.static, STATIC_KINDS, now)
            if delta.counts:
                sql_data.add_counts(tx, (
                    CounterRow(row.hour_ns, row.namespace, "", row.verdict, row.direction,
                               policy_column(row.policy) if row.policy else "", row.count)
                    for row in delta.counts))
            if delta.rule_hits:
                sql_rules.add(tx, delta.rule_hits)
            for from_ns, to_ns in delta.windows:
                sql_data.record_window(tx, from_ns, to_ns, "hubble", DEFAULT_JOIN_NS)
            for gap in delta.gaps:
                sql_data.record_gap(tx, gap.from_ns, gap.to_ns, gap.reason, gap.lost_count)
            for change in delta.policy_changes:
                sql_data.record_policy_change(tx, _change_record(
                    change.time_ns, change.change_type, change.namespace, change.name, change.revision,
                    change.manifest, change.kind))
            return new

    def upsert_findings(self, findings: Iterable[Finding]) -> list[Finding]:
        with self._transaction("upsert findings", write=True) as tx:
            return sql_findings.upsert(tx, self.dialect, findings)

    def stored_findings(
        self,
        *,
        since_ns: int | None = None,
        until_ns: int | None = None,
        namespaces: Collection[str] | None = None,
        kinds: Collection[FindingKind] | None = None,
        open_only: bool = False,
    ) -> list[StoredFinding]:
        with self._transaction("read findings", write=False) as tx:
            return sql_findings.select(
                tx,
                since_ns=since_ns,
                until_ns=until_ns,
                namespaces=namespaces,
                kinds=kinds,
                open_only=open_only,
            )

    def resolve_missing_static(
        self,
        keep_keys: Iterable[FindingKey | str],
        kinds: Collection[FindingKind] = STATIC_KINDS,
        *,
        now_ns: int | None = None,
    ) -> list[Finding]:
        now = time.time_ns() if now_ns is None else now_ns
        with self._transaction("resolve findings", write=True) as tx:
            return sql_findings.resolve_missing(tx, kinds, keep_keys, now)

    def add_counts(self, rows: Iterable[CounterRow]) -> int:
        with self._transaction("add counters", write=True) as tx:
            return sql_data.add_counts(tx, rows)

    def counts(
        self,
        since_ns: int,
        until_ns: int,
        group_by: Sequence[str] = ("namespace", "verdict"),
        *,
        namespaces: Collection[str] | None = None,
        verdicts: Collection[str] | None = None,
    ) -> list[CounterRow]:
        with self._transaction("read counters", write=False) as tx:
            return sql_data.counts(tx, since_ns, until_ns, tuple(group_by), namespaces, verdicts)

    def rule_hits(self, since_ns: int, until_ns: int) -> list[RuleHitRow]:
        with self._transaction("read rule hits", write=False) as tx:
            return sql_rules.select(tx, since_ns, until_ns)

    def record_window(
        self, from_ns: int, to_ns: int, source: str = "hubble", *, join_ns: int = DEFAULT_JOIN_NS
    ) -> None:
        with self._transaction("record coverage window", write=True) as tx:
            sql_data.record_window(tx, from_ns, to_ns, source, join_ns)

    def record_gap(self, from_ns: int, to_ns: int, reason: str, lost_count: int = 0) -> None:
        with self._transaction("record gap", write=True) as tx:
            sql_data.record_gap(tx, from_ns, to_ns, reason, lost_count)

    def coverage(self, since_ns: int, until_ns: int) -> Coverage:
        with self._transaction("read coverage", write=False) as tx:
            return sql_data.coverage(tx, since_ns, until_ns)

    def record_policy_change(
        self, time_ns: int, change_type: str, namespace: str, name: str, revision: str, spec_json: str,
        *, kind: str = KNP_KIND,
    ) -> bool:
        record = PolicyChangeRecord(time_ns, change_type, namespace, name, revision, spec_json, kind)
        with self._transaction("record policy change", write=True) as tx:
            return sql_data.record_policy_change(tx, record)

    def policy_changes(
        self,
        since_ns: int | None = None,
        until_ns: int | None = None,
        *,
        namespaces: Collection[str] | None = None,
    ) -> list[PolicyChangeRecord]:
        with self._transaction("read policy history", write=False) as tx:
            return sql_data.policy_changes(tx, since_ns, until_ns, namespaces)

    def apply_retention(self, now_ns: int, max_age_ns: int = DEFAULT_RETENTION_NS) -> RetentionResult:
        if max_age_ns <= 0:
            raise ValueError(f"retention max age must be positive, got {max_age_ns} ns")
        with self._transaction("apply retention", write=True) as tx:
            result = sql_data.apply_retention(tx, now_ns - max_age_ns)
            return replace(result, rule_hits=sql_rules.retention(tx, now_ns - max_age_ns))

    def snapshot(self) -> StoreSnapshot:
        with self._transaction("snapshot", write=False) as tx:
            return sql_data.snapshot(tx)

    def schema_version(self) -> int:
        with self._transaction("read schema version", write=False) as tx:
            return current_version(tx)
