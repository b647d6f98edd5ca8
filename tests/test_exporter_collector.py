"""AuditorCollector: metric families built fresh from a MetricsSnapshot at each scrape."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from auditor.exporter.collector import OVERFLOW, AuditorCollector, CardinalityCap, make_registry
from auditor.exporter.snapshot import (
    LAG_BUCKETS,
    LagHistogram,
    MetricsSnapshot,
    PolicyAttribution,
    policy_attribution,
    primary_policy,
)
from auditor.model.decision import CCNP_KIND, CNP_KIND, Enforcement, PolicyId, RuleMatch, SideDecision

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(snapshot_fn: object, **kwargs: int) -> Samples:
    """Render the registry as text and parse it back: {(sample name, sorted labels): value}."""
    registry = make_registry(snapshot_fn, **kwargs)  # type: ignore[arg-type]
    return parse(generate_latest(registry).decode())


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def series(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: value for (sample, labels), value in samples.items() if sample == name}


class TestMetricValues:
    def test_policy_drops_are_labelled_with_expected(self) -> None:
        """A policy drop key becomes one series with expected="true"/"false"."""
        snapshot = MetricsSnapshot(policy_drops={("shop", "api", "ingress", False): 3})
        samples = scrape(lambda: snapshot)
        labels = (("direction", "ingress"), ("expected", "false"), ("namespace", "shop"), ("workload", "api"))
        assert samples[("auditor_policy_drops_total", labels)] == 3

    def test_policy_verdicts_carry_the_policy_kind(self) -> None:
        """A NetworkPolicy and a CiliumNetworkPolicy of one namespace and name are two series."""
        snapshot = MetricsSnapshot(policy_verdicts={
            ("shop", "api", "ingress", "allowed", "NetworkPolicy"): 3,
            ("shop", "api", "ingress", "allowed", "CiliumNetworkPolicy"): 2,
        })
        found = series(scrape(lambda: snapshot), "auditor_policy_verdicts_total")
        base = (("action", "allowed"), ("direction", "ingress"), ("namespace", "shop"), ("policy", "api"))
        assert found == {(*base, ("policy_kind", "NetworkPolicy")): 3,
                         (*base, ("policy_kind", "CiliumNetworkPolicy")): 2}

    def test_policy_verdicts_overflow_sets_policy_kind_too(self) -> None:
        """Past the cap the overflow series has policy_kind="__overflow__" like its other labels."""
        snapshot = MetricsSnapshot(policy_verdicts={
            ("", f"ccnp-{i}", "egress", "dropped", "CiliumClusterwideNetworkPolicy"): 1 for i in range(5)})
        found = series(scrape(lambda: snapshot, max_series_per_metric=3), "auditor_policy_verdicts_total")
        labels = ("action", "direction", "namespace", "policy", "policy_kind")
        overflow = tuple((label, OVERFLOW) for label in labels)
        assert (len(found), found[overflow]) == (3, 3)

    def test_health_check_port_is_a_label(self) -> None:
        """The probe port becomes the port label."""
        snapshot = MetricsSnapshot(health_check_drops={("shop", "api", 8080): 2})
        found = series(scrape(lambda: snapshot), "auditor_health_check_drops_total")
        assert found == {(("namespace", "shop"), ("port", "8080"), ("workload", "api")): 2}

    def test_default_deny_is_zero_or_one(self) -> None:
        """Namespace default deny is exported as 1 for True and 0 for False."""
        snapshot = MetricsSnapshot(namespace_default_deny={("a", "ingress"): True, ("b", "ingress"): False})
        found = series(scrape(lambda: snapshot), "auditor_namespace_default_deny")
        assert found == {
            (("direction", "ingress"), ("namespace", "a")): 1.0,
            (("direction", "ingress"), ("namespace", "b")): 0.0,
        }

    def test_scalars_are_exported(self) -> None:
        """hubble_up, reconnects, last flow time and queue drops come from their fields."""
        snapshot = MetricsSnapshot(
            hubble_up=True, hubble_reconnects=4, last_flow_timestamp_seconds=1700000000.5, queue_dropped=9
        )
        samples = scrape(lambda: snapshot)
        assert samples[("auditor_hubble_up", ())] == 1
        assert samples[("auditor_hubble_reconnects_total", ())] == 4
        assert samples[("auditor_last_flow_timestamp_seconds", ())] == 1700000000.5
        assert samples[("auditor_queue_dropped_total", ())] == 9

    def test_build_info_carries_the_version(self) -> None:
        """auditor_build_info is 1 with the snapshot's version label."""
        samples = scrape(lambda: MetricsSnapshot(version="1.2.3"))
        assert samples[("auditor_build_info", (("version", "1.2.3"),))] == 1

    def test_lag_histogram_is_exported_cumulatively(self) -> None:
        """Observed lags appear in cumulative buckets with sum and count."""
        histogram = LagHistogram()
        for lag in (0.02, 0.3, 400.0):
            histogram.observe(lag)
        samples = scrape(lambda: MetricsSnapshot(flow_processing_lag=histogram.data()))
        assert samples[("auditor_flow_processing_lag_seconds_bucket", (("le", "0.05"),))] == 1
        assert samples[("auditor_flow_processing_lag_seconds_bucket", (("le", "300.0"),))] == 2
        assert samples[("auditor_flow_processing_lag_seconds_bucket", (("le", "+Inf"),))] == 3
        assert samples[("auditor_flow_processing_lag_seconds_count", ())] == 3
        assert samples[("auditor_flow_processing_lag_seconds_sum", ())] == pytest.approx(400.32)

    def test_wrong_key_length_fails_the_scrape_not_the_process(self) -> None:
        """A malformed snapshot key makes auditor_collector_success 0 instead of raising."""
        snapshot = MetricsSnapshot(dns_denials={("shop",): 1})  # type: ignore[dict-item]
        samples = scrape(lambda: snapshot)
        assert samples[("auditor_collector_success", ())] == 0
        assert samples[("auditor_build_info", (("version", MetricsSnapshot().version),))] == 1

    def test_successful_scrape_reports_success_and_duration(self) -> None:
        """A good snapshot gives auditor_collector_success 1 and a scrape duration."""
        samples = scrape(MetricsSnapshot)
        assert samples[("auditor_collector_success", ())] == 1
        assert samples[("auditor_scrape_duration_seconds", ())] >= 0


class TestKnownSeries:
    def test_flow_verdicts_start_at_zero(self) -> None:
        """Every verdict x direction series exists at 0 before any flow."""
        found = series(scrape(MetricsSnapshot), "auditor_flows_processed_total")
        assert found[(("direction", "ingress"), ("verdict", "DROPPED"))] == 0
        assert len(found) == 8 * 3

    def test_lost_event_sources_start_at_zero(self) -> None:
        """Every lost-event source is exported at 0 so increase() sees the first loss."""
        found = series(scrape(MetricsSnapshot), "auditor_hubble_lost_events_total")
        assert {labels[0][1] for labels in found} == {
            "unknown", "perf_event_ring_buffer", "observer_events_queue", "hubble_ring_buffer",
        }
        assert set(found.values()) == {0}

    def test_invalid_object_kinds_start_at_zero(self) -> None:
        """Invalid objects of every inventory kind, Cilium's included, are exported at 0 before any."""
        found = series(scrape(MetricsSnapshot), "auditor_invalid_objects_total")
        assert {labels[0][1] for labels in found} == {
            "Namespace", "NetworkPolicy", "Pod",
            "CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy", "CiliumCIDRGroup",
        }
        assert set(found.values()) == {0}

    def test_unserved_resource_exported_as_zero(self) -> None:
        """auditor_inventory_served is 1 per served resource and 0 for one the API server does not serve."""
        snapshot = MetricsSnapshot(inventory_served={"pods": True, "ciliumnetworkpolicies": False})
        found = series(scrape(lambda: snapshot), "auditor_inventory_served")
        assert found == {(("resource", "ciliumnetworkpolicies"),): 0, (("resource", "pods"),): 1}

    def test_seeded_series_take_snapshot_values(self) -> None:
        """A seeded series shows the snapshot's count when there is one."""
        snapshot = MetricsSnapshot(hubble_nodes={"connected": 3})
        found = series(scrape(lambda: snapshot), "auditor_hubble_nodes")
        assert found[(("state", "connected"),)] == 3
        assert found[(("state", "unavailable"),)] == 0


class TestSeriesLifecycle:
    def test_deleted_namespace_series_disappear(self) -> None:
        """A namespace missing from the next snapshot has no series in the next scrape."""
        snapshots = iter([
            MetricsSnapshot(unprotected_pods={("old", "ingress"): 2, ("shop", "ingress"): 1}),
            MetricsSnapshot(unprotected_pods={("shop", "ingress"): 1}),
        ])
        registry = make_registry(lambda: next(snapshots))
        generate_latest(registry)
        found = series(parse(generate_latest(registry).decode()), "auditor_unprotected_pods")
        assert found == {(("direction", "ingress"), ("namespace", "shop")): 1}

    def test_make_registry_does_not_touch_the_global_registry(self) -> None:
        """Building a registry registers nothing in prometheus_client's global REGISTRY."""
        calls: list[int] = []
        make_registry(lambda: calls.append(1) or MetricsSnapshot())  # type: ignore[func-returns-value]
        assert "auditor_build_info" not in generate_latest(REGISTRY).decode()
        assert calls == []

    def test_concurrent_scrapes_are_consistent(self) -> None:
        """Parallel scrapes all return the full output."""
        snapshot = MetricsSnapshot(dns_denials={(f"ns{i}", "web"): i for i in range(50)})
        registry = make_registry(lambda: snapshot, max_series_per_metric=20)
        outputs: list[str] = []
        threads = [threading.Thread(target=lambda: outputs.append(generate_latest(registry).decode()))
                   for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(outputs) == 8
        assert all(len(series(parse(o), "auditor_dns_denials_total")) == 20 for o in outputs)


class TestCardinalityCap:
    def test_cap_keeps_limit_series_including_overflow(self) -> None:
        """With more series than the cap, limit-1 are kept and one overflow series sums the rest."""
        snapshot = MetricsSnapshot(dns_denials={(f"ns{i:02d}", "web"): 1 for i in range(30)})
        found = series(scrape(lambda: snapshot, max_series_per_metric=10), "auditor_dns_denials_total")
        assert len(found) == 10
        assert found[(("namespace", OVERFLOW), ("workload", OVERFLOW))] == 21
        assert sum(found.values()) == 30

    def test_under_the_cap_nothing_overflows(self) -> None:
        """At exactly the cap every series is kept and there is no overflow series."""
        snapshot = MetricsSnapshot(dns_denials={(f"ns{i}", "web"): 1 for i in range(10)})
        found = series(scrape(lambda: snapshot, max_series_per_metric=10), "auditor_dns_denials_total")
        assert len(found) == 10
        assert not any(dict(labels)["namespace"] == OVERFLOW for labels in found)

    def test_admitted_series_stay_when_new_ones_arrive(self) -> None:
        """Series exported once keep their own series when new keys push the metric over the cap."""
        cap = CardinalityCap(3)
        cap.split({("z",): 1.0, ("y",): 1.0})
        kept, overflow = cap.split({("a",): 5.0, ("b",): 5.0, ("y",): 2.0, ("z",): 2.0})
        assert sorted(key for key, _ in kept) == [("y",), ("z",)]
        assert overflow == 10.0

    def test_freed_slots_admit_waiting_series(self) -> None:
        """When an admitted series disappears, a series from the overflow takes its place."""
        cap = CardinalityCap(3)
        cap.split({("a",): 1.0, ("b",): 1.0, ("c",): 1.0, ("d",): 1.0})
        kept, overflow = cap.split({("b",): 1.0, ("c",): 1.0, ("d",): 1.0})
        assert sorted(key for key, _ in kept) == [("b",), ("c",), ("d",)]
        assert overflow is None

    def test_counter_overflow_never_goes_down_when_a_slot_frees(self) -> None:
        """A counter's overflow keeps its series when a slot frees, and what deleted ones had counted."""
        cap = CardinalityCap(3, monotonic=True)
        _, before = cap.split({("a",): 1.0, ("b",): 1.0, ("c",): 4.0, ("d",): 5.0})
        kept, after = cap.split({("b",): 1.0, ("c",): 4.0, ("d",): 5.0})
        _, later = cap.split({("b",): 1.0})
        assert (before, after, later) == (9.0, 9.0, 9.0)
        assert sorted(key for key, _ in kept) == [("b",)]

    def test_cap_below_two_is_rejected(self) -> None:
        """A cap too small to hold one series plus the overflow is a configuration error."""
        with pytest.raises(ValueError, match="at least 2"):
            AuditorCollector(MetricsSnapshot, max_series_per_metric=1)


class TestLagHistogram:
    def test_negative_lag_is_clamped_to_zero(self) -> None:
        """Clock skew (flow time in the future) counts in the first bucket with value 0."""
        histogram = LagHistogram()
        histogram.observe(-3.0)
        data = histogram.data()
        assert data.buckets[0] == (LAG_BUCKETS[0], 1)
        assert data.sum == 0

    def test_bounds_must_increase(self) -> None:
        """Unsorted bucket bounds are rejected."""
        with pytest.raises(ValueError, match="strictly increasing"):
            LagHistogram((1.0, 0.5))

    def test_concurrent_observations_are_all_counted(self) -> None:
        """Observations from several threads are all counted."""
        histogram = LagHistogram()
        threads = [threading.Thread(target=lambda: [histogram.observe(0.2) for _ in range(1000)])
                   for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert histogram.data().count == 4000


class TestPolicyAttribution:
    def test_drop_goes_to_first_isolating_policy(self) -> None:
        """A drop isolated by several policies is attributed to the smallest namespace/name only."""
        side = SideDecision(
            allowed=False, isolated=True,
            isolated_by=(PolicyId("shop", "zz-deny"), PolicyId("shop", "default-deny", "7")),
        )
        attribution = policy_attribution(side)
        assert attribution is not None
        assert attribution == PolicyAttribution(namespace="shop", policy="default-deny", action="dropped")

    def test_allow_goes_to_first_admitting_policy(self) -> None:
        """An allow admitted by several rules is attributed to the first policy among them."""
        side = SideDecision(
            allowed=True, isolated=True,
            allowed_by=(RuleMatch(PolicyId("shop", "web"), 0), RuleMatch(PolicyId("shop", "api"), 1)),
        )
        attribution = policy_attribution(side)
        assert attribution is not None
        assert (attribution.policy, attribution.action) == ("api", "allowed")

    def test_unisolated_side_is_not_attributed(self) -> None:
        """A side no policy selects has no policy verdict."""
        assert policy_attribution(SideDecision(allowed=True, isolated=False)) is None

    def test_attribution_names_the_policy_kind(self) -> None:
        """The attribution of a CiliumNetworkPolicy's allow carries its kind."""
        match = RuleMatch(PolicyId("shop", "web", kind=CNP_KIND), 0, section="ingress")
        side = SideDecision(allowed=True, isolated=True, allowed_by=(match,))
        attribution = policy_attribution(side)
        assert attribution == PolicyAttribution("shop", "web", "allowed", policy_kind=CNP_KIND)

    def test_deny_rule_wins_over_isolating_policies(self) -> None:
        """A drop by a Cilium deny rule goes to the deny rule's policy, not to an isolating one."""
        side = SideDecision(
            allowed=False, isolated=True, isolated_by=(PolicyId("a", "default-deny"),),
            denied_by=(RuleMatch(PolicyId("", "block", kind=CCNP_KIND), 0, section="ingressDeny"),),
        )
        assert policy_attribution(side) == PolicyAttribution("", "block", "dropped", policy_kind=CCNP_KIND)

    def test_unenforced_side_is_not_attributed(self) -> None:
        """With policy enforcement off (never) no policy decided the side."""
        side = SideDecision(allowed=True, isolated=True, enforcement=Enforcement.NOT_ENFORCED,
                            allowed_by=(RuleMatch(PolicyId("shop", "web"), 0),))
        assert policy_attribution(side) is None

    def test_primary_policy_of_nothing_is_none(self) -> None:
        """No policies, no primary policy."""
        assert primary_policy(()) is None
