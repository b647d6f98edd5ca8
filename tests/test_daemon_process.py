"""`auditor run` as a real subprocess: SIGTERM drains and flushes the store; one log line per new finding."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from auditor.hubble.replay_server import ReplayServer
from auditor.model.findings import Finding
from auditor.store import open_store
from tests.daemon_support import (
    DEMO_FLOW_COUNT,
    DEMO_FLOWS,
    DEMO_MANIFESTS,
    daemon_process,
    http_get,
    settled_metrics,
    total,
    wait_until,
)

pytestmark = pytest.mark.slow

EXPECTED_KINDS = {
    "dns-denied", "policy-drop", "unexpected-drop", "health-check-blocked", "missing-dns-egress",
    "no-default-deny", "probe-port-not-allowed", "unprotected-pod",
}
DYNAMIC_KINDS = {"dns-denied", "policy-drop", "unexpected-drop", "health-check-blocked"}


@dataclass(frozen=True)
class Finished:
    """What one daemon run left behind."""

    exit_code: int
    exit_seconds: float
    log: list[dict[str, object]]
    findings: list[Finding]
    metrics: str


def stored_findings(path: Path) -> list[Finding]:
    store = open_store(f"sqlite:{path}")
    try:
        return store.findings()
    finally:
        store.close()


def parse_log(lines: list[str]) -> list[dict[str, object]]:
    """Every line must be one JSON object (the --log-format json contract)."""
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise AssertionError(f"not a JSON log line: {line!r}") from exc
    return parsed


@pytest.fixture(scope="module")
def file_run(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    """The demo manifests and flows through `auditor run`, stopped with SIGTERM once flushed."""
    workdir = tmp_path_factory.mktemp("daemon-file")
    flags = ("--manifests", str(DEMO_MANIFESTS), "--flows", str(DEMO_FLOWS), "--store", "sqlite:auditor.db",
             "--flush-interval", "1s", "--log-format", "json")
    with daemon_process(workdir, *flags) as daemon:
        wait_until(lambda: http_get(daemon.base + "/readyz")[0] == 200, 30, "/readyz 200")
        metrics = settled_metrics(daemon.base, DEMO_FLOW_COUNT)
        code, seconds = daemon.terminate()
        log = parse_log(daemon.log_lines())
    return Finished(code, seconds, log, stored_findings(workdir / "auditor.db"), metrics)


@pytest.fixture(scope="module")
def live_unflushed_run(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    """Live Hubble (replay server) with a one-hour flush interval: only the SIGTERM flush can write."""
    workdir = tmp_path_factory.mktemp("daemon-live")
    with ReplayServer([DEMO_FLOWS]) as replay:
        flags = ("--manifests", str(DEMO_MANIFESTS), "--hubble-server", replay.address, "--store",
                 "sqlite:auditor.db", "--flush-interval", "1h", "--log-format", "json")
        with daemon_process(workdir, *flags) as daemon:
            def analysed() -> bool:
                status, text = http_get(daemon.base + "/metrics")
                return status == 200 and total(text, "auditor_flows_processed_total") == DEMO_FLOW_COUNT
            wait_until(analysed, 30, "every demo flow analysed")
            metrics = http_get(daemon.base + "/metrics")[1]
            code, seconds = daemon.terminate()
            log = parse_log(daemon.log_lines())
    return Finished(code, seconds, log, stored_findings(workdir / "auditor.db"), metrics)


def events(run: Finished, name: str) -> list[dict[str, object]]:
    return [line for line in run.log if line.get("event") == name]


class TestSigtermFlush:
    def test_exits_zero(self, file_run: Finished) -> None:
        """SIGTERM makes the daemon exit with status 0."""
        assert file_run.exit_code == 0

    def test_exits_within_ten_seconds(self, file_run: Finished) -> None:
        """The exit after SIGTERM takes less than the 10 s a kubelet grants."""
        assert file_run.exit_seconds < 10

    def test_store_has_every_expected_kind(self, file_run: Finished) -> None:
        """The reopened store holds findings of every kind the demo scenario produces."""
        assert {finding.kind.value for finding in file_run.findings} >= EXPECTED_KINDS

    def test_logs_signal_and_stop(self, file_run: Finished) -> None:
        """The log says which signal stopped it and that it stopped."""
        assert [line["signal"] for line in events(file_run, "stopping")] == ["SIGTERM"]
        assert len(events(file_run, "stopped")) == 1

    def test_live_findings_not_written_before_sigterm(self, live_unflushed_run: Finished) -> None:
        """With a one-hour flush interval nothing is flushed while running (the precondition)."""
        assert total(live_unflushed_run.metrics, "auditor_open_findings") == 0

    def test_sigterm_flushes_pending_findings(self, live_unflushed_run: Finished) -> None:
        """SIGTERM flushes what was analysed but not yet written: the store has the flow findings."""
        assert live_unflushed_run.exit_code == 0
        assert live_unflushed_run.exit_seconds < 10
        assert {finding.kind.value for finding in live_unflushed_run.findings} >= DYNAMIC_KINDS


class TestLogLines:
    def test_one_line_per_new_finding(self, file_run: Finished) -> None:
        """The number of `finding` lines equals the number of distinct findings in the store."""
        lines = events(file_run, "finding")
        assert len(lines) == len(file_run.findings)
        assert len({(line["kind"], line["message"]) for line in lines}) == len(lines)

    def test_finding_lines_match_exported_counter(self, file_run: Finished) -> None:
        """Logged new findings and auditor_findings_total count the same thing."""
        assert len(events(file_run, "finding")) == total(file_run.metrics, "auditor_findings_total")

    def test_finding_line_carries_attribution(self, file_run: Finished) -> None:
        """Each finding line names its kind, the deciding policies and a message."""
        for line in events(file_run, "finding"):
            assert line["kind"], line
            assert line["message"], line
            assert isinstance(line["policies"], list), line
        drops = [line for line in events(file_run, "finding") if line["kind"] == "dns-denied"]
        assert drops
        assert all(line["policies"] for line in drops)

    def test_never_one_line_per_flow(self, file_run: Finished) -> None:
        """The whole log is far shorter than the flow count."""
        assert len(file_run.log) < DEMO_FLOW_COUNT / 5


class TestBadSettings:
    def test_zero_queue_size_is_a_clear_error(self, tmp_path: Path) -> None:
        """`--queue-size 0` exits 1 with one line naming the flag, not a traceback."""
        with daemon_process(tmp_path, "--manifests", str(DEMO_MANIFESTS), "--flows", str(DEMO_FLOWS),
                            "--store", "sqlite:auditor.db", "--queue-size", "0") as daemon:
            assert daemon.process.wait(timeout=30) == 1
            log = daemon.log_path.read_text()
        assert "queue-size" in log
        assert "Traceback" not in log
