"""Aggregation of findings by `FindingKey`: memory bounded by the number of keys, not of flows.

`FindingAggregator` keeps two views:
- totals per key since the aggregator was created (`all()`);
- deltas per key since the last `drain()`, which is what the store's additive upsert wants
  (counts add up, first_seen is the minimum, last_seen the maximum).
When `max_keys` totals are held, findings for new keys are not kept; their flows are counted
in `overflow` (nothing is lost silently).
"""

from __future__ import annotations

import dataclasses

from auditor.model.findings import Finding, FindingKey

DEFAULT_MAX_KEYS = 50_000
MAX_POLICIES_PER_FINDING = 8


def merge(older: Finding, newer: Finding) -> Finding:
    """One finding for the same key: counts add, times widen, the newer text and facts win."""
    policies = tuple(dict.fromkeys(older.policies + newer.policies))[:MAX_POLICIES_PER_FINDING]
    details = dict(older.details)
    details.update(newer.details)
    firsts = [t for t in (older.first_seen_ns, newer.first_seen_ns) if t]
    severity = newer.severity if newer.severity.rank >= older.severity.rank else older.severity
    return dataclasses.replace(
        newer,
        severity=severity,
        count=older.count + newer.count,
        first_seen_ns=min(firsts) if firsts else 0,
        last_seen_ns=max(older.last_seen_ns, newer.last_seen_ns),
        policies=policies,
        sample_flow=older.sample_flow or newer.sample_flow,
        details=tuple(details.items()),
    )


class FindingAggregator:
    """Findings merged by key, bounded to `max_keys` distinct keys."""

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self._max_keys = max_keys
        self._totals: dict[FindingKey, Finding] = {}
        self._pending: dict[FindingKey, Finding] = {}
        self.overflow = 0
        """Flows whose findings were not kept because `max_keys` keys were already held."""
        self.new_keys = 0
        """Distinct keys created so far."""

    def __len__(self) -> int:
        return len(self._totals)

    def add(self, finding: Finding) -> bool:
        """Merge one finding; False when it was not kept (key limit reached)."""
        key = finding.key
        total = self._totals.get(key)
        if total is None:
            if len(self._totals) >= self._max_keys:
                self.overflow += finding.count
                return False
            self._totals[key] = finding
            self.new_keys += 1
        else:
            self._totals[key] = merge(total, finding)
        pending = self._pending.get(key)
        self._pending[key] = finding if pending is None else merge(pending, finding)
        return True

    def add_all(self, findings: list[Finding]) -> None:
        for finding in findings:
            self.add(finding)

    def drain(self) -> list[Finding]:
        """Per key touched since the last drain, the finding over that period only (a delta)."""
        drained = list(self._pending.values())
        self._pending = {}
        return drained

    def all(self) -> list[Finding]:
        """Every kept finding with its totals, most severe first, then most frequent."""
        return sorted(
            self._totals.values(),
            key=lambda f: (-f.severity.rank, -f.count, f.kind.value, f.namespace, f.workload, f.peer_workload),
        )
