"""End to end: `auditor replay-server` -> `auditor run` -> a real Prometheus with the shipped alert rules.

Every process is real: the replay server and the daemon are `python -m auditor` subprocesses talking
gRPC on loopback, Prometheus is Debian's binary scraping the daemon every second.

Rewrites, so that the scenario fits a test of a few seconds:
- rule file: a copy of deploy/prometheus/rules.yaml with every `for:` set to `0s` (an alert fires at
  the first evaluation where its expression holds).  Range windows are unchanged: the counter rules'
  `x unless x offset w` part already covers series newer than the window.
- dashboard: Grafana variables as in tests/test_dashboard.py (`$namespace` = `.*`, i.e. All,
  `$__rate_interval` = 5m, `$__interval` = 1m, `$__range` = 1h); the panels filtered by namespace
  are queried once more with one real namespace selected.
- flows: the demo capture plus one extra flow (legacy/batch -> shop/db on 5432, FORWARDED although
  the policies in force deny it), so that the unexpected-allow panel and alert have something.
The replay server paces the flows (--rate) and loops over them (--loop), so that counters keep growing
across scrapes however long Prometheus takes to start (rate() needs two samples that differ).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.daemon_support import (
    DEMO_FLOW_COUNT,
    DEMO_FLOWS,
    DEMO_MANIFESTS,
    DaemonProcess,
    daemon_process,
    http_get,
    replay_process,
    total,
    wait_until,
)
from tests.promtool_runner import prometheus_server
from tests.test_dashboard import GRAFANA_VARIABLES, RULES, dashboard, expressions, panels
from tests.test_dashboard_prometheus import api, wait_for_samples

pytestmark = pytest.mark.slow

REPLAY_RATE = "200"
SHOULD_FIRE: dict[str, set[tuple[tuple[str, str], ...]]] = {
    "AuditorDNSDenied": {(("namespace", "shop"), ("workload", "api")),
                         (("namespace", "shop"), ("workload", "frontend"))},
    # Only the kubelet's probe from the node: frontend -> api:8080 and batch -> db:5432 share a probe's port
    # but are application traffic (ordinary policy findings).
    "AuditorHealthChecksBlocked": {(("namespace", "shop"), ("port", "9090"), ("workload", "api"))},
    "AuditorUnexpectedPolicyDrops": {(("direction", "ingress"), ("namespace", "shop"), ("workload", "api"))},
    "AuditorUnexpectedAllow": {(("namespace", "shop"),)},
    "AuditorPodsWithoutPolicy": {(("direction", direction), ("namespace", namespace))
                                 for direction in ("egress", "ingress")
                                 for namespace in ("kube-system", "legacy")},
    "AuditorLagging": {()},
}
"""Alert -> the identifying labels of every instance that must fire for the replayed scenario.

AuditorLagging fires because the capture is from 2026-11-20: every flow is analysed long after it happened."""
MUST_STAY_SILENT = {"AuditorHubbleStreamDown", "AuditorHubbleLostEvents", "AuditorQueueOverflow",
                    "AuditorInventoryDown"}
IDENTITY = ("namespace", "workload", "direction", "port")
POSTURE_PANELS = {"Unprotected pods", "Namespaces without default deny"}
"""Panels whose data is about namespaces *without* protection: legacy has it, shop does not."""


def expressions_for_one_namespace() -> list[tuple[str, str]]:
    """Panels filtered by $namespace, with one real namespace selected: legacy for posture panels, else shop."""
    result = []
    for panel in panels():
        namespace = "legacy" if panel["title"] in POSTURE_PANELS else "shop"
        for target in panel["targets"]:
            if "$namespace" not in target["expr"]:
                continue
            expr = target["expr"]
            for variable, value in {**GRAFANA_VARIABLES, "$namespace": namespace}.items():
                expr = expr.replace(variable, value)
            result.append((f"{panel['title']} {target['refId']} ({namespace})", expr))
    return result


def unexpected_allow_flow() -> str:
    """The demo's legacy/batch -> shop/db drop, turned into a forwarded flow ten minutes later."""
    for line in DEMO_FLOWS.read_text().splitlines():
        record = json.loads(line)
        flow = record["flow"]
        if flow["verdict"] == "DROPPED" and flow["source"].get("pod_name", "").startswith("batch-"):
            break
    else:
        raise AssertionError("demo flows lost their legacy/batch -> shop/db drop")
    flow.update(verdict="FORWARDED", uuid="00000000-0000-4000-8000-0000000000aa",
                time="2026-11-20T10:10:00.000000000Z")
    flow.pop("drop_reason", None)
    flow.pop("drop_reason_desc", None)
    record["time"] = flow["time"]
    return json.dumps(record) + "\n"


def rules_for_test(target: Path) -> Path:
    """deploy/prometheus/rules.yaml with every `for:` rewritten to 0s (see the module docstring)."""
    text, count = re.subn(r"(?m)^(\s+for:\s*)\S+\s*$", r"\g<1>0s", RULES.read_text())
    assert count >= len(SHOULD_FIRE) + len(MUST_STAY_SILENT), "the rewrite missed the `for:` lines"
    target.write_text(text)
    return target


@dataclass(frozen=True)
class Stack:
    prometheus: str
    daemon: DaemonProcess


def all_analysed(base: str) -> bool:
    status, text = http_get(base + "/metrics")
    return status == 200 and total(text, "auditor_flows_processed_total") > DEMO_FLOW_COUNT


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("e2e")
    extra = workdir / "unexpected-allow.jsonl"
    extra.write_text(unexpected_allow_flow())
    rules = rules_for_test(workdir / "rules.yaml")
    with replay_process("--flows", str(DEMO_FLOWS), str(extra), "--rate", REPLAY_RATE, "--loop") as address:
        flags = ("--manifests", str(DEMO_MANIFESTS), "--hubble-server", address, "--store", "sqlite:auditor.db",
                 "--flush-interval", "1s", "--log-format", "json")
        with daemon_process(workdir, *flags) as daemon:
            host = daemon.base.removeprefix("http://")
            config = (
                "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                f"rule_files: ['{rules}']\n"
                "scrape_configs:\n"
                f"  - job_name: auditor\n    static_configs: [{{targets: ['{host}']}}]\n"
            )
            with prometheus_server(workdir / "prometheus", config) as prometheus:
                wait_until(lambda: all_analysed(daemon.base), 45, "every replayed flow analysed")
                wait_for_samples(prometheus, time.monotonic() + 45)
                yield Stack(prometheus, daemon)
            code, _seconds = daemon.terminate()
            assert code == 0


def firing(prometheus: str) -> dict[str, set[tuple[tuple[str, str], ...]]]:
    """Alert name -> identifying labels of its firing instances, from /api/v1/alerts."""
    alerts = api(prometheus, "/api/v1/alerts")["data"]["alerts"]  # type: ignore[index]
    result: dict[str, set[tuple[tuple[str, str], ...]]] = {}
    for alert in alerts:
        if alert["state"] == "firing":
            labels = alert["labels"]
            identity = tuple(sorted((key, labels[key]) for key in IDENTITY if key in labels))
            result.setdefault(labels["alertname"], set()).add(identity)
    return result


def fired(prometheus: str) -> dict[str, set[tuple[tuple[str, str], ...]]]:
    """Wait until every expected alert instance fires (or time out), then return what fires."""
    def complete() -> bool:
        now = firing(prometheus)
        return all(instances <= now.get(name, set()) for name, instances in SHOULD_FIRE.items())
    with contextlib.suppress(AssertionError):  # the per-alert assertions say which one is missing
        wait_until(complete, 30, "the scenario's alerts to fire", interval=0.5)
    return firing(prometheus)


@pytest.fixture(scope="module")
def alerts(stack: Stack) -> dict[str, set[tuple[tuple[str, str], ...]]]:
    return fired(stack.prometheus)


class TestDashboardOnLiveDaemon:
    @pytest.mark.parametrize(("where", "expr"), expressions(), ids=[where for where, _ in expressions()])
    def test_panel_query_returns_data(self, stack: Stack, where: str, expr: str) -> None:
        """The panel's PromQL returns at least one series from the daemon Prometheus scraped."""
        result = api(stack.prometheus, "/api/v1/query", query=expr)
        assert result["status"] == "success", (where, result)
        assert result["data"]["result"], f"{where}: no data for {expr}"  # type: ignore[index]


    @pytest.mark.parametrize(("where", "expr"), expressions_for_one_namespace(),
                             ids=[where for where, _ in expressions_for_one_namespace()])
    def test_panel_query_for_one_namespace(self, stack: Stack, where: str, expr: str) -> None:
        """With one namespace selected instead of All, the panel still returns data for it."""
        result = api(stack.prometheus, "/api/v1/query", query=expr)
        assert result["data"]["result"], f"{where}: no data for {expr}"  # type: ignore[index]

    def test_namespace_variable_lists_the_namespaces(self, stack: Stack) -> None:
        """The dashboard's namespace variable query finds every namespace of the demo cluster."""
        variable = {v["name"]: v for v in dashboard()["templating"]["list"]}["namespace"]
        metric = variable["definition"].removeprefix("label_values(").split(",")[0]
        values = api(stack.prometheus, "/api/v1/label/namespace/values", **{"match[]": metric})["data"]
        assert set(values) >= {"shop", "legacy", "kube-system"}  # type: ignore[call-overload]


class TestAlertsOnLiveDaemon:
    @pytest.mark.parametrize("name", sorted(SHOULD_FIRE))
    def test_alert_fires_for_scenario(self, alerts: dict[str, set[tuple[tuple[str, str], ...]]],
                                      name: str) -> None:
        """The alert fires for every namespace/workload the demo scenario breaks."""
        assert SHOULD_FIRE[name] <= alerts.get(name, set()), alerts.get(name)

    @pytest.mark.parametrize("name", sorted(MUST_STAY_SILENT))
    def test_health_alert_stays_silent(self, alerts: dict[str, set[tuple[tuple[str, str], ...]]],
                                       name: str) -> None:
        """A healthy daemon (stream up, nothing lost, queue keeping up, inventory synced) raises no alert."""
        assert name not in alerts

    def test_alert_series_in_prometheus(self, stack: Stack,
                                        alerts: dict[str, set[tuple[tuple[str, str], ...]]]) -> None:
        """The firing alerts are also queryable as ALERTS series."""
        result = api(stack.prometheus, "/api/v1/query", query='ALERTS{alertstate="firing"}')
        names = {series["metric"]["alertname"] for series in result["data"]["result"]}  # type: ignore[index]
        assert set(SHOULD_FIRE) <= names
