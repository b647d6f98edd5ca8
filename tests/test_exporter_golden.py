"""Golden /metrics exposition of a fixed snapshot, linted by the real `promtool check metrics`.

Rewrite the golden file after an intended change with: UPDATE_GOLDEN=1 pytest tests/test_exporter_golden.py
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.core import CollectorRegistry

from auditor.exporter.collector import AuditorCollector, make_registry
from auditor.exporter.http import MetricsServer
from auditor.exporter.snapshot import LagHistogram, MetricsSnapshot
from tests.promtool_runner import run_promtool

GOLDEN = Path(__file__).parent / "golden" / "metrics.txt"


def fixed_snapshot() -> MetricsSnapshot:
    """A snapshot with every field set, as the daemon would build after the shop scenario."""
    lag = LagHistogram()
    for seconds in (0.004, 0.02, 0.02, 0.3, 1.5, 45.0):
        lag.observe(seconds)
    return MetricsSnapshot(
        version="0.1.0",
        flows_processed={
            ("FORWARDED", "ingress"): 120, ("FORWARDED", "egress"): 118, ("DROPPED", "ingress"): 7,
        },
        policy_verdicts={
            ("shop", "api-from-web", "ingress", "allowed", "NetworkPolicy"): 60,
            ("shop", "default-deny", "ingress", "dropped", "NetworkPolicy"): 7,
            ("shop", "web-egress", "egress", "allowed", "NetworkPolicy"): 58,
            ("shop", "api-from-web", "ingress", "allowed", "CiliumNetworkPolicy"): 4,
            ("", "deny-world-egress", "egress", "dropped", "CiliumClusterwideNetworkPolicy"): 2,
        },
        policy_drops={("shop", "api", "ingress", True): 5, ("shop", "db", "ingress", False): 2},
        findings_new={("unexpected-drop", "high", "shop"): 1, ("dns-denied", "medium", "shop"): 1},
        open_findings={("unexpected-drop", "high", "shop"): 1, ("unprotected-pod", "info", "legacy"): 2},
        dns_denials={("shop", "worker"): 3},
        health_check_drops={("shop", "db", 5432): 4},
        unprotected_pods={("legacy", "ingress"): 2, ("legacy", "egress"): 2, ("shop", "ingress"): 0},
        namespace_default_deny={
            ("legacy", "ingress"): False, ("legacy", "egress"): False,
            ("shop", "ingress"): True, ("shop", "egress"): False,
        },
        hubble_up=True,
        hubble_reconnects=1,
        lost_events={"perf_event_ring_buffer": 12},
        hubble_nodes={"connected": 3, "unavailable": 1},
        last_flow_timestamp_seconds=1700000123.25,
        flow_processing_lag=lag.data(),
        queue_dropped=0,
        inventory_up={"namespaces": True, "pods": True, "networkpolicies": True, "ciliumnetworkpolicies": True},
        inventory_served={
            "namespaces": True, "pods": True, "networkpolicies": True, "ciliumnetworkpolicies": False,
        },
        inventory_last_sync_timestamp_seconds=1700000000.0,
        invalid_objects={"NetworkPolicy": 1},
        bad_flows={"decode": 2, "analysis": 1},
        flows_received=247,
        flows_skipped={"reply": 90, "deduplicated": 7, "other-drop": 1},
        hubble_duplicates_dropped=3,
        findings_overflow=0,
        errors={"store": 1},
    )


def render() -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AuditorCollector(fixed_snapshot, clock=lambda: 0.0))
    return generate_latest(registry).decode()


class TestGoldenExposition:
    def test_exposition_matches_golden_file(self) -> None:
        """The text exposition of the fixed snapshot is byte-for-byte the golden file."""
        text = render()
        if os.environ.get("UPDATE_GOLDEN") == "1":
            GOLDEN.write_text(text)
        assert text == GOLDEN.read_text(), "exposition changed; rerun with UPDATE_GOLDEN=1 if intended"

    def test_golden_exposition_passes_promtool_check_metrics(self) -> None:
        """promtool check metrics finds no lint problem in the exposition."""
        result = run_promtool("check", "metrics", stdin=render())
        assert result.returncode == 0, result.stdout + result.stderr
        assert (result.stdout + result.stderr).strip() == ""

    def test_real_scrape_passes_promtool_check_metrics(self) -> None:
        """A scrape of the running HTTP server passes promtool check metrics."""
        server = MetricsServer("127.0.0.1:0", registry=make_registry(fixed_snapshot))
        server.start()
        try:
            with urllib.request.urlopen(server.url + "/metrics", timeout=5) as response:
                body = response.read().decode()
        finally:
            server.stop()
        result = run_promtool("check", "metrics", stdin=body)
        assert result.returncode == 0, result.stdout + result.stderr
