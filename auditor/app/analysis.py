"""The daemon's driver of the analysis session: events in, one delta per flush into the store.

The analysis itself is `auditor.findings.session.AnalysisSession` (pure, shared with `audit`,
`report --flows` and the demo).  This module adds what only a long-running process needs: the
processing lag (wall clock), the log lines (bad flows at the 1st, 10th, 100th ... occurrence, one
line per new finding), the failure counters, and the flush: `session.delta()` is written with
`Store.apply` in one transaction.  A flush that fails (store locked, disk full) keeps its delta and
merges it into the next one, so nothing is written twice or lost.

Cluster changes and stream outages arrive on other threads; they are queued here and handed to
the session on the analysis thread at the next flush (the session is single-threaded).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from auditor.exporter.collector import SKIP_REASONS
from auditor.exporter.snapshot import LagHistogram
from auditor.findings.correlate import Correlator, CorrelatorStats
from auditor.findings.session import (
    AnalysisOptions,
    AnalysisSession,
    Posture,
    compute_posture,
    prune_deleted,
)
from auditor.kube.export import object_to_dict
from auditor.log import LOG_AT, get_logger
from auditor.model.delta import AnalysisDelta
from auditor.model.events import LostEvents
from auditor.model.findings import Finding
from auditor.model.flows import Flow
from auditor.model.k8s import Change, KubeObject
from auditor.policy.state import ClusterState
from auditor.store import Store

if TYPE_CHECKING:
    from auditor.app.workers import PoolSession

_log = get_logger("auditor.findings")

__all__ = ["Analyzer", "Posture", "compute_posture", "policy_manifest", "prune_deleted", "skipped_flows"]


def policy_manifest(obj: object) -> str:
    """A policy as the history keeps it: its whole manifest (`kube.export.object_to_dict`) as JSON."""
    assert isinstance(obj, KubeObject)
    return json.dumps(object_to_dict(obj), sort_keys=True)


def skipped_flows(stats: CorrelatorStats) -> dict[str, int]:
    """Flows the correlator counted but did not judge, by SKIP_REASONS (read from another thread);
    `undecided-fqdn` (only a toFQDNs rule could admit and the DNS name is unknown) is one of them."""
    skipped: Counter[str] = Counter()
    for reason, count in dict(stats.skipped).items():  # a reason added to the core later reads "other"
        skipped[reason if reason in SKIP_REASONS else "other"] += count
    skipped.update(unresolved=stats.unresolved, deduplicated=stats.deduplicated)
    skipped["other-drop"] += sum(dict(stats.other_drops).values())
    return dict(skipped)


class _Latest:
    """A history that only answers `latest()` (what the session asks of it besides the correlator)."""

    def __init__(self, latest: Callable[[], ClusterState]) -> None:
        self.latest = latest

    def at(self, time_ns: int) -> ClusterState:
        return self.latest()


class Analyzer:
    """Feeds an AnalysisSession and writes its deltas; see the module docstring."""

    def __init__(
        self,
        *,
        store: Store,
        clock_ns: Callable[[], int],
        session: AnalysisSession | PoolSession | None = None,
        correlator: Correlator | None = None,
        latest_state: Callable[[], ClusterState] | None = None,
        options: AnalysisOptions | None = None,
        enforce_node_traffic: bool = False,
        max_findings: int = 100_000,
    ) -> None:
        if session is None:
            if latest_state is None:
                raise ValueError("Analyzer needs a session, or the latest_state of the history")
            options = options or AnalysisOptions(enforce_node_traffic=enforce_node_traffic,
                                                 max_findings=max_findings)
            session = AnalysisSession(_Latest(latest_state), options, correlator=correlator,
                                      manifest=policy_manifest, prune=True, keep_connections=True)
        self.session = session
        self.correlator = session.correlator
        self.store = store
        self._clock_ns = clock_ns
        self.errors: Counter[str] = Counter()
        """Failures the daemon survived, by stage (collector.ERROR_STAGES)."""
        self.lag = LagHistogram()
        self._flow = session.flow  # bound once: handle() runs for every flow
        self._observe_lag = self.lag.observe
        self.findings_new: Counter[tuple[str, str, str]] = Counter()
        self.lock = threading.Lock()
        """Held while the queues of other threads' events and the exporter's counters change."""
        self._flush_lock = threading.Lock()
        self._changes: list[Change] = []
        self._outages: list[tuple[int, int]] = []
        self._pending: AnalysisDelta | None = None
        """The delta a failed flush could not write (merged into the next)."""
        self.flushed_flows = 0
        """Flows whose counters are in the store."""
        self.flows_handled = 0
        """Flows handed to the session, analysed or counted bad (the exit accounting's "analysed")."""
        self._connections_overflow = 0
        """Judged flows whose distinct connection was not kept (the session's key bound), as last logged."""

    @property
    def bad_flows(self) -> Counter[str]:
        return self.session.bad_flows

    @property
    def posture(self) -> Posture:
        return self.session.posture

    @property
    def findings_overflow(self) -> int:
        """Flows whose findings were not kept because the session held `max_findings` keys."""
        return self.session.findings_overflow

    def unwritten(self) -> dict[str, int]:
        """What failed flushes left for the next one (for the log)."""
        pending = self._pending or AnalysisDelta()
        with self.lock:
            changes = len(self._changes)
        return {"findings": len(pending.findings), "gaps": len(pending.gaps),
                "policy_changes": len(pending.policy_changes) + changes,
                "flows_uncounted": sum(r.count for r in pending.counts if r.policy is None),
                "window": len(pending.windows)}

    def handle(self, event: object) -> None:
        """One event from the queue; a flow that cannot be analysed is counted and skipped."""
        if isinstance(event, Flow):
            self.flows_handled += 1
            reason = self._flow(event)
            if reason:
                self._log_bad(reason, event)
                return
            self._observe_lag((self._clock_ns() - event.time_ns) / 1e9)
        elif isinstance(event, LostEvents):
            self.session.lost(event)

    def _log_bad(self, reason: str, flow: Flow) -> None:
        count = self.session.bad_flows[reason]
        if count in LOG_AT:
            _log.error("bad_flow", reason=reason, count=count, error=self.session.last_error, uuid=flow.uuid,
                       node=flow.node_name, time_ns=flow.time_ns)

    def count_error(self, stage: str, exc: BaseException | str) -> None:
        """Count (and log at the 1st, 10th, 100th ... time) a failure the daemon goes on after."""
        with self.lock:
            self.errors[stage] += 1
            count = self.errors[stage]
        if count in LOG_AT:
            error = exc if isinstance(exc, str) else (str(exc) or repr(exc))
            _log.error(f"{stage}_failed", count=count, error=error, unwritten=self.unwritten())

    def note_change(self, change: Change) -> None:
        """A cluster change (any thread); the session sees it at the next flush."""
        with self.lock:
            self._changes.append(change)

    def note_outage(self, from_ns: int, to_ns: int) -> None:
        """The flow stream was down over [from_ns, to_ns] (any thread): a gap at the next flush."""
        with self.lock:
            self._outages.append((from_ns, to_ns))

    def flush(self) -> list[Finding]:
        """Write the session's delta (and what a failed flush left); returns the findings that were new.

        When the store raises, the delta is kept for the next flush and the error propagates (the
        daemon counts it and goes on).
        """
        with self._flush_lock:
            delta = self._take_delta()
            if delta.empty:
                return []
            try:
                new = self.store.apply(delta, now_ns=self._clock_ns())
            except BaseException:
                self._pending = delta
                raise
            self._pending = None
            self.flushed_flows += sum(row.count for row in delta.counts if row.policy is None)
            if delta.static is not None:
                self._forget_deleted_namespaces()
            self._announce(new)
            self.store.flush()
        return new

    def _take_delta(self) -> AnalysisDelta:
        with self.lock:
            changes, self._changes = self._changes, []
            outages, self._outages = self._outages, []
        for change in changes:
            self.session.change(change)
        for from_ns, to_ns in outages:
            self.session.outage(from_ns, to_ns)
        delta = self.session.delta()
        overflow = self.session.connections_overflow
        if overflow > self._connections_overflow:  # once per flush at most, and only when it grew
            self._connections_overflow = overflow
            _log.warning("connections_overflow", flows=overflow)
        for error in self.session.static_errors:
            self.count_error("static", error)
        self.session.static_errors.clear()
        return delta if self._pending is None else self._pending.then(delta)

    def _forget_deleted_namespaces(self) -> None:
        state = self.session.latest_state()
        with self.lock:
            for key in [key for key in self.findings_new if key[2] and state.namespace(key[2]) is None]:
                del self.findings_new[key]

    def _announce(self, new: list[Finding]) -> None:
        """One log line per new finding, with its attribution; never one per flow."""
        for finding in new:
            with self.lock:
                self.findings_new[(finding.kind.value, finding.severity.value, finding.namespace)] += 1
            _log.warning(
                "finding", kind=finding.kind.value, severity=finding.severity.value,
                namespace=finding.namespace, workload=finding.workload, peer=finding.peer, port=finding.port,
                protocol=finding.protocol,
                direction=finding.direction, policies=list(finding.policies), count=finding.count,
                message=finding.message,
            )
