"""Golden /metrics of the daemon after the demo flows were replayed through it, and `promtool check metrics`.

The comparison uses a normalized copy of the real scrape (`normalize`); `promtool` checks the raw one.
`UPDATE_GOLDEN=1 pytest tests/test_daemon_golden.py` rewrites tests/golden/daemon_metrics.txt.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from tests.daemon_support import (
    DEMO_FLOW_COUNT,
    DEMO_FLOWS,
    DEMO_MANIFESTS,
    build,
    daemon_base,
    running,
    settled_metrics,
)
from tests.promtool_runner import run_promtool

GOLDEN = Path(__file__).parent / "golden" / "daemon_metrics.txt"

NOT_DETERMINISTIC = re.compile(
    r"^(auditor_flow_processing_lag_seconds_(bucket|sum|count)"  # wall clock minus flow time
    r"|auditor_scrape_duration_seconds"  # how long this scrape took
    r"|auditor_inventory_last_sync_timestamp_seconds"  # when the manifests were read
    r")[ {]"
)
"""Samples left out of the golden comparison.  Their HELP/TYPE lines stay, so the metric set is still
checked; auditor_last_flow_timestamp_seconds stays too: it is the newest flow's own time."""
VERSION = re.compile(r'^(auditor_build_info\{version=)"[^"]*"')
PROCESS = re.compile(r"^(process_\w+) \S+$")
"""prometheus_client's process collector: the sample stays, its value (memory, CPU, fds, start) is replaced."""
PYTHON = re.compile(r'^python_info\{.*\} 1\.0$')


def normalize(text: str) -> str:
    """Drop NOT_DETERMINISTIC samples, replace the version label, sort samples within each metric."""
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("# HELP") or not blocks:
            blocks.append([])
        if NOT_DETERMINISTIC.match(line):
            continue
        line = PROCESS.sub(r"\1 VALUE", VERSION.sub(r'\1"VERSION"', line))
        blocks[-1].append(PYTHON.sub('python_info{implementation="IMPL",version="VERSION"} 1.0', line))
    lines = []
    for block in blocks:
        comments = [line for line in block if line.startswith("#")]
        lines += comments + sorted(line for line in block if not line.startswith("#"))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def scrape(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The raw /metrics text of a daemon that replayed the demo flows and flushed."""
    workdir = tmp_path_factory.mktemp("golden")
    daemon = build(workdir, ["--manifests", str(DEMO_MANIFESTS), "--flows", str(DEMO_FLOWS),
                             "--flush-interval", "1s"])
    with running(daemon):
        return settled_metrics(daemon_base(daemon), DEMO_FLOW_COUNT)


class TestDaemonGolden:
    def test_exposition_matches_golden(self, scrape: str) -> None:
        """The normalized scrape equals tests/golden/daemon_metrics.txt (UPDATE_GOLDEN=1 rewrites it)."""
        normalized = normalize(scrape)
        if os.environ.get("UPDATE_GOLDEN") == "1":
            GOLDEN.write_text(normalized)
        assert normalized == GOLDEN.read_text()

    def test_filter_drops_only_listed_samples(self, scrape: str) -> None:
        """Normalizing removes the lag histogram, scrape duration and last sync samples and nothing else."""
        kept = {line.split("{")[0].split(" ")[0] for line in normalize(scrape).splitlines() if line[0] != "#"}
        raw = {line.split("{")[0].split(" ")[0] for line in scrape.splitlines() if line[0] != "#"}
        assert raw - kept == {
            "auditor_flow_processing_lag_seconds_bucket", "auditor_flow_processing_lag_seconds_sum",
            "auditor_flow_processing_lag_seconds_count", "auditor_scrape_duration_seconds",
            "auditor_inventory_last_sync_timestamp_seconds",
        }

    def test_process_metrics_describe_this_process(self, scrape: str) -> None:
        """prometheus_client's process_* are present with plausible values (the daemon's own process)."""
        samples = re.finditer(r"^(process_\w+) (\S+)$", scrape, re.MULTILINE)
        values = {m.group(1): float(m.group(2)) for m in samples}
        assert set(values) >= {"process_start_time_seconds", "process_resident_memory_bytes",
                               "process_open_fds", "process_cpu_seconds_total", "process_max_fds",
                               "process_virtual_memory_bytes"}
        assert time.time() - 600 < values["process_start_time_seconds"] <= time.time()
        assert values["process_resident_memory_bytes"] > 1e6
        assert 3 <= values["process_open_fds"] <= values["process_max_fds"]
        assert values["process_cpu_seconds_total"] > 0
        assert re.search(r'^python_info\{implementation="CPython",.*version="3\.\d+\.\d+"\} 1\.0$', scrape,
                         re.MULTILINE)

    def test_promtool_check_metrics_passes(self, scrape: str) -> None:
        """`promtool check metrics` accepts the raw scrape (no lint problems)."""
        result = run_promtool("check", "metrics", stdin=scrape)
        assert result.returncode == 0, result.stdout + result.stderr
        assert not result.stdout.strip(), result.stdout
