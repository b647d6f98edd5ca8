"""The exporter's input contract: one immutable `MetricsSnapshot` built by the app at each scrape.

The app (composition root) reads the store, the pipeline stats and the sources, fills a
`MetricsSnapshot` and hands it to `AuditorCollector` through a `snapshot_fn`.  Every mapping
is keyed by a tuple of label values in the order documented on the field (the `*Key`
NamedTuples name them; plain tuples in that order work too).  Counters are cumulative
since process start; gauges are the current value.  A key that is no longer in the
snapshot (deleted namespace, workload or policy) disappears from `/metrics`.

Label values are the strings Prometheus shows: enum `.value`s (`FORWARDED`, `ingress`,
`unexpected-drop`, `high`), `namespace`, workload and policy *names*, policy kinds (never pod names,
IPs or arbitrary ports).  See docs/metrics.md for the meaning of each metric.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from auditor import __version__
from auditor.model.decision import CCNP_KIND, CNP_KIND, KNP_KIND, Enforcement, PolicyId, SideDecision

LAG_BUCKETS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Upper bounds (seconds) of `auditor_flow_processing_lag_seconds`; +Inf is implicit."""

_EMPTY: Mapping[Any, Any] = MappingProxyType({})


def _empty() -> Mapping[Any, Any]:
    return _EMPTY


class FlowKey(NamedTuple):
    verdict: str
    """Verdict value: FORWARDED, DROPPED, ERROR, AUDIT, ..."""
    direction: str
    """ingress, egress or unknown."""


POLICY_KINDS = (KNP_KIND, CNP_KIND, CCNP_KIND)
"""Values of the `policy_kind` label: NetworkPolicy, CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy."""


class PolicyVerdictKey(NamedTuple):
    namespace: str
    """The policy's namespace; "" for a CiliumClusterwideNetworkPolicy."""
    policy: str
    """Policy name (its namespace is the `namespace` label)."""
    direction: str
    """ingress or egress: the side the policy decided."""
    action: str
    """allowed or dropped."""
    policy_kind: str = KNP_KIND
    """One of POLICY_KINDS: policies of different kinds may share a namespace and name."""


class PolicyDropKey(NamedTuple):
    namespace: str
    workload: str
    direction: str
    expected: bool
    """True when auditor's model of the policies also denies the flow."""


class FindingCountKey(NamedTuple):
    kind: str
    """FindingKind value."""
    severity: str
    """Severity value."""
    namespace: str


class WorkloadKey(NamedTuple):
    namespace: str
    workload: str


class ProbePortKey(NamedTuple):
    namespace: str
    workload: str
    port: int
    """A probe port declared in the pod spec (bounded by the spec, not by traffic)."""


class NamespaceDirectionKey(NamedTuple):
    namespace: str
    direction: str
    """ingress or egress."""


@dataclass(frozen=True, slots=True)
class HistogramData:
    """A histogram's state: cumulative counts per upper bound (without +Inf), sum and count."""

    buckets: tuple[tuple[float, int], ...] = tuple((bound, 0) for bound in LAG_BUCKETS)
    sum: float = 0.0
    count: int = 0


class LagHistogram:
    """Thread-safe fixed-bucket accumulator the pipeline observes flow lag into.

    `observe(seconds)` is O(log buckets) under a lock; `data()` returns a consistent copy.
    Negative lags (clock skew between node and auditor) are clamped to 0 and still counted.
    """

    def __init__(self, bounds: Sequence[float] = LAG_BUCKETS) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError(f"histogram bounds must be strictly increasing and non-empty: {bounds!r}")
        self._bounds = tuple(float(b) for b in bounds)
        self._counts = [0] * (len(self._bounds) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        value = seconds if seconds > 0.0 else 0.0  # max() without the call: once per flow
        index = bisect.bisect_left(self._bounds, value)
        with self._lock:
            self._counts[index] += 1
            self._sum += value

    def data(self) -> HistogramData:
        with self._lock:
            counts = list(self._counts)
            total = self._sum
        cumulative: list[tuple[float, int]] = []
        running = 0
        for bound, count in zip(self._bounds, counts, strict=False):
            running += count
            cumulative.append((bound, running))
        return HistogramData(buckets=tuple(cumulative), sum=total, count=running + counts[-1])


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """Everything `/metrics` shows, at one instant.  Field -> metric (see docs/metrics.md)."""

    version: str = __version__
    """auditor_build_info{version}."""
    flows_processed: Mapping[tuple[str, str], int] = field(default_factory=_empty)
    """auditor_flows_processed_total, key FlowKey(verdict, direction)."""
    policy_verdicts: Mapping[tuple[str, str, str, str, str], int] = field(default_factory=_empty)
    """auditor_policy_verdicts_total, key PolicyVerdictKey(namespace, policy, direction, action,
    policy_kind).  One count per attributed side decision under its primary policy
    (`policy_attribution`)."""
    policy_drops: Mapping[tuple[str, str, str, bool], int] = field(default_factory=_empty)
    """auditor_policy_drops_total, key PolicyDropKey(namespace, workload, direction, expected)."""
    findings_new: Mapping[tuple[str, str, str], int] = field(default_factory=_empty)
    """auditor_findings_total: findings created (new aggregate keys), key FindingCountKey."""
    open_findings: Mapping[tuple[str, str, str], int] = field(default_factory=_empty)
    """auditor_open_findings: findings currently open in the store, key FindingCountKey."""
    dns_denials: Mapping[tuple[str, str], int] = field(default_factory=_empty)
    """auditor_dns_denials_total, key WorkloadKey(namespace, workload) of the client."""
    health_check_drops: Mapping[tuple[str, str, int], int] = field(default_factory=_empty)
    """auditor_health_check_drops_total, key ProbePortKey(namespace, workload, port)."""
    unprotected_pods: Mapping[tuple[str, str], int] = field(default_factory=_empty)
    """auditor_unprotected_pods (gauge), key NamespaceDirectionKey: pods no policy selects."""
    namespace_default_deny: Mapping[tuple[str, str], bool] = field(default_factory=_empty)
    """auditor_namespace_default_deny (0/1), key NamespaceDirectionKey; one entry per namespace
    and direction, False included, so `== 0` finds namespaces without default deny."""
    hubble_up: bool = False
    """auditor_hubble_up: the GetFlows stream is connected."""
    hubble_reconnects: int = 0
    """auditor_hubble_reconnects_total."""
    lost_events: Mapping[str, int] = field(default_factory=_empty)
    """auditor_hubble_lost_events_total, key LostEventSource value."""
    hubble_nodes: Mapping[str, int] = field(default_factory=_empty)
    """auditor_hubble_nodes (gauge), key NodeState value -> number of nodes in that state."""
    last_flow_timestamp_seconds: float = 0.0
    """auditor_last_flow_timestamp_seconds: event time of the newest flow seen (0 = none yet)."""
    flow_processing_lag: HistogramData = field(default_factory=HistogramData)
    """auditor_flow_processing_lag_seconds: analysis time minus flow time (LagHistogram.data())."""
    queue_dropped: int = 0
    """auditor_queue_dropped_total: events dropped because the bounded queue was full."""
    inventory_up: Mapping[str, bool] = field(default_factory=_empty)
    """auditor_inventory_up, key resource (namespaces, pods, nodes, networkpolicies, ciliumnetworkpolicies,
    ...): watch synced."""
    inventory_served: Mapping[str, bool] = field(default_factory=_empty)
    """auditor_inventory_served, key resource: False while the API server does not serve it (an
    optional CRD, Cilium's, not installed; `kube.stats.ResourceStatus.served`)."""
    inventory_unchanged_writes: int = 0
    """auditor_inventory_unchanged_writes_total: inventory writes that changed nothing auditor reads
    (kubelet status, node heartbeats), counted and not kept as history states."""
    inventory_last_sync_timestamp_seconds: float = 0.0
    """auditor_inventory_last_sync_timestamp_seconds: last full list (0 = never)."""
    invalid_objects: Mapping[str, int] = field(default_factory=_empty)
    """auditor_invalid_objects_total, key object kind (NetworkPolicy, Pod, Namespace, CiliumNetworkPolicy,
    CiliumClusterwideNetworkPolicy, CiliumCIDRGroup, ...)."""
    bad_flows: Mapping[str, int] = field(default_factory=_empty)
    """auditor_bad_flows_total, key reason (a short fixed word: decode, ignored, time, analysis)."""
    flows_received: int = 0
    """auditor_flows_received_total: flows read from the source before the queue."""
    flows_skipped: Mapping[str, int] = field(default_factory=_empty)
    """auditor_flows_skipped_total, key reason: processed flows not judged against the policies
    (reply, not-decision, health, dns-response, unresolved, deduplicated, other-drop, other)."""
    hubble_duplicates_dropped: int = 0
    """auditor_hubble_duplicates_dropped_total: flows Hubble sent again after a reconnect, dropped."""
    findings_overflow: int = 0
    """auditor_findings_overflow_total: flows whose findings were not kept (finding key limit)."""
    errors: Mapping[str, int] = field(default_factory=_empty)
    """auditor_errors_total, key stage (store, static, flush, retention, inventory): failures survived."""


@dataclass(frozen=True, slots=True)
class PolicyAttribution:
    """The one policy-verdict series a side decision counts in (see docs/metrics.md)."""

    namespace: str
    policy: str
    action: str
    policy_kind: str = KNP_KIND


def primary_policy(policies: Sequence[PolicyId]) -> PolicyId | None:
    """The deterministic primary policy: smallest (namespace, name, kind); None when there is none."""
    return min(policies, key=lambda p: (p.namespace, p.name, p.kind), default=None)


def policy_attribution(side: SideDecision) -> PolicyAttribution | None:
    """Attribute one enforced side decision to exactly one policy, or None when no policy decided.

    Allowed -> primary policy of the admitting rules; denied -> primary policy of the matching deny
    rules (Cilium's ingressDeny/egressDeny), else the primary isolating policy.  The correlator
    (`auditor.findings.correlate`) counts `auditor_policy_verdicts_total` by the same rule.
    """
    if side.enforcement is not Enforcement.ENFORCED:
        return None
    if side.allowed:
        chosen = primary_policy([match.policy for match in side.allowed_by])
        action = "allowed"
    else:
        deciding = [match.policy for match in side.denied_by] or list(side.isolated_by)
        chosen = primary_policy(deciding)
        action = "dropped"
    if chosen is None:
        return None
    return PolicyAttribution(namespace=chosen.namespace, policy=chosen.name, action=action,
                             policy_kind=chosen.kind)
