"""The `Store` interface every backend implements; callers depend on this only."""

from __future__ import annotations

import abc
from collections.abc import Collection, Iterable, Sequence
from types import TracebackType

from auditor.model.decision import KNP_KIND
from auditor.model.delta import AnalysisDelta, ConnectionCount
from auditor.model.events import LostEvents
from auditor.model.findings import Finding, FindingKey, FindingKind
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

STATIC_KINDS = tuple(kind for kind in FindingKind if kind.is_static)


class Store(abc.ABC):
    """Findings, per-hour counters, coverage, gaps and policy history.

    Every write method commits one transaction before it returns, so another thread or process
    sees the data as soon as the call is done.  Implementations are safe to share between threads.
    Failures raise `auditor.errors.StoreError` naming the database.
    """

    url: str

    # --- one analysis delta -----------------------------------------------------------------
    @abc.abstractmethod
    def apply(self, delta: AnalysisDelta, *, now_ns: int | None = None) -> list[Finding]:
        """Write one `AnalysisDelta` in one transaction (all of it or, on error, none); return the
        findings that were not open before.

        Runtime findings merge with the stored ones by the model's rule; static findings, when the
        delta has them, replace the stored ones (missing ones are resolved at `now_ns`); counters add
        to their hours; windows, gaps and policy changes are recorded as their own methods do.
        """

    # --- findings ---------------------------------------------------------------------------
    @abc.abstractmethod
    def upsert_findings(self, findings: Iterable[Finding]) -> list[Finding]:
        """Merge findings by key in one transaction; return those that were not open before.

        The stored finding is merged with the incoming one by the model's one rule
        (`auditor.model.findings.merge_findings`: counts add, the highest severity and the first
        sample stay, message, pod and peer come from the incoming one).  A resolved finding that shows
        up again is reopened and returned as new.
        """

    @abc.abstractmethod
    def stored_findings(
        self,
        *,
        since_ns: int | None = None,
        until_ns: int | None = None,
        namespaces: Collection[str] | None = None,
        kinds: Collection[FindingKind] | None = None,
        open_only: bool = False,
    ) -> list[StoredFinding]:
        """Findings whose [first_seen, last_seen] overlaps [since, until), with their status.

        Timeless findings (last_seen 0, e.g. static ones) match any time range.
        """

    def findings(
        self,
        *,
        since_ns: int | None = None,
        until_ns: int | None = None,
        namespaces: Collection[str] | None = None,
        kinds: Collection[FindingKind] | None = None,
        open_only: bool = False,
    ) -> list[Finding]:
        """Like `stored_findings`, without the lifecycle."""
        rows = self.stored_findings(
            since_ns=since_ns, until_ns=until_ns, namespaces=namespaces, kinds=kinds, open_only=open_only
        )
        return [row.finding for row in rows]

    @abc.abstractmethod
    def resolve_missing_static(
        self,
        keep_keys: Iterable[FindingKey | str],
        kinds: Collection[FindingKind] = STATIC_KINDS,
        *,
        now_ns: int | None = None,
    ) -> list[Finding]:
        """Resolve open findings of `kinds` whose key is not in `keep_keys`; return them.

        Call it with the keys of a full static evaluation, so findings a policy fix removed close.
        """

    # --- counters ---------------------------------------------------------------------------
    @abc.abstractmethod
    def add_counts(self, rows: Iterable[CounterRow]) -> int:
        """Add pre-aggregated counts to their hour buckets in one transaction; return rows written."""

    @abc.abstractmethod
    def counts(
        self,
        since_ns: int,
        until_ns: int,
        group_by: Sequence[str] = ("namespace", "verdict"),
        *,
        namespaces: Collection[str] | None = None,
        verdicts: Collection[str] | None = None,
    ) -> list[CounterRow]:
        """Sums of hour buckets starting in [hour_floor(since), until), grouped by COUNTER_COLUMNS names.

        Largest count first; columns not grouped are "" (hour_ns 0).  `namespaces` and `verdicts`
        restrict the rows summed (an empty collection matches nothing).
        """

    @abc.abstractmethod
    def rule_hits(self, since_ns: int, until_ns: int) -> list[RuleHitRow]:
        """Flows per rule (and per isolating policy) over the hours starting in [hour_floor(since),
        until), and the hours for which rule hits were recorded (rows with an empty kind)."""

    # --- connections ------------------------------------------------------------------------
    @abc.abstractmethod
    def connections(self, since_ns: int | None = None, until_ns: int | None = None) -> list[ConnectionCount]:
        """Distinct judged connections whose [first_seen, last_seen] overlaps [since, until), in key order
        (written by `apply` from the deltas of sessions that keep connections: the daemon's)."""

    # --- coverage ---------------------------------------------------------------------------
    @abc.abstractmethod
    def record_window(
        self, from_ns: int, to_ns: int, source: str = "hubble", *, join_ns: int = DEFAULT_JOIN_NS
    ) -> None:
        """Record that flows from `source` were observed over [from_ns, to_ns].

        Windows of the same source that overlap or lie within `join_ns` of it are merged into one.
        """

    @abc.abstractmethod
    def record_gap(self, from_ns: int, to_ns: int, reason: str, lost_count: int = 0) -> None:
        """Record a span with missing data (lost events, stream down)."""

    def record_lost_events(self, event: LostEvents) -> None:
        """A Hubble LostEvents as a gap, reason `lost-events:<source>[@node]`."""
        self.record_gap(*event.span_ns, event.gap_reason, event.count)

    @abc.abstractmethod
    def coverage(self, since_ns: int, until_ns: int) -> Coverage:
        """Windows (clipped) and gaps overlapping [since_ns, until_ns), and the events lost in them."""

    # --- policy history ---------------------------------------------------------------------
    @abc.abstractmethod
    def record_policy_change(
        self, time_ns: int, change_type: str, namespace: str, name: str, revision: str, spec_json: str,
        *, kind: str = KNP_KIND,
    ) -> bool:
        """Append to the history; False when this (kind, namespace, name, revision, type) is already there.

        `kind` is the policy's kind (NetworkPolicy, CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy;
        `namespace` "" for the last).
        """

    @abc.abstractmethod
    def policy_changes(
        self,
        since_ns: int | None = None,
        until_ns: int | None = None,
        *,
        namespaces: Collection[str] | None = None,
    ) -> list[PolicyChangeRecord]:
        """Changes with time in [since, until), oldest first."""

    # --- writers (many daemons, one store) ---------------------------------------------------
    writer: str = ""
    """The identity this store writes counters, windows and gaps under ("" until `claim_writer`)."""

    @abc.abstractmethod
    def claim_writer(self, instance: str, *, ttl_ns: int | None = None, now_ns: int | None = None) -> None:
        """Write as `instance` from now on, holding its lease; StoreError (one line) when another live
        process holds that identity.  Renew with `heartbeat`, give it up with `release_writer`."""

    @abc.abstractmethod
    def heartbeat(self, *, now_ns: int | None = None) -> bool:
        """Renew this writer's lease (StoreError when it was lost to another process) and take or renew the
        cluster lease when free; True while this writer holds the cluster lease."""

    @abc.abstractmethod
    def release_writer(self) -> None:
        """Give up this writer's leases (its identity is free at once for a restart)."""

    # --- housekeeping -----------------------------------------------------------------------
    @abc.abstractmethod
    def apply_retention(self, now_ns: int, max_age_ns: int = DEFAULT_RETENTION_NS) -> RetentionResult:
        """Delete what ended before now - max_age.

        Counters, windows, gaps; resolved findings; runtime findings and connections last seen before the
        cutoff; policy changes, except the last one of each policy still in force.  Open static findings stay.
        """

    @abc.abstractmethod
    def snapshot(self) -> StoreSnapshot:
        """A consistent summary read in one transaction (see StoreSnapshot)."""

    @abc.abstractmethod
    def schema_version(self) -> int:
        """The schema version of the open database."""

    @abc.abstractmethod
    def flush(self) -> None:
        """Push committed data to its durable home (writes are already committed and visible)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; later calls raise StoreError.  Closing twice is harmless."""

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
