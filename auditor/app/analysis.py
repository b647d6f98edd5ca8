"""The analysis side of the daemon: correlate each event, aggregate, flush to the store.

Runs on one thread.  Per flow it does the correlator's work and a histogram observation;
everything that touches the store happens in `flush()`, every few seconds, in batches:
findings upserted by key (the new ones logged once each), counters by hour, coverage windows,
lost-event gaps, policy changes, and the static findings of the newest cluster state.

One bad flow never stops the analysis: a flow whose time the store cannot hold, or on which the
correlator raises, is counted in `bad_flows` (by reason), logged at the 1st, 10th, 100th ...
occurrence, and skipped.  A flush that fails (store locked, disk full) keeps what it had not
written yet, so the next flush writes it: nothing is written twice or lost.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from auditor.exporter.collector import SKIP_REASONS
from auditor.exporter.snapshot import LagHistogram
from auditor.findings.aggregate import FindingAggregator, merge
from auditor.findings.correlate import Correlator, CorrelatorStats, PolicyVerdictKey
from auditor.findings.static import static_findings
from auditor.kube.export import object_to_dict
from auditor.log import LOG_AT, get_logger
from auditor.model.decision import CCNP_KIND, KNP_KIND, PolicyId
from auditor.model.events import LostEvents
from auditor.model.findings import Finding, FindingKey, FindingKind
from auditor.model.flows import Flow
from auditor.model.k8s import Change, NetworkPolicy, PolicyDirection
from auditor.policy.coverage import default_deny_policies, isolation
from auditor.policy.state import ClusterState, policy_id
from auditor.store import CounterRow, Store

HOUR_NS = 3600 * 1_000_000_000
_log = get_logger("auditor.findings")

STATIC_KINDS = frozenset(kind for kind in FindingKind if kind.is_static)
MAX_TIME_NS = 2**63 - 1
"""Flow times must be after the epoch and fit the store's 64-bit integers (until 2262)."""


@dataclass(frozen=True, slots=True)
class Posture:
    """Coverage of the newest cluster state, recomputed when that state changes."""

    unprotected_pods: dict[tuple[str, str], int] = field(default_factory=dict)
    """(namespace, direction) -> pods no policy selects in that direction."""
    default_deny: dict[tuple[str, str], bool] = field(default_factory=dict)
    """(namespace, direction) -> every pod of the namespace is isolated in that direction."""


DIRECTIONS = (("ingress", PolicyDirection.INGRESS), ("egress", PolicyDirection.EGRESS))


def compute_posture(state: ClusterState) -> Posture:
    """Per namespace and direction: unprotected pods, and default deny.

    Default deny means a policy with an empty podSelector applies to the direction: it isolates
    every pod of the namespace, also pods created later.  A namespace whose pods happen to be
    covered one by one, or an empty namespace without such a policy, has no default deny.
    """
    unprotected: Counter[tuple[str, str]] = Counter()
    default_deny: dict[tuple[str, str], bool] = {}
    for namespace in (ns.name for ns in state.namespaces):
        for label, direction in DIRECTIONS:
            unprotected[(namespace, label)] += 0
            default_deny[(namespace, label)] = bool(default_deny_policies(state, namespace, direction))
    for pod in state.pods:
        if pod.host_network:
            continue
        for (label, _), isolated in zip(DIRECTIONS, isolation(state, pod), strict=True):
            if not isolated:
                unprotected[(pod.namespace, label)] += 1
    return Posture(unprotected_pods=dict(unprotected), default_deny=default_deny)


def prune_deleted(stats: CorrelatorStats, state: ClusterState, *counters: Counter[PolicyVerdictKey]) -> int:
    """Forget counter keys of namespaces, workloads and policies `state` no longer has.

    Their metric series then disappear at the next scrape (as Prometheus expects of deleted
    objects), and the counters stay bounded by what exists.  `counters` are extra copies keyed
    like `stats.policy_verdicts` (the flush bookkeeping) pruned the same way.  Policies are told
    apart by kind; a CiliumClusterwideNetworkPolicy (namespace "") lives as long as it exists.
    """
    namespaces = {namespace.name for namespace in state.namespaces}
    workloads = {(pod.namespace, pod.workload_name) for pod in state.pods}
    policies = {(policy.namespace, policy.name, KNP_KIND) for policy in state.policies}
    policies |= {(c.pid.namespace, c.pid.name, c.pid.kind) for c in state.cilium_policies}

    def policy_alive(key: PolicyVerdictKey) -> bool:
        namespace, name, kind = key[0], key[1], key[4]
        return (namespace in namespaces or kind == CCNP_KIND) and (namespace, name, kind) in policies

    def workload_alive(key: tuple[Any, ...]) -> bool:
        return key[0] in namespaces and key[:2] in workloads

    tables: list[tuple[Counter[Any], Callable[[Any], bool]]] = [
        (stats.policy_verdicts, policy_alive),
        (stats.policy_drops, workload_alive),
        (stats.dns_denials, workload_alive),
        (stats.health_check_drops, workload_alive),
        *((extra, policy_alive) for extra in counters),
    ]
    gone = 0
    for table, alive in tables:
        for key in [key for key in table if not alive(key)]:
            del table[key]
            gone += 1
    return gone


def skipped_flows(stats: CorrelatorStats) -> dict[str, int]:
    """Flows the correlator counted but did not judge, by SKIP_REASONS (read from another thread)."""
    skipped: Counter[str] = Counter()
    for reason, count in dict(stats.skipped).items():  # a reason added to the core later reads "other"
        skipped[reason if reason in SKIP_REASONS else "other"] += count
    skipped.update(unresolved=stats.unresolved, deduplicated=stats.deduplicated)
    skipped["other-drop"] += sum(dict(stats.other_drops).values())
    return dict(skipped)


def _storable(event: LostEvents) -> LostEvents:
    """Wire values the store cannot hold (uint64 counts, timestamps past 2262) made storable, so one odd
    LostEvents cannot make every later flush fail: the count is capped, and an unusable first/last
    time is dropped (the gap is then placed at the event's own time)."""
    def clamp(value: int) -> int:
        return min(max(value, 0), MAX_TIME_NS)

    def usable(value: int) -> int:
        return value if 0 < value <= MAX_TIME_NS else 0

    return dataclasses.replace(event, count=clamp(event.count), time_ns=clamp(event.time_ns),
                               first_ns=usable(event.first_ns), last_ns=usable(event.last_ns))


_Flushed = tuple[Counter[tuple[str, str]], Counter[PolicyVerdictKey]]
"""The flow and policy-verdict counters as of the last written flush."""


class Analyzer:
    """Correlates events and persists what they mean; see the module docstring."""

    def __init__(
        self,
        *,
        correlator: Correlator,
        store: Store,
        latest_state: Callable[[], ClusterState],
        clock_ns: Callable[[], int],
        enforce_node_traffic: bool = False,
        max_findings: int = 100_000,
    ) -> None:
        self.correlator = correlator
        self.store = store
        self._latest_state = latest_state
        self._clock_ns = clock_ns
        self._enforce_node_traffic = enforce_node_traffic
        self._max_findings = max_findings
        self.aggregator = FindingAggregator(max_keys=max_findings)
        self._overflow_before = 0
        self.bad_flows: Counter[str] = Counter()
        """Flows the analysis skipped, by reason: time (outside 1970..2262), analysis (the core raised)."""
        self.errors: Counter[str] = Counter()
        """Failures the daemon survived, by stage (collector.ERROR_STAGES)."""
        self._unwritten: dict[FindingKey, Finding] = {}
        self._flush_lock = threading.Lock()
        """One flush at a time (the demo flushes from its own thread too)."""
        self.lag = LagHistogram()
        self.findings_new: Counter[tuple[str, str, str]] = Counter()
        self.posture = Posture()
        self.lock = threading.Lock()
        """Held while counters change, so the exporter reads consistent copies."""
        self._lost: list[LostEvents] = []
        self._window: tuple[int, int] | None = None
        self._flushed_flows: Counter[tuple[str, str]] = Counter()
        self._flushed_verdicts: Counter[PolicyVerdictKey] = Counter()
        self._static_revision: int | None = None
        self._policy_changes: list[Change] = []

    def unwritten(self) -> dict[str, int]:
        """What failed flushes left for the next one (for the log)."""
        stats = self.correlator.stats
        with self.lock:
            return {"findings": len(self._unwritten), "lost_events": len(self._lost),
                    "policy_changes": len(self._policy_changes),
                    "flows_uncounted": sum(dict(stats.flows).values()) - sum(self._flushed_flows.values()),
                    "window": int(self._window is not None)}

    @property
    def findings_overflow(self) -> int:
        """Flows whose findings were not kept because the aggregator held `max_findings` keys."""
        return self._overflow_before + self.aggregator.overflow

    def handle(self, event: object) -> None:
        """One event from the queue; a flow that cannot be analysed is counted and skipped."""
        if isinstance(event, Flow):
            if not 0 < event.time_ns <= MAX_TIME_NS:
                self._count_bad("time", f"flow time {event.time_ns} ns is not between 1970 and 2262", event)
                return
            try:
                findings = self.correlator.process(event)
                if findings:
                    with self.lock:
                        for finding in findings:
                            self.aggregator.add(finding)
            except Exception as exc:  # a flow shape the core does not expect must not stop the daemon
                self._count_bad("analysis", repr(exc), event)
                return
            time_ns = event.time_ns
            self.lag.observe((self._clock_ns() - time_ns) / 1e9)
            window = self._window
            if window is None or not window[0] <= time_ns <= window[1]:
                with self.lock:
                    low, high = self._window or (time_ns, time_ns)
                    self._window = (min(low, time_ns), max(high, time_ns))
        elif isinstance(event, LostEvents):
            with self.lock:
                self._lost.append(_storable(event))

    def _count_bad(self, reason: str, error: str, flow: Flow) -> None:
        with self.lock:
            self.bad_flows[reason] += 1
            count = self.bad_flows[reason]
        if count in LOG_AT:
            _log.error("bad_flow", reason=reason, count=count, error=error, uuid=flow.uuid,
                       node=flow.node_name, time_ns=flow.time_ns)

    def count_error(self, stage: str, exc: BaseException) -> None:
        """Count (and log at the 1st, 10th, 100th ... time) a failure the daemon goes on after."""
        with self.lock:
            self.errors[stage] += 1
            count = self.errors[stage]
        if count in LOG_AT:
            _log.error(f"{stage}_failed", count=count, error=str(exc) or repr(exc), unwritten=self.unwritten())

    def note_change(self, change: Change) -> None:
        """A cluster change; policy changes are kept for the store's policy history."""
        if isinstance(change.obj, NetworkPolicy):
            with self.lock:
                self._policy_changes.append(change)

    def flush(self) -> list[Finding]:
        """Write everything gathered since the last flush; returns the findings that were new.

        Each part is forgotten only once written: when the store raises, what was not written is
        kept for the next flush, and the error propagates (the daemon counts it and goes on).
        """
        new: list[Finding] = []
        with self._flush_lock:
            try:
                new += self._write_findings()
                new += self._refresh_static()
                rows, flushed = self._counter_rows()
                if rows:
                    self.store.add_counts(rows)
                self._flushed_flows, self._flushed_verdicts = flushed
                self._write_window()
                self._write_each("_lost", self.store.record_lost_events)
                self._write_each("_policy_changes", self._record_policy_change)
                self.store.flush()
            finally:
                self._announce(new)
        return new

    def _write_findings(self) -> list[Finding]:
        """Upsert the findings drained now plus any a failed flush left unwritten."""
        with self.lock:
            drained = self.aggregator.drain()
            # The daemon only needs the deltas: a fresh aggregator bounds keys per flush, not per lifetime.
            self._overflow_before += self.aggregator.overflow
            self.aggregator = FindingAggregator(max_keys=self._max_findings)
        for finding in drained:
            older = self._unwritten.get(finding.key)
            self._unwritten[finding.key] = finding if older is None else merge(older, finding)
        if not self._unwritten:
            return []
        new = self.store.upsert_findings(list(self._unwritten.values()))
        self._unwritten = {}
        return new

    def _write_window(self) -> None:
        with self.lock:
            window = self._window
        if window is not None:
            self.store.record_window(*window)
            with self.lock:  # a wider window (flows analysed meanwhile) is written next time
                self._window = None if self._window == window else self._window

    def _write_each(self, attribute: str, write: Callable[[Any], None]) -> None:
        """Write and forget the items of list `attribute` in order; unwritten ones stay on failure."""
        with self.lock:
            batch: list[Any] = getattr(self, attribute)
            setattr(self, attribute, [])
        done = 0
        try:
            for item in batch:
                write(item)
                done += 1
        finally:
            if done < len(batch):
                with self.lock:
                    setattr(self, attribute, batch[done:] + getattr(self, attribute))

    def _refresh_static(self) -> list[Finding]:
        """Static findings of the newest state, once per state revision; vanished ones get resolved."""
        state = self._latest_state()
        if state.revision == self._static_revision:
            return []
        try:
            current = static_findings(state, enforce_node_traffic=self._enforce_node_traffic)
            posture = compute_posture(state)
        except Exception as exc:  # the same state would fail again: count it once, go on
            self._static_revision = state.revision
            self.count_error("static", exc)
            return []
        new = self.store.upsert_findings(current)
        self.store.resolve_missing_static([f.key for f in current], now_ns=self._clock_ns())
        self._static_revision = state.revision
        with self.lock:
            self.posture = posture
            for key in [key for key in self.findings_new if key[2] and state.namespace(key[2]) is None]:
                del self.findings_new[key]
        prune_deleted(self.correlator.stats, state, self._flushed_verdicts)
        return new

    def _counter_rows(self) -> tuple[list[CounterRow], _Flushed]:
        """Deltas of the correlator's counters since the last flush, in the current hour bucket,
        and the counters to remember as flushed once the rows are written.

        Verdict rows carry no policy; policy rows carry the attributed policy and the verdict
        `ALLOWED`/`DROPPED`, so totals by verdict must be taken over rows without a policy.  The
        policy column is `PolicyId.ref`: `namespace/name` for a NetworkPolicy (as always),
        `CiliumNetworkPolicy namespace/name`, `CiliumClusterwideNetworkPolicy name`.
        """
        stats = self.correlator.stats
        hour = (stats.last_ns or self._clock_ns()) // HOUR_NS * HOUR_NS
        rows: list[CounterRow] = []
        flows = stats.flows - self._flushed_flows
        for (verdict, direction), count in flows.items():
            rows.append(CounterRow(hour, "", "", verdict, direction, "", count))
        verdicts = stats.policy_verdicts - self._flushed_verdicts
        for (namespace, policy, direction, action, kind), count in verdicts.items():
            verdict = "DROPPED" if action == "dropped" else "ALLOWED"
            ref = PolicyId(namespace, policy, kind=kind).ref
            rows.append(CounterRow(hour, namespace, "", verdict, direction, ref, count))
        return rows, (Counter(stats.flows), Counter(stats.policy_verdicts))

    def _record_policy_change(self, change: Change) -> None:
        """The policy as a manifest (`kube.export.object_to_dict`), so the history keeps its whole spec."""
        policy = change.obj
        assert isinstance(policy, NetworkPolicy)
        manifest = json.dumps(object_to_dict(policy), sort_keys=True)
        self.store.record_policy_change(change.time_ns, change.type.value, policy.namespace, policy.name,
                                        policy_id(policy).revision, manifest)

    def _announce(self, new: list[Finding]) -> None:
        """One log line per new finding, with its attribution; never one per flow."""
        for finding in new:
            with self.lock:
                self.findings_new[(finding.kind.value, finding.severity.value, finding.namespace)] += 1
            _log.warning(
                "finding",
                kind=finding.kind.value,
                severity=finding.severity.value,
                namespace=finding.namespace,
                workload=finding.workload,
                peer=finding.peer,
                port=finding.port,
                protocol=finding.protocol,
                direction=finding.direction,
                policies=list(finding.policies),
                count=finding.count,
                message=finding.message,
            )
