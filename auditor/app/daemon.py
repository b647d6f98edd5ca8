"""`auditor run`: the long-running service, composed from settings.

    reader thread:  FlowSource.events() -> FlowQueue (bounded; live overflow counted)
    main thread:    FlowQueue -> Analyzer.handle(); every flush interval Analyzer.flush() -> Store
    watcher threads (live inventory): Kubernetes changes -> ClusterHistory
    HTTP thread:    /metrics (a snapshot built at scrape time), /healthz, /readyz

SIGTERM/SIGINT: stop reading, analyse what is queued, flush the store, exit 0 (within 10 s).
One bad flow, a failing flush (store locked, disk full) or a failing retention is counted
(auditor_bad_flows_total, auditor_errors_total), logged and survived; a failed flush is retried.
If the store still refuses the final flush, the exit code is 1 and the log says what was lost.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from auditor import __version__
from auditor.app.analysis import Analyzer, policy_manifest, skipped_flows
from auditor.app.flowqueue import END_OF_STREAM, FlowQueue, pump
from auditor.app.inventory import Inventory, live_inventory, manifest_inventory
from auditor.app.settings import RunSettings
from auditor.errors import StoreError
from auditor.exporter.collector import make_registry
from auditor.exporter.http import MetricsServer
from auditor.exporter.snapshot import MetricsSnapshot
from auditor.exporter.sources import build_snapshot
from auditor.findings.session import AnalysisOptions, AnalysisSession
from auditor.hubble.cli_filters import request_filters
from auditor.hubble.config import HubbleConfig
from auditor.hubble.files import FileFlowSource
from auditor.hubble.filters import compile_filters
from auditor.hubble.source import FlowSource
from auditor.log import get_logger
from auditor.store import Store, open_store
from auditor.store.sqlite import SqliteStore
from auditor.store.url import sqlite_path

_log = get_logger("auditor.daemon")
SHUTDOWN_BUDGET_S = 6.0
"""Time allowed after a stop signal to analyse what is queued, counted from the signal: what may
still be blocked in a store write then, the drain and the final flush all fit in the 10 s."""
STORE_BUSY_TIMEOUT_MS = 1500
"""How long one store write waits for another writer's lock before the flush fails (and is retried
at the next one): short, so a locked store never holds a stop signal up for long."""
RETENTION_EVERY_S = 3600.0


@dataclass
class Daemon:
    """A composed daemon; `run()` blocks until stopped and returns the exit code."""

    settings: RunSettings
    source: FlowSource
    lossless: bool
    inventory: Inventory
    store: Store
    clock_ns: Callable[[], int] = time.time_ns
    stop: threading.Event = field(default_factory=threading.Event)
    fatal: list[BaseException] = field(default_factory=list)
    stopping_since: float | None = None
    """time.monotonic() of the stop signal (the shutdown budget counts from it)."""

    def __post_init__(self) -> None:
        settings = self.settings
        self.queue = FlowQueue(settings.queue_size)
        self.session = AnalysisSession(self.inventory.history, analysis_options(settings),
                                       manifest=policy_manifest, prune=True)
        self.correlator = self.session.correlator
        self.analyzer = Analyzer(session=self.session, store=self.store, clock_ns=self.clock_ns)
        self.inventory.on_change = self.analyzer.note_change
        for change in self.inventory.initial_changes:
            self.analyzer.note_change(change)
        self._outages_seen = 0
        self._told_retention = False
        registry = make_registry(self.metrics_snapshot, max_series_per_metric=settings.max_series_per_metric)
        self.server = MetricsServer(settings.metrics_address, registry=registry,
                                    health_fn=lambda: True, ready_fn=self.readiness)

    def readiness(self) -> tuple[bool, str]:
        """Ready when the flow stream is connected and the inventory's initial lists are in."""
        if not self.lossless and not self.source.stats.connected:
            return False, "hubble stream not connected"
        if not self.inventory.ready():
            return False, "inventory not synced"
        return True, "ok"

    def metrics_snapshot(self) -> MetricsSnapshot:
        """Built at each scrape from the pipeline, the source, the inventory and the store."""
        stats = self.correlator.stats
        with self.analyzer.lock:
            findings_new = dict(self.analyzer.findings_new)
            posture = self.analyzer.posture
        pipeline = {
            "version": __version__,
            "flows_processed": dict(stats.flows),
            "policy_verdicts": dict(stats.policy_verdicts),
            "policy_drops": dict(stats.policy_drops),
            "findings_new": findings_new,
            "dns_denials": dict(stats.dns_denials),
            "health_check_drops": dict(stats.health_check_drops),
            "unprotected_pods": posture.unprotected_pods,
            "namespace_default_deny": posture.default_deny,
            "flow_processing_lag": self.analyzer.lag.data(),
            "queue_dropped": self.queue.dropped,
            "bad_flows": dict(self.analyzer.bad_flows),
            "flows_skipped": skipped_flows(stats),
            "findings_overflow": self.analyzer.findings_overflow,
            "errors": dict(self.analyzer.errors),
            "inventory_unchanged_writes": self.inventory.history.unchanged,
        }
        return build_snapshot(pipeline, source=self.source.stats, inventory=self.inventory.status(),
                              store=self.store.snapshot(), hubble_up=True if self.lossless else None)

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (or `stop`), then drain, flush and return the exit code."""
        self._install_signal_handlers()
        self.server.start()
        self.inventory.start()
        reader = threading.Thread(target=pump, name="flow-reader", daemon=True,
                                  kwargs={"source": self.source, "flow_queue": self.queue, "stop": self.stop,
                                          "lossless": self.lossless, "on_fatal": self._on_fatal})
        reader.start()
        _log.info("started", version=__version__, metrics=self.server.url, store=self.settings.store)
        saved = False
        try:
            self._analyse_until_stopped()
            self.source.close()
            self._drain(reader)
        finally:
            saved = self._shutdown()
        return 1 if self.fatal or not saved else 0

    def _analyse_until_stopped(self) -> None:
        interval = self.settings.flush_interval
        next_flush = time.monotonic() + interval
        next_retention = time.monotonic()
        ended = False
        while not self.stop.is_set():
            item = self.queue.get(timeout=0.2) if not ended else (self.stop.wait(0.2) and None)
            if item is END_OF_STREAM:
                ended = True
                _log.info("flow_source_ended", flows=self.source.stats.flows)
                self._flush()
            elif item is not None:
                self.analyzer.handle(item)
            now = time.monotonic()
            if now >= next_flush:
                self._periodic(now >= next_retention)
                next_retention = now + RETENTION_EVERY_S if now >= next_retention else next_retention
                next_flush = now + interval

    def _periodic(self, retention: bool) -> None:
        self._flush()
        try:
            self.inventory.prune(self.clock_ns())
            if retention:
                max_age_ns = int(self.settings.retention * 1e9)
                deleted = self.store.apply_retention(self.retention_now_ns(), max_age_ns)
                _log.debug("retention_applied", deleted=str(deleted))
        except Exception as exc:  # retried at the next retention interval
            self.analyzer.count_error("retention", exc)

    def retention_now_ns(self) -> int:
        """The "now" retention is judged against: the wall clock for a live stream; for files (a replay),
        the newest flow's own time, so a capture older than --retention is kept and reported rather than
        pruned the moment it is written (the log says so once)."""
        clock = self.clock_ns()
        if not self.lossless:
            return clock
        newest = self.correlator.stats.last_ns
        if newest and newest < clock - int(self.settings.retention * 1e9) and not self._told_retention:
            self._told_retention = True
            _log.warning("retention_by_data_time", newest_flow_ns=newest,
                         note="the flow files are older than --retention: it counts from their newest flow")
        return min(clock, newest) if newest else clock

    def _flush(self) -> bool:
        """Flush to the store; a failure is counted and logged, and what was not written is kept."""
        self._note_outages()
        try:
            self.analyzer.flush()
        except StoreError as exc:
            self.analyzer.count_error("store", exc)
            return False
        except Exception as exc:
            self.analyzer.count_error("flush", exc)
            return False
        return True

    def _note_outages(self) -> None:
        """Stream outages the source recorded since the last flush go to the store as gaps."""
        outages = self.source.stats.snapshot().outages
        for from_ns, to_ns in outages[self._outages_seen:]:
            self.analyzer.note_outage(from_ns, to_ns)
        self._outages_seen = len(outages)

    def _drain(self, reader: threading.Thread) -> None:
        """Analyse what is already queued, up to the shutdown budget (counted from the stop signal)."""
        deadline = (self.stopping_since or time.monotonic()) + SHUTDOWN_BUDGET_S
        while time.monotonic() < deadline:
            item = self.queue.get(timeout=0.05)
            if item is END_OF_STREAM or (item is None and not reader.is_alive()):
                break
            if item is not None:
                self.analyzer.handle(item)
        left = len(self.queue)
        if left:
            _log.warning("shutdown_left_queued", events=left)

    def _shutdown(self) -> bool:
        """Final flush and teardown; False when the final flush failed (its data is lost, and logged)."""
        saved = False
        try:
            saved = self._flush()
            unwritten = self.analyzer.unwritten()
            if not saved and any(unwritten.values()):
                _log.error("store_flush_failed_at_exit", unwritten=unwritten)
            saved = saved or not any(unwritten.values())  # only the WAL checkpoint failed: nothing lost
        finally:
            self.inventory.stop()
            self.server.stop()
            self.store.close()
            _log.info("stopped", flows=self.source.stats.flows, queue_dropped=self.queue.dropped)
        return saved

    def _on_fatal(self, exc: BaseException) -> None:
        _log.error("flow_source_failed", error=str(exc))
        self.fatal.append(exc)
        self._request_stop()

    def _request_stop(self) -> None:
        if self.stopping_since is None:
            self.stopping_since = time.monotonic()
        self.stop.set()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda number, _frame: self._on_signal(number))

    def _on_signal(self, number: int) -> None:
        _log.info("stopping", signal=signal.Signals(number).name)
        self._request_stop()


def analysis_options(settings: RunSettings) -> AnalysisOptions:
    """How the daemon judges flows: the same options `audit` and `report` take."""
    return AnalysisOptions(enforce_node_traffic=settings.enforce_node_traffic,
                           cidr_match_nodes=settings.cidr_match_nodes,
                           policy_enforcement=settings.policy_enforcement, max_findings=100_000)


def build_daemon(settings: RunSettings | Mapping[str, Any], *,
                 flow_filters: tuple[Sequence[Any], Sequence[Any]] = ((), ())) -> Daemon:
    """Compose a daemon from resolved settings (see auditor.app.settings).

    `flow_filters`: (allow, deny) FlowFilters from run's hubble-style filter flags; Hubble applies
    them to the live stream, the file source to --flows.
    """
    if not isinstance(settings, RunSettings):
        settings = RunSettings.from_values(settings)
    store = open_daemon_store(settings.store)
    window_ns = int(settings.history_window * 1e9)
    if settings.manifests:
        inventory = manifest_inventory(settings.manifests, settings.cluster_events or None, window_ns)
    else:
        inventory = live_inventory(kubeconfig=settings.kubeconfig or None, context=settings.context or None,
                                   window_ns=window_ns)
    source: FlowSource
    if settings.flows:
        keep = compile_filters(*flow_filters)
        source, lossless = FileFlowSource(list(settings.flows), light=True, keep=keep), True  # correlator only
    else:
        source, lossless = _hubble_client(settings, flow_filters), False
    return Daemon(settings=settings, source=source, lossless=lossless, inventory=inventory, store=store)


def open_daemon_store(url: str) -> Store:
    """The store for the daemon: SQLite with a short busy timeout (see STORE_BUSY_TIMEOUT_MS)."""
    if url.partition(":")[0].lower() != "sqlite":
        return open_store(url)
    path = sqlite_path(url)
    return SqliteStore(path, url=url, busy_timeout_ms=STORE_BUSY_TIMEOUT_MS)


def hubble_config(settings: RunSettings, node_name: str = "",
                  flow_filters: tuple[Sequence[Any], Sequence[Any]] = ((), ())) -> HubbleConfig:
    """The live client's config from the shared Hubble settings (node mode: only that node's flows)."""
    allow, deny = request_filters(*flow_filters, node_name=node_name)
    return settings.hubble.config(allow_filters=allow, deny_filters=deny)


def _hubble_client(settings: RunSettings, flow_filters: tuple[Sequence[Any], Sequence[Any]]) -> FlowSource:
    from auditor.hubble.client import HubbleClient

    config = hubble_config(settings, settings.node_name, flow_filters)
    return HubbleClient(config, light=True)  # only the correlator reads
