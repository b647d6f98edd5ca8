"""One analysis worker process of `auditor run --workers N` (the pool is `auditor.app.workers`).

A worker owns one `AnalysisSession` over its own copy of the cluster history (rebuilt from the
manifests, or fed every change the parent's watchers receive) and judges the flows of the nodes
routed to it, so its decision caches stay warm.  It speaks over one duplex pipe, in order:

    parent -> worker   ("events", [wire bytes | model event, ...]), ("change", Change, apply, record),
                       ("prune", now_ns), ("delta",), ("stop",)
    worker -> parent   ("ack", handled), ("status", WorkerStatus), ("delta", AnalysisDelta, errors, status)

Messages are handled in order, so a delta holds every event sent before it was asked for.
"""

from __future__ import annotations

import contextlib
import copyreg
import time
from collections import Counter
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from auditor.app.analysis import policy_manifest
from auditor.app.settings import RunSettings
from auditor.exporter.snapshot import HistogramData, LagHistogram
from auditor.findings.correlate import CorrelatorStats
from auditor.findings.session import AnalysisOptions, AnalysisSession, Posture
from auditor.hubble.convert import light_event_from_wire
from auditor.log import LOG_AT, configure, get_logger
from auditor.model.events import LostEvents
from auditor.model.flows import Flow

STATUS_EVERY_S = 0.2
"""How often a busy worker sends its running totals (the parent's /metrics reads the latest)."""

_log = get_logger("auditor.worker")


def _mapping_proxy(items: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(items)


def _reduce_mapping_proxy(proxy: MappingProxyType[Any, Any]) -> tuple[Any, tuple[dict[Any, Any]]]:
    return _mapping_proxy, (dict(proxy),)


copyreg.pickle(MappingProxyType, _reduce_mapping_proxy)  # model objects' read-only labels cross the pipe


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """A worker's running totals since it started (the parent sums them over the workers)."""

    handled: int = 0
    """Items taken off the pipe (flows, lost events, undecodable bytes)."""
    stats: CorrelatorStats = field(default_factory=CorrelatorStats)
    lag: HistogramData = field(default_factory=HistogramData)
    bad_flows: dict[str, int] = field(default_factory=dict)
    findings_overflow: int = 0
    connections_overflow: int = 0
    posture: Posture = field(default_factory=Posture)
    convert_errors: tuple[str, ...] = ()
    """Messages that could not be converted since the previous status (the parent counts them)."""


def worker_main(index: int, settings: RunSettings, options: AnalysisOptions, conn: Any) -> None:
    """The worker process's entry: serve `conn` until ("stop",) or the parent goes away."""
    configure(fmt=settings.log_format, level=settings.log_level)
    worker = _Worker(settings, options, conn)
    with contextlib.suppress(EOFError, OSError, KeyboardInterrupt):  # the parent is gone: nothing to answer
        worker.serve()
    _log.debug("worker_stopped", worker=index, handled=worker.handled)


class _Worker:
    def __init__(self, settings: RunSettings, options: AnalysisOptions, conn: Any) -> None:
        from auditor.app.inventory import worker_history

        self.history = worker_history(settings)
        self.session = AnalysisSession(self.history, options, manifest=policy_manifest, prune=True,
                                       keep_connections=True)
        self.conn = conn
        self.lag = LagHistogram()
        self.handled = 0
        self._errors: list[str] = []
        self._status_at = time.monotonic()

    def serve(self) -> None:
        recv, send = self.conn.recv, self.conn.send
        send(("status", self.status()))  # ready: the parent starts reading the stream after this
        while True:
            message = recv()
            kind = message[0]
            if kind == "events":
                self._events(message[1])
                send(("ack", self.handled))
                if time.monotonic() - self._status_at >= STATUS_EVERY_S:
                    send(("status", self.status()))
            elif kind == "change":
                self._change(*message[1:])
            elif kind == "prune":
                self.history.prune(message[1])
            elif kind == "delta":
                delta = self.session.delta()
                errors, self.session.static_errors[:] = list(self.session.static_errors), []
                send(("delta", delta, errors, self.status()))
            elif kind == "stop":
                send(("status", self.status()))
                return

    def _events(self, items: list[Any]) -> None:
        session, observe, clock = self.session, self.lag.observe, time.time_ns
        for item in items:
            if type(item) is bytes:
                try:
                    event = light_event_from_wire(item)
                except Exception as exc:  # one odd message never stops the worker: counted by the parent
                    self._errors.append(f"cannot convert: {exc!r}")
                    continue
            else:
                event = item
            if type(event) is Flow:
                reason = session.flow(event)
                if reason:
                    self._log_bad(reason, event)
                else:
                    observe((clock() - event.time_ns) / 1e9)
            elif isinstance(event, LostEvents):
                session.lost(event)
        self.handled += len(items)

    def _change(self, change: Any, apply: str, record: bool) -> None:
        if apply == "initial":
            self.history.apply_initial(change)
        elif apply == "apply":
            self.history.apply(change)
        if record:
            self.session.change(change)

    def _log_bad(self, reason: str, flow: Flow) -> None:
        count = self.session.bad_flows[reason]
        if count in LOG_AT:
            _log.error("bad_flow", reason=reason, count=count, error=self.session.last_error, uuid=flow.uuid,
                       node=flow.node_name, time_ns=flow.time_ns)

    def status(self) -> WorkerStatus:
        self._status_at = time.monotonic()
        errors, self._errors = tuple(self._errors), []
        session = self.session
        return WorkerStatus(handled=self.handled, stats=session.stats.snapshot(), lag=self.lag.data(),
                            bad_flows=dict(session.bad_flows), findings_overflow=session.findings_overflow,
                            connections_overflow=session.connections_overflow, posture=session.posture,
                            convert_errors=errors)


def merge_stats(parts: list[CorrelatorStats]) -> CorrelatorStats:
    """Several workers' counters as one process's: counters add, first/last times are the extremes."""
    merged = CorrelatorStats()
    for part in parts:
        for name in ("flows", "policy_verdicts", "policy_drops", "dns_denials", "health_check_drops",
                     "skipped", "other_drops"):
            table: Counter[Any] = getattr(merged, name)
            table.update(getattr(part, name))
        merged.unresolved += part.unresolved
        merged.deduplicated += part.deduplicated
        merged.judged += part.judged
        if part.first_ns and (not merged.first_ns or part.first_ns < merged.first_ns):
            merged.first_ns = part.first_ns
        merged.last_ns = max(merged.last_ns, part.last_ns)
    return merged


def merge_lag(parts: list[HistogramData]) -> HistogramData:
    """Histograms over the same buckets, added."""
    if not parts:
        return HistogramData()
    bounds = [bound for bound, _count in parts[0].buckets]
    counts = [sum(part.buckets[i][1] for part in parts) for i in range(len(bounds))]
    return HistogramData(buckets=tuple(zip(bounds, counts, strict=True)), sum=sum(p.sum for p in parts),
                         count=sum(p.count for p in parts))
