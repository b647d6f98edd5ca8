"""Every dashboard query returns data from a real Prometheus server scraping a real MetricsServer."""

from __future__ import annotations

import dataclasses
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from auditor.exporter.collector import make_registry
from auditor.exporter.http import MetricsServer
from auditor.exporter.snapshot import MetricsSnapshot
from tests.promtool_runner import prometheus_server
from tests.test_dashboard import expressions
from tests.test_exporter_golden import fixed_snapshot

pytestmark = pytest.mark.slow


def scenario_snapshot() -> MetricsSnapshot:
    """The golden snapshot plus an open unexpected-allow finding, so that every panel has something."""
    base = fixed_snapshot()
    return dataclasses.replace(
        base, open_findings={**base.open_findings, ("unexpected-allow", "high", "shop"): 1}
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def api(base: str, path: str, **params: str) -> dict[str, object]:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}" if params else base + path
    with urllib.request.urlopen(url, timeout=10) as response:
        loaded: dict[str, object] = json.loads(response.read())
        return loaded


def wait_for_samples(base: str, deadline: float) -> None:
    """Wait until Prometheus has scraped the target at least three times (rate() needs two)."""
    while time.monotonic() < deadline:
        try:
            result = api(base, "/api/v1/query", query="count_over_time(auditor_build_info[1m])")
            data = result["data"]["result"]  # type: ignore[index]
            if data and float(data[0]["value"][1]) >= 3:
                return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.5)
    raise AssertionError("Prometheus did not scrape the metrics server in time")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    snapshot = scenario_snapshot()
    server = MetricsServer("127.0.0.1:0", registry=make_registry(lambda: snapshot))
    server.start()
    config = (
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: auditor\n    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n"
    )
    try:
        with prometheus_server(tmp_path_factory.mktemp("prometheus"), config) as base:
            wait_for_samples(base, time.monotonic() + 60)
            yield base
    finally:
        server.stop()


class TestDashboardAgainstPrometheus:
    @pytest.mark.parametrize(("where", "expr"), expressions(), ids=[where for where, _ in expressions()])
    def test_query_returns_data(self, prometheus: str, where: str, expr: str) -> None:
        """The panel query returns at least one series from the scraped auditor metrics."""
        result = api(prometheus, "/api/v1/query", query=expr)
        assert result["status"] == "success", (where, result)
        assert result["data"]["result"], f"{where}: no data for {expr}"  # type: ignore[index]
