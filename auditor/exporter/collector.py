"""`AuditorCollector`: builds every auditor_* metric family fresh from a `MetricsSnapshot` per scrape.

Nothing is registered globally: `make_registry` returns a private `CollectorRegistry`.
Cardinality is capped per metric (see `CardinalityCap`); series missing from the snapshot
vanish from the output; enum-labelled series known in advance are exported at 0.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from auditor import __version__
from auditor.exporter.snapshot import MetricsSnapshot
from auditor.log import get_logger
from auditor.model.events import LostEventSource, NodeState
from auditor.model.flows import Direction, Verdict

SKIP_REASONS = ("reply", "not-decision", "health", "dns-response", "unresolved", "deduplicated", "other-drop",
                "undecided-fqdn", "undecided-not-modelled")
"""auditor_flows_skipped_total reasons exported from the start (an unknown one reads "other")."""
BAD_FLOW_REASONS = ("analysis", "decode", "ignored", "time")
"""auditor_bad_flows_total reasons exported from the start."""
ERROR_STAGES = ("store", "static", "flush", "retention", "inventory")
"""auditor_errors_total stages exported from the start."""
INVALID_OBJECT_KINDS = (
    "Namespace", "NetworkPolicy", "Pod",
    "CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy", "CiliumCIDRGroup",
)
"""auditor_invalid_objects_total kinds exported from the start."""

OVERFLOW = "__overflow__"
"""Label value of every label of the overflow series that sums what the cap left out."""

LabelKey = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LabelledMetric:
    """How one snapshot mapping becomes one metric family."""

    name: str
    """Full exposition name (counters end in _total)."""
    kind: Literal["counter", "gauge"]
    doc: str
    labels: tuple[str, ...]
    field: str
    """MetricsSnapshot attribute holding the mapping."""
    seed: tuple[LabelKey, ...] = ()
    """Label values always exported (at 0 until the snapshot has them)."""


def _product(*axes: list[str]) -> tuple[LabelKey, ...]:
    keys: list[LabelKey] = [()]
    for axis in axes:
        keys = [(*key, value) for key in keys for value in axis]
    return tuple(keys)


_DIRECTIONS = [d.value for d in Direction]
LABELLED_METRICS: tuple[LabelledMetric, ...] = (
    LabelledMetric(
        "auditor_flows_processed_total", "counter", "Flows analysed, by Hubble verdict and direction.",
        ("verdict", "direction"), "flows_processed", _product([v.value for v in Verdict], _DIRECTIONS),
    ),
    LabelledMetric(
        "auditor_bad_flows_total", "counter", "Flow events that could not be used, by reason.",
        ("reason",), "bad_flows", tuple((reason,) for reason in BAD_FLOW_REASONS),
    ),
    LabelledMetric(
        "auditor_flows_skipped_total", "counter",
        "Processed flows not judged against the policies, by reason (docs/metrics.md).",
        ("reason",), "flows_skipped", tuple((reason,) for reason in SKIP_REASONS),
    ),
    LabelledMetric(
        "auditor_errors_total", "counter", "Failures the daemon survived, by stage (failed flushes retried).",
        ("stage",), "errors", tuple((stage,) for stage in ERROR_STAGES),
    ),
    LabelledMetric(
        "auditor_policy_verdicts_total", "counter",
        "Side decisions attributed to their primary policy (one count per decision; docs/metrics.md).",
        ("namespace", "policy", "direction", "action", "policy_kind"), "policy_verdicts",
    ),
    LabelledMetric(
        "auditor_policy_drops_total", "counter",
        "Policy drops by workload; expected=true when auditor's model also denies the flow.",
        ("namespace", "workload", "direction", "expected"), "policy_drops",
    ),
    LabelledMetric(
        "auditor_findings_total", "counter", "New findings created.",
        ("kind", "severity", "namespace"), "findings_new",
    ),
    LabelledMetric(
        "auditor_open_findings", "gauge", "Findings currently open.",
        ("kind", "severity", "namespace"), "open_findings",
    ),
    LabelledMetric(
        "auditor_dns_denials_total", "counter", "DNS lookups dropped by policy, by client workload.",
        ("namespace", "workload"), "dns_denials",
    ),
    LabelledMetric(
        "auditor_health_check_drops_total", "counter", "Kubelet probe traffic dropped, by probe port.",
        ("namespace", "workload", "port"), "health_check_drops",
    ),
    LabelledMetric(
        "auditor_unprotected_pods", "gauge", "Pods that no NetworkPolicy selects for the direction.",
        ("namespace", "direction"), "unprotected_pods",
    ),
    LabelledMetric(
        "auditor_namespace_default_deny", "gauge", "1 when a policy isolates every pod of the namespace.",
        ("namespace", "direction"), "namespace_default_deny",
    ),
    LabelledMetric(
        "auditor_hubble_lost_events_total", "counter", "Events Hubble reported lost, by where they were lost.",
        ("source",), "lost_events", tuple((s.value,) for s in LostEventSource),
    ),
    LabelledMetric(
        "auditor_hubble_nodes", "gauge", "Hubble nodes by relay state.",
        ("state",), "hubble_nodes", tuple((s.value,) for s in NodeState),
    ),
    LabelledMetric(
        "auditor_inventory_up", "gauge", "1 when the inventory of the resource is synced.",
        ("resource",), "inventory_up",
    ),
    LabelledMetric(
        "auditor_inventory_served", "gauge",
        "1 when the API server serves the resource; 0 when it does not (Cilium's CRDs not installed).",
        ("resource",), "inventory_served",
    ),
    LabelledMetric(
        "auditor_invalid_objects_total", "counter", "Kubernetes objects rejected as invalid, by kind.",
        ("kind",), "invalid_objects", tuple((kind,) for kind in INVALID_OBJECT_KINDS),
    ),
)

SCALARS: tuple[tuple[str, Literal["counter", "gauge"], str, str], ...] = (
    ("auditor_flows_received_total", "counter", "Flows read from the source.", "flows_received"),
    ("auditor_hubble_up", "gauge", "1 while the Hubble GetFlows stream is connected.", "hubble_up"),
    ("auditor_hubble_reconnects_total", "counter", "Reconnections to Hubble.", "hubble_reconnects"),
    (
        "auditor_last_flow_timestamp_seconds", "gauge",
        "Event time of the newest flow seen (Unix seconds).", "last_flow_timestamp_seconds",
    ),
    ("auditor_queue_dropped_total", "counter", "Events dropped because the queue was full.", "queue_dropped"),
    (
        "auditor_hubble_duplicates_dropped_total", "counter",
        "Flows Hubble sent again after a reconnect, dropped as duplicates.", "hubble_duplicates_dropped",
    ),
    (
        "auditor_findings_overflow_total", "counter",
        "Flows whose findings were not kept because the finding key limit was reached.", "findings_overflow",
    ),
    (
        "auditor_inventory_unchanged_writes_total", "counter",
        "Inventory writes that changed nothing auditor reads (status updates, node heartbeats).",
        "inventory_unchanged_writes",
    ),
    (
        "auditor_inventory_last_sync_timestamp_seconds", "gauge",
        "Time of the last complete inventory sync (Unix seconds).", "inventory_last_sync_timestamp_seconds",
    ),
)

LAG_METRIC = "auditor_flow_processing_lag_seconds"


def _label_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class CardinalityCap:
    """Keeps at most `limit` series for one metric; the rest are summed into one overflow series.

    Admission is sticky: a series once exported stays exported while it exists, so counters
    do not jump between their own series and the overflow series.  New series are admitted
    in label order while there is room.  With an overflow, `limit - 1` series are kept.

    `monotonic` (counters): a series once summed into the overflow stays there, and the overflow
    keeps what its series counted after they disappear, so the overflow counter only goes up
    (Prometheus reads any decrease as a counter reset).  Gauges readmit waiting series instead.
    """

    def __init__(self, limit: int, *, monotonic: bool = False) -> None:
        self.limit = limit
        self.monotonic = monotonic
        self._admitted: dict[LabelKey, None] = {}
        self._overflowed: dict[LabelKey, float] = {}
        self._gone = 0.0
        """What overflowed series that no longer exist had counted (monotonic only)."""

    def split(self, series: Mapping[LabelKey, float]) -> tuple[list[tuple[LabelKey, float]], float | None]:
        """Return (kept series in admission order, overflow sum or None)."""
        if self.monotonic:
            return self._split_monotonic(series)
        if len(series) <= self.limit:
            kept_keys = [key for key in self._admitted if key in series]
            kept_keys += sorted(key for key in series if key not in self._admitted)
            self._admitted = dict.fromkeys(kept_keys)
            return [(key, series[key]) for key in kept_keys], None
        room = self.limit - 1
        kept_keys = [key for key in self._admitted if key in series][:room]
        if len(kept_keys) < room:
            chosen = set(kept_keys)
            kept_keys += sorted(key for key in series if key not in chosen)[: room - len(kept_keys)]
        self._admitted = dict.fromkeys(kept_keys)
        overflow = sum(value for key, value in series.items() if key not in self._admitted)
        return [(key, series[key]) for key in kept_keys], overflow

    def _split_monotonic(self, series: Mapping[LabelKey, float]
                         ) -> tuple[list[tuple[LabelKey, float]], float | None]:
        for key in [key for key in self._overflowed if key not in series]:
            self._gone += self._overflowed.pop(key)
        kept = [key for key in self._admitted if key in series]
        waiting = sorted(key for key in series if key not in self._admitted and key not in self._overflowed)
        overflowing = bool(self._overflowed) or bool(self._gone) or len(kept) + len(waiting) > self.limit
        room = max((self.limit - 1 if overflowing else self.limit) - len(kept), 0)
        kept += waiting[:room]
        if overflowing:
            for key in kept[self.limit - 1:] + waiting[room:]:
                self._overflowed[key] = 0.0
            kept = kept[: self.limit - 1]
        self._admitted = dict.fromkeys(kept)
        if not overflowing:
            return [(key, series[key]) for key in kept], None
        for key in self._overflowed:
            self._overflowed[key] = series[key]
        return [(key, series[key]) for key in kept], self._gone + sum(self._overflowed.values())


class AuditorCollector(Collector):
    """A custom collector: each collect() calls `snapshot_fn` once and builds every family fresh."""

    def __init__(
        self,
        snapshot_fn: Callable[[], MetricsSnapshot],
        *,
        max_series_per_metric: int = 2000,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if max_series_per_metric < 2:
            raise ValueError(f"max_series_per_metric must be at least 2, got {max_series_per_metric}")
        self._snapshot_fn = snapshot_fn
        self._clock = clock
        self._caps = {spec.name: CardinalityCap(max_series_per_metric, monotonic=spec.kind == "counter")
                      for spec in LABELLED_METRICS}
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            started = self._clock()
            try:
                snapshot = self._snapshot_fn()
                families = self._families(snapshot)
                success = 1.0
            except Exception:
                # A scrape must never take the process down; the failure is visible as a metric.
                get_logger("auditor.exporter").exception("metrics snapshot failed")
                families = [_build_info(__version__)]
                success = 0.0
            elapsed = self._clock() - started
        yield from families
        yield _gauge("auditor_collector_success", "1 when the last metrics snapshot succeeded.", success)
        yield _gauge("auditor_scrape_duration_seconds", "Time spent building the metrics snapshot.", elapsed)

    def _families(self, snapshot: MetricsSnapshot) -> list[Metric]:
        families: list[Metric] = [_build_info(snapshot.version)]
        for spec in LABELLED_METRICS:
            families.append(self._labelled(spec, getattr(snapshot, spec.field)))
        for name, kind, doc, field_name in SCALARS:
            value = float(getattr(snapshot, field_name))
            if kind == "counter":
                families.append(CounterMetricFamily(name, doc, value=value))
            else:
                families.append(_gauge(name, doc, value))
        families.append(_histogram(snapshot))
        return families

    def _labelled(self, spec: LabelledMetric, values: Mapping[Any, Any]) -> Metric:
        series: dict[LabelKey, float] = dict.fromkeys(spec.seed, 0.0)
        for key, value in values.items():
            # Single-label mappings are keyed by the bare value, the others by tuples.
            parts = key if isinstance(key, tuple) else (key,)
            labels = tuple(_label_value(part) for part in parts)
            if len(labels) != len(spec.labels):
                raise ValueError(f"{spec.field}: key {key!r} has {len(labels)} labels, want {spec.labels}")
            series[labels] = series.get(labels, 0.0) + float(value)
        kept, overflow = self._caps[spec.name].split(series)
        family: CounterMetricFamily | GaugeMetricFamily
        if spec.kind == "counter":
            family = CounterMetricFamily(spec.name, spec.doc, labels=spec.labels)
        else:
            family = GaugeMetricFamily(spec.name, spec.doc, labels=spec.labels)
        for labels, value in kept:
            family.add_metric(labels, value)
        if overflow is not None:
            family.add_metric([OVERFLOW] * len(spec.labels), overflow)
        return family


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _build_info(version: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily("auditor_build_info", "Always 1; the version label says which auditor runs.",
                               labels=("version",))
    family.add_metric([version], 1.0)
    return family


def _histogram(snapshot: MetricsSnapshot) -> HistogramMetricFamily:
    data = snapshot.flow_processing_lag
    buckets: list[tuple[str, float]] = [(_bound(bound), float(count)) for bound, count in data.buckets]
    buckets.append(("+Inf", float(data.count)))
    return HistogramMetricFamily(
        LAG_METRIC, "Analysis time minus flow event time.", buckets=buckets, sum_value=data.sum
    )


def _bound(bound: float) -> str:
    return repr(float(bound))


def make_registry(
    snapshot_fn: Callable[[], MetricsSnapshot], *, max_series_per_metric: int = 2000
) -> CollectorRegistry:
    """A private registry: the AuditorCollector plus prometheus_client's own process_* and python_info
    collectors, registered here and not on the global REGISTRY."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AuditorCollector(snapshot_fn, max_series_per_metric=max_series_per_metric))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry
