"""Runs the real promtool for the exporter, alert-rule and dashboard tests.

Outside CI a missing promtool skips the test; with CI=true it fails (CI installs Debian's
prometheus package through scripts/setup.sh --system).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def promtool_path() -> str:
    """The promtool binary, or skip (fail when CI=true) when it is not installed."""
    return prometheus_binary("promtool")


def prometheus_binary(name: str) -> str:
    """`promtool` or `prometheus` from Debian's prometheus package; skip, or fail when CI=true."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found (install Debian's prometheus package: scripts/setup.sh --system)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def run_promtool(
    *args: str, stdin: str | None = None, cwd: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run promtool with `args`; the caller asserts on returncode and output."""
    return subprocess.run(
        [promtool_path(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


@contextmanager
def prometheus_server(workdir: Path, config: str) -> Iterator[str]:
    """A real `prometheus` with `config` (YAML text) on a free loopback port; yields its base URL."""
    binary = prometheus_binary("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "prometheus.yml"
    config_file.write_text(config)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    process = subprocess.Popen(
        [binary, f"--config.file={config_file}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)
