"""The one analysis session every command drives: events in, one frozen delta out.

`AnalysisSession` takes what the edges deliver (flows, lost events, stream outages, cluster
changes) and gathers it into an `AnalysisDelta` (`auditor.model.delta`): findings merged by
the model's one rule, counters keyed by each flow's own hour, coverage windows, gaps, policy
changes, and when the newest cluster state changed, its static findings, posture and invalid
objects.  The daemon asks for a delta at every flush and hands it to `Store.apply`; `audit`,
`report --flows` and the demo ask once at the end.  Like the rest of the core it does no I/O and
never reads the clock: the same events give the same delta, whoever drives the session.

One bad flow never stops a session: a flow whose time the store cannot hold, or on which the
correlator raises, is counted in `bad_flows` by reason and skipped (the driver logs it).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from auditor.findings.aggregate import DEFAULT_MAX_KEYS, FindingAggregator
from auditor.findings.connections import ConnectionTally
from auditor.findings.correlate import Correlator, CorrelatorStats, PolicyVerdictKey, StateHistory
from auditor.findings.static import static_findings
from auditor.model.cilium import CiliumNetworkPolicy
from auditor.model.decision import CCNP_KIND, KNP_KIND, policy_id_of
from auditor.model.delta import (
    HOUR_NS,
    STREAM_DOWN,
    AnalysisDelta,
    DataGap,
    HourCount,
    PolicyChangeEntry,
    RuleHitKey,
    RuleHourCount,
)
from auditor.model.events import LostEvents
from auditor.model.findings import Finding
from auditor.model.flows import Flow
from auditor.model.k8s import Change, NetworkPolicy, PolicyDirection
from auditor.policy.coverage import default_deny_policies, isolation
from auditor.policy.engine import POLICY_ENFORCEMENT_MODES, PolicyEngine
from auditor.policy.state import ClusterState

MAX_TIME_NS = 2**63 - 1
"""Flow times must be after the epoch and fit the store's 64-bit integers (until 2262)."""
DIRECTIONS = (("ingress", PolicyDirection.INGRESS), ("egress", PolicyDirection.EGRESS))


@dataclass(frozen=True, slots=True)
class AnalysisOptions:
    """How flows are judged; the same for every command given the same settings."""

    enforce_node_traffic: bool = False
    cidr_match_nodes: bool = False
    policy_enforcement: str = "default"
    max_findings: int = DEFAULT_MAX_KEYS

    def __post_init__(self) -> None:
        if self.policy_enforcement not in POLICY_ENFORCEMENT_MODES:
            raise ValueError(f"policy enforcement must be one of {', '.join(POLICY_ENFORCEMENT_MODES)}")

    def engine(self) -> PolicyEngine:
        return PolicyEngine(enforce_node_traffic=self.enforce_node_traffic,
                            cidr_match_nodes=self.cidr_match_nodes, policy_enforcement=self.policy_enforcement)


@dataclass(frozen=True, slots=True)
class Posture:
    """Coverage of the newest cluster state, recomputed when that state changes."""

    unprotected_pods: dict[tuple[str, str], int] = field(default_factory=dict)
    """(namespace, direction) -> pods no policy selects in that direction."""
    default_deny: dict[tuple[str, str], bool] = field(default_factory=dict)
    """(namespace, direction) -> every pod of the namespace is isolated in that direction."""


def compute_posture(state: ClusterState, policy_enforcement: str = "default") -> Posture:
    """Per namespace and direction: unprotected pods, and default deny (under `policy_enforcement`).

    Default deny means a policy that isolates every pod of the namespace, also pods created later,
    applies to the direction (or enforcement is `always`).  A namespace whose pods happen to be
    covered one by one, or an empty namespace without such a policy, has no default deny.
    """
    unprotected: Counter[tuple[str, str]] = Counter()
    default_deny: dict[tuple[str, str], bool] = {}
    for namespace in (ns.name for ns in state.namespaces):
        for label, direction in DIRECTIONS:
            unprotected[(namespace, label)] += 0
            default_deny[(namespace, label)] = bool(
                default_deny_policies(state, namespace, direction, policy_enforcement))
    for pod in state.pods:
        if pod.host_network:
            continue
        isolated = isolation(state, pod, policy_enforcement)
        for (label, _), covered in zip(DIRECTIONS, isolated, strict=True):
            if not covered:
                unprotected[(pod.namespace, label)] += 1
    return Posture(unprotected_pods=dict(unprotected), default_deny=default_deny)


def prune_deleted(stats: CorrelatorStats, state: ClusterState, *counters: Counter[PolicyVerdictKey]) -> int:
    """Forget counter keys of namespaces, workloads and policies `state` no longer has.

    Their metric series then disappear at the next scrape (as Prometheus expects of deleted
    objects), and the counters stay bounded by what exists.  `counters` are extra tables keyed like
    `stats.policy_verdicts`, pruned the same way.  Policies are told apart by kind; a
    CiliumClusterwideNetworkPolicy (namespace "") lives as long as it exists.
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


def policy_revision(policy: NetworkPolicy | CiliumNetworkPolicy, time_ns: int) -> str:
    """resourceVersion, else generation, else `t<time_ns>`: a policy written without either (a
    manifest, a cluster-events line) still gets one history row per change, not one in all."""
    return policy_id_of(policy).revision or f"t{time_ns}"


def _no_manifest(obj: object) -> str:
    return ""


class AnalysisSession:
    """See the module docstring.  Not thread-safe: one driver thread feeds it and takes deltas."""

    def __init__(self, history: StateHistory, options: AnalysisOptions | None = None, *,
                 correlator: Correlator | None = None, manifest: Callable[[object], str] = _no_manifest,
                 prune: bool = False, on_new: Callable[[Finding], None] | None = None,
                 keep_connections: bool = False) -> None:
        """`manifest` renders a policy for the history (the app passes JSON); `prune` forgets counter
        keys of deleted objects at each state change (the daemon's exporter wants that); `on_new` is
        called with the first finding of each key within a delta, as it appears (`audit --follow`);
        `keep_connections` folds judged flows into the delta's distinct connections (for a store)."""
        self.options = options or AnalysisOptions()
        self.correlator = correlator or Correlator(history, self.options.engine())
        self._history = history
        self._manifest = manifest
        self._prune = prune
        self._on_new = on_new
        self._aggregator = FindingAggregator(max_keys=self.options.max_findings)
        self._overflow_before = 0
        self._connections = ConnectionTally(self.options.max_findings) if keep_connections else None
        self._flows: Counter[tuple[int, str, str]] = Counter()
        self._hour: int | None = None
        """The hour of the flows the correlator counted since `_flows_mark` was taken."""
        self._flows_mark: dict[tuple[str, str], int] = dict(self.correlator.stats.flows)
        self._verdicts: Counter[tuple[int, PolicyVerdictKey]] = Counter()
        self._rule_hits: Counter[tuple[int, RuleHitKey | None]] = Counter()
        """Per hour: flows each rule decided; key None counts the hour's judged flows (`RuleHourCount`)."""
        self._window: tuple[int, int] | None = None
        self._gaps: list[DataGap] = []
        self._changes: list[PolicyChangeEntry] = []
        self._static_revision: int | None = None
        self.bad_flows: Counter[str] = Counter()
        """Flows skipped, by reason: time (outside 1970..2262), analysis (the core raised)."""
        self.last_error = ""
        """What was wrong with the last bad flow (for the driver's log)."""
        self.posture = Posture()
        self.invalid: tuple[str, ...] = ()
        self.state_changes = 0
        """Static evaluations done (one per newest-state revision seen at a delta)."""
        self.static_errors: list[str] = []
        """Static evaluations that raised (the driver counts and clears them)."""

    @property
    def stats(self) -> CorrelatorStats:
        """The correlator's running totals (the exporter reads copies)."""
        return self.correlator.stats

    @property
    def connections_overflow(self) -> int:
        """Judged flows whose connection was not kept because `max_findings` keys were held in one delta."""
        return self._connections.overflow if self._connections is not None else 0

    @property
    def findings_overflow(self) -> int:
        """Flows whose findings were not kept because `max_findings` keys were held in one delta."""
        return self._overflow_before + self._aggregator.overflow

    def latest_state(self) -> ClusterState:
        return self._history.latest()

    def handle(self, event: object) -> str:
        """One event of a flow source; for a flow, the reason it was skipped ("" when analysed)."""
        if isinstance(event, Flow):
            return self.flow(event)
        if isinstance(event, LostEvents):
            self.lost(event)
        return ""

    def flow(self, flow: Flow) -> str:
        """Judge one flow; "" when analysed, else the `bad_flows` reason it was skipped for."""
        time_ns = flow.time_ns
        if not 0 < time_ns <= MAX_TIME_NS:
            return self._bad("time", f"flow time {time_ns} ns is not between 1970 and 2262")
        hour = time_ns - time_ns % HOUR_NS
        if hour != self._hour:
            self._close_hour(hour)
        try:
            findings = self.correlator.process(flow)
        except Exception as exc:  # a flow shape the core does not expect must not stop the analysis
            return self._bad("analysis", repr(exc))
        if findings:
            self._add(findings)
        correlator = self.correlator
        judged = correlator.last_connection
        if judged is not None and self._connections is not None:
            self._connections.add(flow, *judged)
        verdict = correlator.last_verdict
        if verdict is not None:
            self._verdicts[(hour, verdict)] += 1
        rules = correlator.last_rules
        if rules:
            rule_hits = self._rule_hits
            for key in rules:
                rule_hits[(hour, key)] += 1
        window = self._window
        if window is None:
            self._window = (time_ns, time_ns)
        elif not window[0] <= time_ns <= window[1]:
            self._window = (min(window[0], time_ns), max(window[1], time_ns))
        return ""

    def _add(self, findings: list[Finding]) -> None:
        aggregator = self._aggregator
        on_new = self._on_new
        if on_new is None:
            for finding in findings:
                aggregator.add(finding)
            return
        for finding in findings:
            keys = aggregator.new_keys
            if aggregator.add(finding) and aggregator.new_keys != keys:
                on_new(finding)

    def _close_hour(self, next_hour: int | None) -> None:
        """Move the flows the correlator counted since the last switch into the current hour's counts.

        Flows by verdict and direction are counted once, by the correlator; the session notes where its
        counter stood when the hour changed (rare: flows come in time order) instead of counting again.
        """
        flows = self.correlator.stats.flows
        if self._hour is not None:
            mark = self._flows_mark
            for key, count in flows.items():
                moved = count - mark.get(key, 0)
                if moved:
                    self._flows[(self._hour, *key)] += moved
        self._flows_mark = dict(flows)
        if next_hour is not None:
            self._hour = next_hour

    def _bad(self, reason: str, error: str) -> str:
        self.bad_flows[reason] += 1
        self.last_error = error
        return reason

    def lost(self, event: LostEvents) -> None:
        """Events Hubble lost: a gap (values the store cannot hold made storable)."""
        event = _storable(event)
        self._gaps.append(DataGap(*event.span_ns, event.gap_reason, event.count))

    def outage(self, from_ns: int, to_ns: int, reason: str = STREAM_DOWN) -> None:
        """The flow stream was down over [from_ns, to_ns]: a gap."""
        if 0 < from_ns <= to_ns <= MAX_TIME_NS:
            self._gaps.append(DataGap(from_ns, to_ns, reason))

    def change(self, change: Change) -> None:
        """A cluster change (already applied to the history); policy changes of every kind are kept."""
        policy = change.obj
        if not isinstance(policy, NetworkPolicy | CiliumNetworkPolicy):
            return
        self._changes.append(PolicyChangeEntry(
            change.time_ns, change.type.value, policy.namespace, policy.name,
            policy_revision(policy, change.time_ns), policy_id_of(policy).kind, self._manifest(policy)))

    def delta(self) -> AnalysisDelta:
        """Everything gathered since the previous delta, and the static findings of the newest state
        when it changed since then.  The findings' key bound applies per delta."""
        findings = self._aggregator.drain()
        self._overflow_before += self._aggregator.overflow
        self._aggregator = FindingAggregator(max_keys=self.options.max_findings)
        self._close_hour(None)
        for (hour, _verdict, _direction), n in self._flows.items():  # the hour's rule hits were recorded
            self._rule_hits[(hour, None)] += n
        static, invalid = self._static()
        counts = [HourCount(hour, verdict, direction, n)
                  for (hour, verdict, direction), n in self._flows.items()]
        for (hour, (namespace, name, direction, action, kind)), n in self._verdicts.items():
            verdict = "DROPPED" if action == "dropped" else "ALLOWED"
            counts.append(HourCount(hour, verdict, direction, n, (namespace, name, kind)))
        delta = AnalysisDelta(
            findings=tuple(findings), static=static, counts=tuple(counts),
            windows=(self._window,) if self._window is not None else (), gaps=tuple(self._gaps),
            policy_changes=tuple(self._changes), invalid=invalid,
            rule_hits=tuple(RuleHourCount(hour, n, key) for (hour, key), n in self._rule_hits.items()),
            connections=self._connections.drain() if self._connections is not None else (),
        )
        self._flows, self._verdicts, self._window, self._rule_hits = Counter(), Counter(), None, Counter()
        self._gaps, self._changes = [], []
        return delta

    def _static(self) -> tuple[tuple[Finding, ...] | None, tuple[str, ...] | None]:
        """The newest state's static findings and invalid refs, once per state revision."""
        state = self._history.latest()
        if state.revision == self._static_revision:
            return None, None
        self._static_revision = state.revision
        self.state_changes += 1
        mode = self.options.policy_enforcement
        try:
            static = static_findings(state, enforce_node_traffic=self.options.enforce_node_traffic,
                                     policy_enforcement=mode)
            self.posture = compute_posture(state, mode)
        except Exception as exc:  # the same state would fail again: the driver counts it once, goes on
            self.static_errors.append(repr(exc))
            return None, None
        self.invalid = tuple(sorted({error.ref for error in state.invalid}))
        if self._prune:
            prune_deleted(self.correlator.stats, state)
        return tuple(static), self.invalid


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
