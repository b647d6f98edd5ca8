"""The value types the store takes and returns (frozen, backend-neutral)."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from auditor.model.decision import KNP_KIND
from auditor.model.delta import HOUR_NS as HOUR_NS
from auditor.model.delta import hour_of
from auditor.model.findings import Finding, FindingKind, Severity

_K = TypeVar("_K")

hour_floor = hour_of
"""The start of the hour bucket that holds a time (the one rule, `model.delta.hour_of`)."""
DAY_NS = 24 * HOUR_NS
DEFAULT_RETENTION_NS = 30 * DAY_NS
"""How long counters, gaps, windows, resolved findings and policy history are kept by default."""
DEFAULT_JOIN_NS = 1_000_000_000
"""Coverage windows closer than this are merged: flows do not arrive every nanosecond."""

COUNTER_COLUMNS = ("hour", "namespace", "workload", "verdict", "direction", "policy")
"""The names `Store.counts(group_by=...)` accepts."""


class FindingStatus(enum.Enum):
    OPEN = "open"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class CounterRow:
    """Flows counted in one hour bucket, pre-aggregated by the caller.

    `policy` is "" when no policy is attributed.  `hour_ns` is floored to the hour by the store.
    In query results, columns not in `group_by` are "" (and `hour_ns` 0).
    """

    hour_ns: int
    namespace: str
    workload: str
    verdict: str
    direction: str
    policy: str
    count: int


@dataclass(frozen=True, slots=True)
class StoredFinding:
    """A finding as persisted, with its lifecycle."""

    finding: Finding
    status: FindingStatus
    resolved_at_ns: int = 0
    """0 while open."""

    @property
    def is_open(self) -> bool:
        return self.status is FindingStatus.OPEN


@dataclass(frozen=True, slots=True)
class Window:
    """A time span [from_ns, to_ns] in which flows were observed from `source`."""

    from_ns: int
    to_ns: int
    source: str

    @property
    def duration_ns(self) -> int:
        return self.to_ns - self.from_ns


@dataclass(frozen=True, slots=True)
class Gap:
    """A time span in which data is missing: lost events, a disconnected stream."""

    from_ns: int
    to_ns: int
    reason: str
    lost_count: int


@dataclass(frozen=True, slots=True)
class Coverage:
    """How much data a report over [since_ns, until_ns) rests on.  Windows are clipped to it."""

    since_ns: int
    until_ns: int
    windows: tuple[Window, ...]
    gaps: tuple[Gap, ...]
    lost_total: int

    @property
    def covered_ns(self) -> int:
        """Length of the union of all windows (overlapping sources counted once)."""
        total, end = 0, None
        for window in sorted(self.windows, key=lambda w: w.from_ns):
            start = window.from_ns if end is None else max(window.from_ns, end)
            if window.to_ns > start:
                total += window.to_ns - start
            end = window.to_ns if end is None else max(end, window.to_ns)
        return total

    @property
    def fraction(self) -> float:
        """Covered share of the requested span (0.0 for an empty span)."""
        span = self.until_ns - self.since_ns
        return self.covered_ns / span if span > 0 else 0.0


@dataclass(frozen=True, slots=True)
class PolicyChangeRecord:
    """One policy change (NetworkPolicy or Cilium's kinds) with the time it took effect."""

    time_ns: int
    change_type: str
    """ADDED, MODIFIED or DELETED (model.k8s.ChangeType values)."""
    namespace: str
    """"" for a CiliumClusterwideNetworkPolicy."""
    name: str
    revision: str
    spec_json: str
    kind: str = KNP_KIND
    """NetworkPolicy, CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy (model.decision *_KIND)."""


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """Rows deleted by one `apply_retention` call, per table."""

    counters: int = 0
    windows: int = 0
    gaps: int = 0
    findings: int = 0
    policy_changes: int = 0
    rule_hits: int = 0
    connections: int = 0
    skipped: bool = False
    """True when another writer was applying retention at the time (one at a time: nothing deleted)."""

    @property
    def total(self) -> int:
        return (self.counters + self.windows + self.gaps + self.findings + self.policy_changes + self.rule_hits
                + self.connections)


@dataclass(frozen=True, slots=True)
class OpenFindingCount:
    kind: FindingKind
    severity: Severity
    namespace: str
    count: int


@dataclass(frozen=True, slots=True)
class StoreSnapshot:
    """A cheap, consistent view for the exporter and reports (one read transaction)."""

    schema_version: int
    open_findings: tuple[OpenFindingCount, ...]
    """Open findings grouped by (kind, severity, namespace): the auditor_open_findings series."""
    resolved_findings: int
    coverage_from_ns: int
    """Start of the earliest coverage window (0 without windows)."""
    coverage_to_ns: int
    """End of the latest coverage window (0 without windows)."""
    lost_total: int
    """Events lost over all recorded gaps."""
    policy_changes: int

    @property
    def open_total(self) -> int:
        return sum(row.count for row in self.open_findings)

    def open_by_namespace(self) -> dict[str, int]:
        return _tally((row.namespace, row.count) for row in self.open_findings)


def _tally(pairs: Iterable[tuple[_K, int]]) -> dict[_K, int]:
    totals: Counter[_K] = Counter()
    for key, count in pairs:
        totals[key] += count
    return dict(totals)


@dataclass(frozen=True, slots=True)
class RuleHitRow:
    """Flows one rule decided over a window (`Store.rule_hits`).  `rule` is the rule's path
    (`RuleMatch.path`), "" with direction "" for denied flows the policy isolated.  A row with an
    empty `kind` is an hour (`hour_ns`) for which rule hits were recorded, `count` its flows."""

    hour_ns: int
    kind: str
    namespace: str
    name: str
    direction: str
    rule: str
    count: int
