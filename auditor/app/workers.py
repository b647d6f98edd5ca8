"""`auditor run --workers N`: one flow stream's analysis split across N processes by node.

The reader thread (the live client in raw mode: receive, decode, resume de-duplication only)
routes each flow by its node to one worker process (`auditor.app.worker`), so each worker sees
all of a node's flows (the two events of a denied packet, a client's DNS queries and answers) and
keeps its decision caches warm.  Hand-offs are batched: the reader appends to a per-worker deque
(no lock per flow) and a sender thread per worker pickles what gathered and writes it to the
worker's pipe every `SEND_EVERY_S` or as soon as `BATCH` events wait, so the reader never blocks
on a busy worker.  A live stream's events are dropped and counted (as the single-process queue
does) once `capacity` of them wait for a worker whose pipe is full; file sources wait for room.

At each flush the pool asks every worker for its delta and merges them into the one delta a single
process would have made (`merge_deltas`); the exporter reads the workers' running totals, summed
(`merge_stats`, `merge_lag`).  Policy changes are recorded by worker 0 only, lost events go to it.
"""

from __future__ import annotations

import atexit
import math
import multiprocessing as mp
import os
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from auditor.app.settings import RunSettings
from auditor.app.worker import WorkerStatus, merge_lag, merge_stats, worker_main
from auditor.exporter.snapshot import HistogramData
from auditor.findings.correlate import CorrelatorStats
from auditor.findings.session import AnalysisOptions, Posture
from auditor.hubble.source import FlowSource
from auditor.log import LOG_AT, get_logger
from auditor.model.delta import STREAM_DOWN, AnalysisDelta, DataGap
from auditor.model.events import LostEvents, RawFlow
from auditor.model.findings import Finding, merge_findings
from auditor.model.flows import Flow
from auditor.model.k8s import Change
from auditor.policy.state import ClusterState

BATCH = 256
"""Events a worker's sender thread waits for before it writes (or SEND_EVERY_S passes)."""
MAX_BATCH = 2048
"""Most events in one write (a worker that fell behind catches up in writes of this size)."""
SEND_EVERY_S = 0.005
"""Longest an event waits in the parent before it is written to its worker (latency at low rates)."""
REPLY_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 60.0
MAX_TIME_NS = 2**63 - 1

_log = get_logger("auditor.workers")


def default_workers() -> int:
    """The cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota if any."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


@dataclass(eq=False)
class _Link:
    """The parent's side of one worker."""

    index: int
    process: Any
    conn: Any
    child: Any
    pending: deque[Any] = field(default_factory=deque)
    wake: threading.Event = field(default_factory=threading.Event)
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    queued: int = 0
    """Events handed to this worker (written by the reader only)."""
    acked: int = 0
    """Events the worker has handled (written by the receiving thread only)."""
    status: WorkerStatus = field(default_factory=WorkerStatus)
    replies: queue.Queue[Any] = field(default_factory=queue.Queue)
    alive: bool = True
    nodes: int = 0
    ready: threading.Event = field(default_factory=threading.Event)
    """Set by the worker's first status (its session is built)."""


class WorkerPool:
    """N worker processes and the threads that feed them; see the module docstring."""

    def __init__(self, settings: RunSettings, options: AnalysisOptions, count: int, *, live_history: bool,
                 capacity: int, on_convert_error: Callable[[str], None] = lambda text: None) -> None:
        context = mp.get_context("spawn")  # never fork a process that runs grpc and watcher threads
        self._links: list[_Link] = []
        for index in range(count):
            conn, child = context.Pipe(duplex=True)
            process = context.Process(target=worker_main, args=(index, settings, options, child),
                                      name=f"auditor-worker-{index}", daemon=True)
            self._links.append(_Link(index, process, conn, child))
        self.capacity = max(BATCH, capacity // count)
        self.live_history = live_history
        self.dropped = 0
        """Live events dropped because their worker had `capacity` unhandled (auditor_queue_dropped_total)."""
        self.ended = threading.Event()
        """Set when the reader has routed the source's last event."""
        self._by_node: dict[str, _Link] = {}
        self._closed = threading.Event()
        self._on_convert_error = on_convert_error
        self._threads: list[threading.Thread] = []
        self._started = False
        self._stopping = False

    @property
    def size(self) -> int:
        return len(self._links)

    def start(self) -> None:
        """Start the workers and their threads (once; `route` starts them if nobody did)."""
        if self._started:
            return
        self._started = True
        atexit.register(self._at_exit)
        for link in self._links:
            link.process.start()
            link.child.close()
            for target, name in ((self._send_loop, "send"), (self._receive_loop, "receive")):
                thread = threading.Thread(target=target, args=(link,), name=f"worker-{link.index}-{name}",
                                          daemon=True)
                thread.start()
                self._threads.append(thread)
        deadline = time.monotonic() + READY_TIMEOUT_S
        for link in self._links:  # a live stream read before the workers can take it would only be dropped
            if not link.ready.wait(max(0.0, deadline - time.monotonic())):
                self._lost(link, f"worker {link.index} not ready after {READY_TIMEOUT_S:.0f} s")

    # --- the reader thread -------------------------------------------------------------------------

    def route(self, event: object, *, lossless: bool, stop: threading.Event) -> bool:
        """Hand one event to its worker; False when a live event was dropped (its worker is full)."""
        if not self._started:
            self.start()
        kind = type(event)
        if kind is RawFlow or kind is Flow:
            node: str = event.node_name  # type: ignore[attr-defined]
            link = self._by_node.get(node) or self._assign(node)
        elif kind is LostEvents:
            link = self._links[0]
        else:
            return True  # NodeStatus: the source's stats have it, the analysis does not read it
        if not link.alive or (not lossless and len(link.pending) >= self.capacity):
            # A live event whose worker's pipe is full with `capacity` more waiting (it cannot keep up),
            # or whose worker died: counted as dropped.  Not judged by acks, which the GIL may delay.
            self.dropped += 1
            return False
        while lossless and link.queued - link.acked >= self.capacity and link.alive:
            if stop.wait(0.001):
                break  # stopping: the event already read is still handed over (exact accounting at exit)
        link.pending.append(event.data if kind is RawFlow else event)  # type: ignore[attr-defined]
        link.queued += 1
        if len(link.pending) >= BATCH:
            link.wake.set()
        return True

    def _assign(self, node: str) -> _Link:
        """A node seen for the first time goes to the worker with the fewest nodes (ties: the lowest)."""
        link = min(self._links, key=lambda candidate: (candidate.nodes, candidate.index))
        link.nodes += 1
        self._by_node[node] = link
        return link

    def end_of_stream(self) -> None:
        self.ended.set()
        for link in self._links:
            link.wake.set()

    # --- per-worker threads ------------------------------------------------------------------------

    def _send_loop(self, link: _Link) -> None:
        wake = link.wake
        while not self._closed.is_set():
            wake.wait(SEND_EVERY_S)
            wake.clear()
            if link.pending:
                self._send(link, None)

    def _send(self, link: _Link, message: tuple[Any, ...] | None) -> None:
        """Write the events waiting for `link`, then `message`: under its lock, so nothing overtakes them."""
        with link.send_lock:
            if not link.alive:
                return
            pending = link.pending
            try:
                popleft, waiting = pending.popleft, len(pending)  # what waits now: a later event waits its turn
                while waiting:
                    count = min(waiting, MAX_BATCH)
                    link.conn.send(("events", [popleft() for _ in range(count)]))
                    waiting -= count
                if message is not None:
                    link.conn.send(message)
            except OSError as exc:
                self._lost(link, f"cannot write to worker {link.index}: {exc}")

    def _receive_loop(self, link: _Link) -> None:
        while True:
            try:
                message = link.conn.recv()
            except (EOFError, OSError) as exc:
                if not self._stopping:
                    self._lost(link, f"worker {link.index} went away: {exc!r}")
                link.replies.put(None)
                return
            kind = message[0]
            if kind == "ack":
                link.acked = message[1]
            elif kind == "status":
                self._note_status(link, message[1])
            elif kind == "delta":
                self._note_status(link, message[3])
                link.replies.put(message)

    def _note_status(self, link: _Link, status: WorkerStatus) -> None:
        link.status = status
        link.acked = status.handled
        link.ready.set()
        for error in status.convert_errors:
            self._on_convert_error(f"worker {link.index}: {error}")

    def _lost(self, link: _Link, reason: str) -> None:
        if link.alive:
            link.alive = False
            _log.error("worker_lost", worker=link.index, reason=reason)

    # --- the analysis thread -----------------------------------------------------------------------

    def idle(self) -> bool:
        """Every event routed so far has been handled (or its worker is gone)."""
        return all(not link.alive or (not link.pending and link.acked >= link.queued) for link in self._links)

    def send_all(self, message: tuple[Any, ...], links: list[_Link] | None = None) -> None:
        for link in links if links is not None else self._links:
            self._send(link, message)

    def change(self, change: Change) -> None:
        """A live watch's change (any thread): every worker's history applies it at once."""
        if self.live_history:
            self.send_all(("change", change, "initial" if change.time_ns == 0 else "apply", False))

    def record_change(self, change: Change) -> None:
        """A policy change for the store's history: worker 0 records it (once, not once per worker)."""
        self.send_all(("change", change, "none", True), self._links[:1])

    def prune(self, now_ns: int) -> None:
        if self.live_history:
            self.send_all(("prune", now_ns))

    def deltas(self) -> tuple[list[AnalysisDelta], list[str]]:
        """Every live worker's delta (what it handled before the request) and its static errors."""
        if not self._started:
            return [], []
        links = [link for link in self._links if link.alive]
        self.send_all(("delta",), links)
        deltas, errors = [], []
        for link in links:
            try:
                reply = link.replies.get(timeout=REPLY_TIMEOUT_S)
            except queue.Empty:
                reply = None
            if reply is None:
                errors.append(f"worker {link.index} sent no delta")
                continue
            deltas.append(reply[1])
            errors.extend(reply[2])
        return deltas, errors

    def stats(self) -> CorrelatorStats:
        return merge_stats([link.status.stats for link in self._links])

    def lag(self) -> HistogramData:
        return merge_lag([link.status.lag for link in self._links])

    def statuses(self) -> list[WorkerStatus]:
        return [link.status for link in self._links]

    def _at_exit(self) -> None:
        """A pool its driver never stopped (a test, an aborted start): its workers end quietly at exit."""
        self._stopping = True

    def stop(self, timeout: float = 3.0) -> None:
        """Ask every worker to stop, wait up to `timeout` s, then end what is left."""
        if not self._started:
            return
        self._stopping = True
        self.send_all(("stop",))
        deadline = time.monotonic() + timeout
        for link in self._links:
            link.process.join(max(0.0, deadline - time.monotonic()))
        self._closed.set()
        for link in self._links:
            link.wake.set()
            if link.process.is_alive():
                link.process.terminate()
                link.process.join(1.0)
            link.conn.close()
        atexit.unregister(self._at_exit)


def pump_to_pool(source: FlowSource, pool: WorkerPool, stop: threading.Event, *, lossless: bool,
                 on_fatal: Callable[[BaseException], None]) -> None:
    """`flowqueue.pump` for a worker pool: route every event of `source` until it ends or `stop` is set."""
    route = pool.route
    try:
        for event in source.events():
            if not route(event, lossless=lossless, stop=stop) and pool.dropped in LOG_AT:
                _log.warning("queue_overflow", dropped=pool.dropped, size=pool.capacity * pool.size)
            if stop.is_set():
                break  # after routing: the source counted this event as received
    except Exception as exc:
        on_fatal(exc)
    finally:
        pool.end_of_stream()


def merge_deltas(deltas: list[AnalysisDelta]) -> AnalysisDelta:
    """The workers' deltas as the one delta a single session would have made of all their events.

    Counters add (`AnalysisDelta.then`); the coverage window spans them all; findings of one key are
    merged by the model's rule in the order of their first sighting (the single process's arrival
    order for a stream in time order); static findings are every worker's (the same state), once.
    """
    merged = AnalysisDelta()
    for delta in deltas:
        merged = merged.then(delta)
    by_key: dict[Any, list[Finding]] = {}
    for delta in deltas:
        for finding in delta.findings:
            by_key.setdefault(finding.key, []).append(finding)
    findings = []
    for parts in by_key.values():
        parts.sort(key=lambda finding: finding.first_seen_ns or MAX_TIME_NS)
        one = parts[0]
        for later in parts[1:]:
            one = merge_findings(one, later)
        findings.append(one)
    windows = merged.windows
    if len(windows) > 1:
        windows = ((min(w[0] for w in windows), max(w[1] for w in windows)),)
    return replace(merged, findings=tuple(findings), windows=windows)


class _PoolCorrelator:
    """What the daemon reads of a correlator: its running totals, here summed over the workers."""

    def __init__(self, pool: WorkerPool) -> None:
        self._pool = pool

    @property
    def stats(self) -> CorrelatorStats:
        return self._pool.stats()


class PoolSession:
    """The analysis session the daemon's Analyzer drives when the analysis runs in a WorkerPool."""

    def __init__(self, pool: WorkerPool, latest: Callable[[], ClusterState], options: AnalysisOptions) -> None:
        self.pool = pool
        self.options = options
        self.correlator = _PoolCorrelator(pool)
        self._latest = latest
        self._gaps: list[DataGap] = []
        self.static_errors: list[str] = []
        self.last_error = ""
        self._never = threading.Event()

    @property
    def stats(self) -> CorrelatorStats:
        return self.pool.stats()

    @property
    def bad_flows(self) -> Counter[str]:
        merged: Counter[str] = Counter()
        for status in self.pool.statuses():
            merged.update(status.bad_flows)
        return merged

    @property
    def posture(self) -> Posture:
        return self.pool.statuses()[0].posture

    @property
    def findings_overflow(self) -> int:
        return sum(status.findings_overflow for status in self.pool.statuses())

    @property
    def connections_overflow(self) -> int:
        return sum(status.connections_overflow for status in self.pool.statuses())

    def latest_state(self) -> ClusterState:
        return self._latest()

    def flow(self, flow: Flow) -> str:
        """A flow handed in directly (the daemon's reader routes them itself): to its worker, losslessly."""
        self.pool.route(flow, lossless=True, stop=self._never)
        return ""

    def lost(self, event: LostEvents) -> None:
        self.pool.route(event, lossless=True, stop=self._never)

    def change(self, change: Change) -> None:
        self.pool.record_change(change)

    def outage(self, from_ns: int, to_ns: int, reason: str = STREAM_DOWN) -> None:
        if 0 < from_ns <= to_ns <= MAX_TIME_NS:
            self._gaps.append(DataGap(from_ns, to_ns, reason))

    def delta(self) -> AnalysisDelta:
        deltas, errors = self.pool.deltas()
        self.static_errors.extend(errors)
        delta = merge_deltas(deltas)
        if self._gaps:
            delta, self._gaps = replace(delta, gaps=delta.gaps + tuple(self._gaps)), []
        return delta
