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

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from auditor import __version__
from auditor.app.analysis import Analyzer, policy_manifest, skipped_flows
from auditor.app.flowqueue import END_OF_STREAM, FlowQueue, pump
from auditor.app.inventory import Inventory, LiveInventory, live_inventory, manifest_inventory
from auditor.app.scaleout import shard_index, writer_identity
from auditor.app.settings import RunSettings
from auditor.app.workers import PoolSession, WorkerPool, default_workers, pump_to_pool
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
from auditor.model.k8s import Change
from auditor.store import Store, open_store
from auditor.store.leases import DEFAULT_LEASE_NS, LeaseLostError, WriterRefusedError
from auditor.store.records import StoreSnapshot
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
INVENTORY_DOWN_GRACE_S = 10.0
"""A resource whose list/watch keeps failing this long makes /readyz 503 (a watch blip does not)."""


_NOT_EXPORTED = StoreSnapshot(schema_version=0, open_findings=(), resolved_findings=0, coverage_from_ns=0,
                              coverage_to_ns=0, lost_total=0, policy_changes=0)


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
    identity: str = ""
    """The writer identity (--instance); "" writes without a lease (tests composing a Daemon by hand)."""
    lease_ttl_ns: int = DEFAULT_LEASE_NS
    leased: bool = False
    """Holds its writer lease: flushes wait until it does (a store locked at start is claimed later)."""
    cluster_holder: bool = True
    """Holds the store's cluster lease: only then does /metrics carry the cluster-level (store) gauges."""
    health_stale_s: float = 120.0
    """/healthz fails when the analysis loop has not turned for this long (a hung store write or worse)."""

    def __post_init__(self) -> None:
        settings = self.settings
        self.queue = FlowQueue(settings.queue_size)
        self.pool: WorkerPool | None = None
        self.session: AnalysisSession | PoolSession
        workers = settings.workers or default_workers()
        if workers > 1:
            self.pool = WorkerPool(settings, analysis_options(settings), workers,
                                   live_history=isinstance(self.inventory, LiveInventory),
                                   capacity=settings.queue_size,
                                   on_convert_error=self.source.stats.record_error)
            self.session = PoolSession(self.pool, self.inventory.history.latest, analysis_options(settings))
        else:
            self.session = AnalysisSession(self.inventory.history, analysis_options(settings),
                                           manifest=policy_manifest, prune=True, keep_connections=True)
        self.correlator = self.session.correlator
        self.analyzer = Analyzer(session=self.session, store=self.store, clock_ns=self.clock_ns)
        self.inventory.on_change = self._on_change
        for change in self.inventory.initial_changes:
            self.analyzer.note_change(change)
        self._outages_seen = 0
        self._told_retention = False
        registry = make_registry(self.metrics_snapshot, max_series_per_metric=settings.max_series_per_metric)
        self._probe_lock = threading.Lock()
        self._ready_state: tuple[bool, str] | None = None
        self._down_since: dict[str, float] = {}
        self._store_error = ""
        self._last_store_snapshot: StoreSnapshot | None = None
        self._heartbeat = time.monotonic()
        self._reader: threading.Thread | None = None
        self.server = MetricsServer(settings.metrics_address, registry=registry,
                                    health_fn=self.health, ready_fn=self.readiness)

    def _on_change(self, change: Change) -> None:
        if self.pool is not None:
            self.pool.change(change)
        self.analyzer.note_change(change)

    def readiness(self) -> tuple[bool, str]:
        """Ready when all three inputs of the findings work: the flow stream is connected, the inventory
        is synced and up (INVENTORY_DOWN_GRACE_S), and the last store write succeeded.  Changes are logged."""
        ready, reason = self._readiness()
        with self._probe_lock:
            changed, self._ready_state = self._ready_state != (ready, reason), (ready, reason)
        if changed:
            (_log.info if ready else _log.warning)("readiness_changed", ready=ready, reason=reason)
        return ready, reason

    def _readiness(self) -> tuple[bool, str]:
        if not self.lossless and not self.source.stats.connected:
            return False, "hubble stream not connected"
        if not self.inventory.ready():
            return False, "inventory not synced"
        down = self._inventory_down()
        if down:
            return False, f"inventory down: {', '.join(down)} (Kubernetes API errors: inventory_watch_failed)"
        if self._store_error:
            return False, f"store writes failing: {self._store_error}"
        return True, "ok"

    def _inventory_down(self) -> list[str]:
        """Resources whose list/watch has failed for longer than INVENTORY_DOWN_GRACE_S."""
        now = time.monotonic()
        resources = self.inventory.status().resources
        with self._probe_lock:
            for name, status in resources.items():
                if status.up:
                    self._down_since.pop(name, None)
                else:
                    self._down_since.setdefault(name, now)
            return sorted(name for name, since in self._down_since.items()
                          if now - since >= INVENTORY_DOWN_GRACE_S)

    def health(self) -> tuple[bool, str]:
        """Alive while the analysis loop turns (HEALTH_STALE_S) and, for a live stream, its reader runs."""
        quiet = time.monotonic() - self._heartbeat
        if quiet > self.health_stale_s:
            return False, f"analysis loop made no progress for {quiet:.0f} s"
        reader = self._reader
        if not self.lossless and reader is not None and not reader.is_alive() and not self.stop.is_set():
            return False, "flow reader stopped"
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
            "flow_processing_lag": self.analyzer.lag.data() if self.pool is None else self.pool.lag(),
            "queue_dropped": self.queue.dropped if self.pool is None else self.pool.dropped,
            "bad_flows": dict(self.analyzer.bad_flows),
            "flows_skipped": skipped_flows(stats),
            "findings_overflow": self.analyzer.findings_overflow,
            "errors": dict(self.analyzer.errors),
            "inventory_unchanged_writes": self.inventory.history.unchanged,
        }
        # Another daemon (the cluster lease holder) exports the cluster-wide store gauges: the others do
        # not read them at all (5,000 node pods scraped every 30 s would be 166 snapshot queries a second).
        store = self._store_snapshot() if self.cluster_holder else _NOT_EXPORTED
        return build_snapshot(pipeline, source=self.source.stats, inventory=self.inventory.status(),
                              store=store, hubble_up=True if self.lossless else None)

    def _store_snapshot(self) -> StoreSnapshot:
        """The store's summary; while the store cannot be read, the last one read (the rest of /metrics
        still answers, and /readyz says the store is failing)."""
        try:
            snapshot = self.store.snapshot()
        except StoreError as exc:
            if self._last_store_snapshot is None:
                raise
            if not self._store_error:
                self._store_error = str(exc).splitlines()[0]
            return self._last_store_snapshot
        self._last_store_snapshot = snapshot
        return snapshot

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (or `stop`), then drain, flush and return the exit code."""
        self._install_signal_handlers()
        with contextlib.suppress(StoreError):  # the summary /metrics falls back on while the store fails
            self._last_store_snapshot = self.store.snapshot()
        self.server.start()
        self.inventory.start()
        target: Callable[..., None] = pump
        kwargs: dict[str, Any] = {"flow_queue": self.queue}
        if self.pool is not None:
            self.pool.start()
            target, kwargs = pump_to_pool, {"pool": self.pool}
        reader = threading.Thread(target=target, name="flow-reader", daemon=True,
                                  kwargs={"source": self.source, "stop": self.stop, "lossless": self.lossless,
                                          "on_fatal": self._on_fatal, **kwargs})
        self._reader = reader
        reader.start()
        _log.info("started", version=__version__, metrics=self.server.url, store=self.settings.store,
                  workers=self.pool.size if self.pool is not None else 1)
        saved = False
        try:
            if self.pool is None:
                self._analyse_until_stopped()
            else:
                self._wait_for_pool(self.pool)
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
            self._heartbeat = time.monotonic()
            item = self.queue.get(timeout=0.2) if not ended else (self.stop.wait(0.2) and None)
            if item is END_OF_STREAM:
                ended = True
                _log.info("flow_source_ended", flows=self.source.stats.flows)
                self._flush()
                if self.settings.exit_at_end:
                    self._request_stop()
            elif item is not None:
                self.analyzer.handle(item)
            now = time.monotonic()
            if now >= next_flush:
                self._periodic(now >= next_retention)
                next_retention = now + RETENTION_EVERY_S if now >= next_retention else next_retention
                next_flush = now + interval

    def _wait_for_pool(self, pool: WorkerPool) -> None:
        """The analysis runs in the pool's workers: this thread only flushes, and notes the stream's end."""
        interval = self.settings.flush_interval
        next_flush = time.monotonic() + interval
        next_retention = time.monotonic()
        ended = False
        while not self.stop.wait(min(0.05, max(0.0, next_flush - time.monotonic()))):
            self._heartbeat = time.monotonic()
            if not ended and pool.ended.is_set() and pool.idle():
                ended = True
                _log.info("flow_source_ended", flows=self.source.stats.flows)
                self._flush()
                if self.settings.exit_at_end:
                    self._request_stop()
            now = time.monotonic()
            if now >= next_flush:
                self._periodic(now >= next_retention)
                next_retention = now + RETENTION_EVERY_S if now >= next_retention else next_retention
                next_flush = now + interval

    def _periodic(self, retention: bool) -> None:
        self.heartbeat()
        self._flush()
        self.readiness()  # logs a change even when nothing probes
        try:
            now_ns = self.clock_ns()
            self.inventory.prune(now_ns)
            if self.pool is not None:
                self.pool.prune(now_ns)
            if retention:
                max_age_ns = int(self.settings.retention * 1e9)
                deleted = self.store.apply_retention(self.retention_now_ns(), max_age_ns)
                event = "retention_skipped" if deleted.skipped else "retention_applied"  # another writer's turn
                _log.debug(event, deleted=str(deleted))
        except Exception as exc:  # retried at the next retention interval
            self.analyzer.count_error("retention", exc)

    def claim(self) -> None:
        """Claim the writer identity.  Another live writer of it raises WriterRefusedError (the daemon
        must not start: two writers under one identity double its counters); a store that cannot be
        reached now is counted, and the claim is retried at each heartbeat (nothing is flushed before)."""
        if not self.identity:
            self.leased = True
            return
        try:
            self.store.claim_writer(self.identity, ttl_ns=self.lease_ttl_ns)
            self.leased = True
            self.cluster_holder = self.store.heartbeat()
            _log.info("writer_lease", instance=self.identity, cluster_lease=self.cluster_holder)
        except WriterRefusedError:
            raise
        except StoreError as exc:
            self.cluster_holder = False
            self.analyzer.count_error("store", exc)
            _log.warning("writer_lease_deferred", instance=self.identity, error=str(exc))

    def heartbeat(self) -> None:
        """Renew the writer lease (and take the cluster lease when free), once per flush.  A lease another
        process took over, or an identity found taken, means two writers under one identity: stop, exit 1.
        A store that is down is counted and retried (the lease outlives two missed heartbeats)."""
        try:
            if not self.leased:
                self.claim()
            elif self.identity:
                self.cluster_holder = self.store.heartbeat()
        except (LeaseLostError, WriterRefusedError) as exc:
            _log.error("writer_lease_lost", error=str(exc))
            self.leased = False
            self.fatal.append(exc)
            self._request_stop()
        except StoreError as exc:
            self.analyzer.count_error("store", exc)

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
        if not self.leased:
            self.heartbeat()
            if not self.leased:
                return False
        try:
            self.analyzer.flush()
        except StoreError as exc:
            self.analyzer.count_error("store", exc)
            self._store_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return False
        except Exception as exc:
            self.analyzer.count_error("flush", exc)
            self._store_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            return False
        self._store_error = ""
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
        if self.pool is not None:
            reader.join(max(0.0, deadline - time.monotonic()))
            while time.monotonic() < deadline and not self.pool.idle():
                time.sleep(0.01)
            return
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
            if self.pool is not None:
                self.pool.stop()
            self.inventory.stop()
            self.server.stop()
            self._release_lease()
            self.store.close()
            _log.info("stopped", flows=self.source.stats.flows, queue_dropped=self.queue.dropped,
                      **self.accounting())
        return saved

    def accounting(self) -> dict[str, int]:
        """Where every received flow went: received = analysed + queued + dropped (logged at exit)."""
        if self.pool is not None:
            return {"received": self.source.stats.flows}
        counts = {"received": self.source.stats.flows, "analysed": self.analyzer.flows_handled,
                  "queued": self.queue.flows_left(), "dropped": self.queue.dropped_flows}
        if counts["received"] != counts["analysed"] + counts["queued"] + counts["dropped"]:
            _log.error("flow_accounting_mismatch", **counts)
        return counts

    def _release_lease(self) -> None:
        """A clean stop frees this writer's identity at once (a restart need not wait for the expiry)."""
        if not (self.identity and self.leased):
            return
        try:
            self.store.release_writer()
        except StoreError as exc:
            _log.warning("writer_lease_not_released", error=str(exc))

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
    store = open_daemon_store(settings.store, settings.store_password_file)
    try:
        daemon = _compose(settings, store, flow_filters)
        daemon.claim()  # a second live writer of this identity stops here, with one line
        return daemon
    except BaseException:
        store.close()
        raise


def _compose(settings: RunSettings, store: Store, flow_filters: tuple[Sequence[Any], Sequence[Any]]) -> Daemon:
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
    ttl_ns = max(DEFAULT_LEASE_NS, int(3 * settings.flush_interval * 1e9))  # two missed heartbeats
    return Daemon(settings=settings, source=source, lossless=lossless, inventory=inventory, store=store,
                  identity=writer_identity(settings), lease_ttl_ns=ttl_ns)


def open_daemon_store(url: str, password_file: str = "") -> Store:
    """The store for the daemon: SQLite with a short busy timeout (see STORE_BUSY_TIMEOUT_MS), PostgreSQL
    with the password from --store-password-file."""
    scheme = url.partition(":")[0].lower()
    if scheme in ("postgresql", "postgres"):
        from auditor.store.postgres import PostgresStore

        return PostgresStore(url, password_file=password_file)
    if scheme != "sqlite":
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
    raw = (settings.workers or default_workers()) > 1  # the pool's workers convert
    if settings.shards > 1:
        from auditor.hubble.shards import ShardedRelay

        return ShardedRelay(config, settings.shards, shard_index(settings), raw=raw)
    return HubbleClient(config, light=True, raw=raw)  # only the correlator reads
