"""Aggregation of findings by `FindingKey`: memory bounded by the number of keys, not of flows.

`FindingAggregator` keeps two views:
- totals per key since the aggregator was created (`all()`);
- deltas per key since the last `drain()`, which is what the store's additive upsert wants
  (counts add up, first_seen is the minimum, last_seen the maximum).
Merging is the model's one rule (`auditor.model.findings.merge_findings`), which the store uses
too; `_Accumulator` is its mutable twin for the per-flow path (tests hold the two equal).
When `max_keys` totals are held, findings for new keys are not kept; their flows are counted
in `overflow` (nothing is lost silently).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from auditor.model.findings import MAX_POLICIES_PER_FINDING, Finding, FindingKind, merge_findings

DEFAULT_MAX_KEYS = 50_000

_Key = tuple[FindingKind, str, str, str, int, str, str]


class _Accumulator:
    """The running merge of every finding seen for one key (mutable; Findings are built on demand)."""

    __slots__ = ("count", "details", "first", "last", "latest", "policies", "sample", "severity")

    def __init__(self, finding: Finding) -> None:
        self.latest = finding
        self.count = finding.count
        self.first = finding.first_seen_ns
        self.last = finding.last_seen_ns
        self.severity = finding.severity
        self.policies: dict[str, None] = dict.fromkeys(finding.policies[:MAX_POLICIES_PER_FINDING])
        self.details: dict[str, str] = dict(finding.details)
        self.sample = finding.sample_flow

    def merge(self, finding: Finding) -> None:
        is_latest = finding.last_seen_ns >= self.last
        if is_latest:
            self.latest = finding
            self.last = finding.last_seen_ns
        self.count += finding.count
        first = finding.first_seen_ns
        if first and (not self.first or first < self.first):
            self.first = first
        if finding.severity is not self.severity and finding.severity.rank > self.severity.rank:
            self.severity = finding.severity
        for policy in finding.policies:
            if policy not in self.policies and len(self.policies) < MAX_POLICIES_PER_FINDING:
                self.policies[policy] = None
        if finding.details:
            details = self.details
            for name, value in finding.details:
                if is_latest or name not in details:
                    details[name] = value
        if not self.sample:
            self.sample = finding.sample_flow

    def finding(self) -> Finding:
        return dataclasses.replace(
            self.latest, severity=self.severity, count=self.count, first_seen_ns=self.first,
            last_seen_ns=self.last, policies=tuple(self.policies), sample_flow=self.sample,
            details=tuple(self.details.items()),
        )


merge = merge_findings
"""One finding for the same key, merged as the aggregator does (kept for importers of this name)."""


def _key(f: Finding) -> _Key:
    return (f.kind, f.namespace, f.workload, f.peer_workload, f.port, f.protocol, f.direction)


class FindingAggregator:
    """Findings merged by key, bounded to `max_keys` distinct keys."""

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self._max_keys = max_keys
        self._totals: dict[_Key, _Accumulator] = {}
        self._pending: dict[_Key, _Accumulator] = {}
        self.overflow = 0
        """Flows whose findings were not kept because `max_keys` keys were already held."""
        self.new_keys = 0
        """Distinct keys created so far."""

    def __len__(self) -> int:
        return len(self._totals)

    def add(self, finding: Finding) -> bool:
        """Merge one finding; False when it was not kept (key limit reached)."""
        key = _key(finding)
        total = self._totals.get(key)
        if total is None:
            if len(self._totals) >= self._max_keys:
                self.overflow += finding.count
                return False
            self._totals[key] = _Accumulator(finding)
            self.new_keys += 1
        else:
            total.merge(finding)
        pending = self._pending.get(key)
        if pending is None:
            self._pending[key] = _Accumulator(finding)
        else:
            pending.merge(finding)
        return True

    def drain(self) -> list[Finding]:
        """Per key touched since the last drain, the finding over that period only (a delta)."""
        drained = [acc.finding() for acc in self._pending.values()]
        self._pending = {}
        return drained

    def all(self) -> list[Finding]:
        """Every kept finding with its totals, most severe first, then most frequent."""
        return ordered(acc.finding() for acc in self._totals.values())


def ordered(findings: Iterable[Finding]) -> list[Finding]:
    """Most severe first, then most frequent, then by kind, namespace, workload and peer."""
    return sorted(findings, key=lambda f: (-f.severity.rank, -f.count, f.kind.value, f.namespace, f.workload,
                                           f.peer_workload))
