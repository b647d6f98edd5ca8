"""process_* and python_info on auditor's own registry: prometheus_client's collectors, not the global one."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import REGISTRY, generate_latest

from auditor.exporter.collector import make_registry
from tests.promtool_runner import run_promtool
from tests.test_exporter_golden import fixed_snapshot

ROOT = Path(__file__).resolve().parent.parent


def _scrape() -> str:
    return generate_latest(make_registry(fixed_snapshot)).decode()


class TestProcessMetrics:
    def test_registry_exports_process_metrics_of_this_process(self) -> None:
        """process_start_time_seconds, memory, fds and CPU describe the current process."""
        samples = {line.split(" ")[0]: float(line.split(" ")[1]) for line in _scrape().splitlines()
                   if line.startswith("process_")}
        assert 3 <= samples["process_open_fds"] <= samples["process_max_fds"]
        assert samples["process_resident_memory_bytes"] > 0
        assert samples["process_start_time_seconds"] > 1.6e9
        assert "process_cpu_seconds_total" in samples

    def test_registry_exports_python_info(self) -> None:
        """The platform collector's python_info names the running interpreter."""
        assert 'python_info{implementation="CPython"' in _scrape()

    def test_process_collectors_are_not_on_the_global_registry_twice(self) -> None:
        """Two registries do not collide: each owns its collectors (nothing is added to REGISTRY)."""
        before = set(REGISTRY._names_to_collectors)
        make_registry(fixed_snapshot)
        make_registry(fixed_snapshot)
        assert set(REGISTRY._names_to_collectors) == before

    def test_scrape_with_process_metrics_passes_promtool(self) -> None:
        """promtool check metrics finds nothing to lint in an exposition with process_* and python_info."""
        result = run_promtool("check", "metrics", stdin=_scrape())
        assert result.returncode == 0, result.stdout + result.stderr
        assert (result.stdout + result.stderr).strip() == ""


class TestMetricsDoc:
    def test_every_inventory_resource_of_the_daemon_is_documented(self) -> None:
        """Each resource of the daemon's auditor_inventory_up (golden scrape) is named in docs/metrics.md."""
        golden = (ROOT / "tests" / "golden" / "daemon_metrics.txt").read_text()
        resources = set(re.findall(r'^auditor_inventory_up\{resource="([a-z]+)"\}', golden, re.MULTILINE))
        row = next(line for line in (ROOT / "docs" / "metrics.md").read_text().splitlines()
                   if line.startswith("| `auditor_inventory_up`"))
        assert "nodes" in resources
        assert {r for r in resources if f"`{r}`" not in row} == set()

    def test_process_metrics_are_documented(self) -> None:
        """docs/metrics.md has a row for each process_* metric and python_info."""
        doc = (ROOT / "docs" / "metrics.md").read_text()
        for name in re.findall(r"^(process_\w+|python_info)\{?", _scrape(), re.MULTILINE):
            assert f"| `{name}` |" in doc, name
