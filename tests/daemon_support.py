"""Helpers for the daemon tests: real `auditor run` processes and in-process daemons, HTTP probes.

Nothing here is a fake: subprocesses run `python -m auditor`, in-process daemons are the real
`Daemon` composed by `build_daemon`, and every probe is a real HTTP request on loopback.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from auditor.app import settings as settings_mod
from auditor.app.daemon import Daemon, build_daemon

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "auditor/data/demo"
DEMO_MANIFESTS = DEMO / "cluster.yaml"
DEMO_FLOWS = DEMO / "flows.jsonl"
DEMO_FLOW_COUNT = sum(1 for line in DEMO_FLOWS.read_text().splitlines() if line.strip())


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body) of a GET; connection errors are status 0."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, ""


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll `check` until it is true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition: (name, labels) -> value."""
    result = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            result[(sample.name, frozenset(sample.labels.items()))] = float(sample.value)
    return result


def total(text: str, name: str, **labels: str) -> float:
    """The sum of `name` over the series that carry `labels`."""
    wanted = set(labels.items())
    return sum(value for (sample, series), value in samples(text).items()
               if sample == name and wanted <= series)


def has_series(text: str, name: str) -> bool:
    return any(sample == name for sample, _ in samples(text))


VOLATILE = ("auditor_flow_processing_lag_seconds", "auditor_scrape_duration_seconds",
            "auditor_inventory_last_sync_timestamp_seconds")
"""Metrics that change from scrape to scrape on an idle daemon (wall clock, scrape cost)."""


def _stable(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {key: value for key, value in samples(text).items() if not key[0].startswith(VOLATILE)}


def settled_metrics(base: str, flows: int, timeout: float = 30.0) -> str:
    """/metrics once `flows` flows were analysed, findings flushed, and two scrapes 0.5 s apart agree.

    The agreement (VOLATILE metrics aside) means no flush was half done: open findings (from the
    store) and auditor_findings_total (counted as the new ones are logged) describe the same flush.
    """
    found: list[str] = []

    def check() -> bool:
        first = http_get(base + "/metrics")[1]
        if total(first, "auditor_flows_processed_total") != flows or not total(first, "auditor_open_findings"):
            return False
        time.sleep(0.5)
        second = http_get(base + "/metrics")[1]
        found.append(second)
        return _stable(first) == _stable(second)
    wait_until(check, timeout, f"a settled scrape after {flows} flows")
    return found[-1]


def flushed(base: str, expected_findings: int = 1) -> bool:
    """The daemon has analysed its flows and flushed at least `expected_findings` open findings."""
    status, text = http_get(base + "/metrics")
    return status == 200 and total(text, "auditor_open_findings") >= expected_findings


@dataclass
class DaemonProcess:
    """A running `python -m auditor run` subprocess; its log (stderr) goes to `log_path`."""

    process: subprocess.Popen[bytes]
    base: str
    log_path: Path

    def log_lines(self) -> list[str]:
        return self.log_path.read_text().splitlines()

    def terminate(self, timeout: float = 15.0) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds it took to exit)."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        return code, time.monotonic() - started


@contextmanager
def daemon_process(workdir: Path, *flags: str, port: int | None = None) -> Iterator[DaemonProcess]:
    """`auditor run FLAGS --metrics-address 127.0.0.1:PORT` in `workdir`; killed if still alive at exit."""
    port = port or free_port()
    log_path = workdir / "daemon.log"
    command = [sys.executable, "-m", "auditor", "run", *flags, "--metrics-address", f"127.0.0.1:{port}"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        yield DaemonProcess(process, f"http://127.0.0.1:{port}", log_path)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def replay_process(*flags: str, port: int | None = None) -> Iterator[str]:
    """`auditor replay-server FLAGS --listen 127.0.0.1:PORT` as a subprocess; yields its address."""
    port = port or free_port()
    address = f"127.0.0.1:{port}"
    command = [sys.executable, "-m", "auditor", "replay-server", *flags, "--listen", address]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _accepts(port) or process.poll() is not None, 20, f"replay-server on {address}")
        assert process.poll() is None, f"replay-server exited with {process.returncode}"
        yield address
    finally:
        process.terminate()
        process.wait(timeout=10)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def daemon_settings(flags: Sequence[str], **overrides: Any) -> dict[str, Any]:
    """Settings exactly as `auditor run FLAGS` resolves them (no environment), plus overrides."""
    parser = argparse.ArgumentParser()
    settings_mod.add_arguments(parser)
    resolved = settings_mod.resolve(parser.parse_args(list(flags)), env={})
    resolved.update(overrides)
    return resolved


@contextmanager
def running(daemon: Daemon) -> Iterator[Daemon]:
    """Run a real daemon on a thread (no signal handlers there); stop it and wait at exit."""
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(daemon.run()), name="daemon", daemon=True)
    thread.start()
    try:
        wait_until(lambda: _serving(daemon), 10, "the daemon's HTTP server")
        yield daemon
    finally:
        daemon.stop.set()
        thread.join(timeout=15)
        assert not thread.is_alive(), "daemon did not stop within 15 s"


def _serving(daemon: Daemon) -> bool:
    try:
        return http_get(daemon_base(daemon) + "/healthz")[0] == 200
    except RuntimeError:  # the server is not bound yet
        return False


def daemon_base(daemon: Daemon) -> str:
    return f"http://127.0.0.1:{daemon.server.port}"


def build(workdir: Path, flags: Sequence[str], **overrides: Any) -> Daemon:
    """`build_daemon` for `auditor run FLAGS` with a store in `workdir` and an ephemeral metrics port."""
    base_flags = ["--store", f"sqlite:{workdir / 'auditor.db'}", "--metrics-address", "127.0.0.1:0"]
    return build_daemon(daemon_settings([*base_flags, *flags], **overrides))
