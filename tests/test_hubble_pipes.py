"""Pipes from the real hubble CLI into auditor: `hubble observe ... -o jsonpb | auditor audit|run --flows -`.

hubble is looked up on PATH, then at ../shared/bin/hubble; without it these tests are skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from auditor.hubble.replay_server import ReplayServer
from tests.daemon_support import free_port, http_get, total, wait_until
from tests.test_hubble_cli_interop import FILES, HUBBLE

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "auditor" / "data" / "demo" / "cluster.yaml"
pytestmark = pytest.mark.skipif(HUBBLE is None,
                                reason="the hubble CLI is neither on PATH nor at ../shared/bin/hubble")


def audit(flows: str, stdin: int | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "auditor", "audit", "--manifests", str(MANIFESTS),
                           "--flows", flows, "--output", "json"], stdin=stdin, capture_output=True,
                          timeout=120, check=False, cwd=ROOT)


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_hubble_pipe_audits_like_the_file(path: Path) -> None:
    """`hubble observe --input-file F -o jsonpb | auditor audit --flows -` prints what `--flows F` prints."""
    assert HUBBLE is not None
    hubble = subprocess.Popen([HUBBLE, "observe", "--input-file", str(path), "--all", "-o", "jsonpb"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert hubble.stdout is not None
    try:
        piped = audit("-", stdin=hubble.stdout.fileno())
    finally:
        hubble.stdout.close()
        hubble.wait(timeout=60)
    direct = audit(str(path))
    assert direct.returncode == 0, direct.stderr
    assert piped.stdout == direct.stdout


def test_follow_pipe_into_run_counts_every_flow(tmp_path: Path) -> None:
    """`hubble observe --server <replay> --follow -o jsonpb | auditor run --flows -` analyses every flow."""
    assert HUBBLE is not None
    flows = sum(1 for path in FILES for line in path.read_text().splitlines() if line.strip())
    port = free_port()
    with ReplayServer(FILES) as replay:
        hubble = subprocess.Popen([HUBBLE, "observe", "--server", replay.address, "--follow", "-o", "jsonpb"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert hubble.stdout is not None
        daemon = subprocess.Popen(
            [sys.executable, "-m", "auditor", "run", "--flows", "-", "--manifests", str(MANIFESTS),
             "--store", f"sqlite:///{tmp_path}/auditor.db", "--metrics-address", f"127.0.0.1:{port}",
             "--log-format", "json"], stdin=hubble.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        hubble.stdout.close()
        try:
            def analysed() -> bool:
                status, text = http_get(f"http://127.0.0.1:{port}/metrics")
                return status == 200 and total(text, "auditor_flows_processed_total") >= flows

            wait_until(analysed, 60, f"all {flows} flows analysed")
            _status, text = http_get(f"http://127.0.0.1:{port}/metrics")
            assert total(text, "auditor_flows_processed_total") == flows
            assert hubble.poll() is None  # the follow stream is still open: nothing ended the pipe
        finally:
            for process in (hubble, daemon):
                process.terminate()
                process.wait(timeout=20)
