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

from auditor.errors import StoreError
from auditor.model.decision import KNP_KIND
from auditor.model.delta import AnalysisDelta, ConnectionCount, policy_column
from auditor.model.findings import Finding, FindingKey, FindingKind
from auditor.store import leases, sql_connections, sql_data, sql_findings, sql_rules
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
    _lease_token: str = ""
    _lease_ttl_ns: int = leases.DEFAULT_LEASE_NS

    @abc.abstractmethod
    def _transaction(self, operation: str, *, write: bool) -> AbstractContextManager[Executor]:
        """One transaction: committed when the block ends, rolled back if it raises.

        Write transactions are serialised; read transactions see one consistent state.  Driver
        errors come out as StoreError naming the database and `operation`.
        """

    def _exclusive(self, tx: Executor, name: str) -> bool:
        """Take a lock named `name` for the rest of the transaction if no other process holds it; False if
        one does.  A backend whose write transactions exclude each other already returns True."""
        return True

    @property
    @abc.abstractmethod
    def _where(self) -> str:
        """The database, for messages."""

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
                    for row in delta.counts), self.writer)
            if delta.rule_hits:
                sql_rules.add(tx, delta.rule_hits, self.writer)
            if delta.connections:
                sql_connections.add(tx, delta.connections)
            for from_ns, to_ns in delta.windows:
                sql_data.record_window(tx, from_ns, to_ns, "hubble", DEFAULT_JOIN_NS, self.writer)
            for gap in delta.gaps:
                sql_data.record_gap(tx, gap.from_ns, gap.to_ns, gap.reason, gap.lost_count, self.writer)
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
            return sql_data.add_counts(tx, rows, self.writer)

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

    def connections(self, since_ns: int | None = None, until_ns: int | None = None) -> list[ConnectionCount]:
        with self._transaction("read connections", write=False) as tx:
            return sql_connections.select(tx, since_ns, until_ns)

    def record_window(
        self, from_ns: int, to_ns: int, source: str = "hubble", *, join_ns: int = DEFAULT_JOIN_NS
    ) -> None:
        with self._transaction("record coverage window", write=True) as tx:
            sql_data.record_window(tx, from_ns, to_ns, source, join_ns, self.writer)

    def record_gap(self, from_ns: int, to_ns: int, reason: str, lost_count: int = 0) -> None:
        with self._transaction("record gap", write=True) as tx:
            sql_data.record_gap(tx, from_ns, to_ns, reason, lost_count, self.writer)

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
            if not self._exclusive(tx, "auditor retention"):
                return RetentionResult(skipped=True)
            result = sql_data.apply_retention(tx, now_ns - max_age_ns)
            return replace(result, rule_hits=sql_rules.retention(tx, now_ns - max_age_ns),
                           connections=sql_connections.retention(tx, now_ns - max_age_ns))

    def claim_writer(self, instance: str, *, ttl_ns: int | None = None, now_ns: int | None = None) -> None:
        if not instance:
            raise ValueError("a writer identity is a non-empty name")
        now = time.time_ns() if now_ns is None else now_ns
        token = self._lease_token or leases.new_token()
        ttl = self._lease_ttl_ns if ttl_ns is None else ttl_ns
        with self._transaction("claim writer lease", write=True) as tx:
            held = leases.take(tx, self.dialect, leases.writer_lease(instance), leases.holder_name(), token,
                               now, ttl)
        if held is not None:
            raise leases.WriterRefusedError(leases.refusal(self._where, instance, held, now))
        self.writer, self._lease_token, self._lease_ttl_ns = instance, token, ttl

    def heartbeat(self, *, now_ns: int | None = None) -> bool:
        if not self._lease_token:
            raise StoreError(f"{self._where}: heartbeat without a writer lease (claim_writer first)")
        now = time.time_ns() if now_ns is None else now_ns
        holder, token, ttl = leases.holder_name(), self._lease_token, self._lease_ttl_ns
        with self._transaction("renew writer lease", write=True) as tx:
            held = leases.take(tx, self.dialect, leases.writer_lease(self.writer), holder, token, now, ttl)
            if held is not None:
                raise leases.LeaseLostError(leases.refusal(self._where, self.writer, held, now) + " (lost)")
            name = f"{self.writer} ({holder})"
            return leases.take(tx, self.dialect, leases.CLUSTER, name, token, now, ttl) is None

    def release_writer(self) -> None:
        if self._lease_token:
            with self._transaction("release writer lease", write=True) as tx:
                leases.release(tx, self._lease_token)
            self._lease_token = ""

    def snapshot(self) -> StoreSnapshot:
        with self._transaction("snapshot", write=False) as tx:
            return sql_data.snapshot(tx)

    def schema_version(self) -> int:
        with self._transaction("read schema version", write=False) as tx:
            return current_version(tx)
