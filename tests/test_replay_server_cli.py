"""`auditor replay-server` as a real process: prints its address, serves, stops on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from auditor.app.replay_server import ReplayServerOptions
from auditor.errors import ConfigError
from auditor.hubble.client import HubbleClient
from auditor.model.flows import Flow
from tests.hubble_support import fast_config, take

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "real-flows"
FIXTURE = FIXTURES / "hubble-otel-basic-sample-10-flows.jsonl"
LISTEN = "127.0.0.1:0"


class TestCommand:
    def test_serves_until_sigterm(self) -> None:
        """The command prints `listening on HOST:PORT`, serves the file, exits 0 on SIGTERM."""
        process = subprocess.Popen(
            [sys.executable, "-m", "auditor", "replay-server", "--flows", str(FIXTURE), "--listen", LISTEN],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith("listening on 127.0.0.1:")
            address = line.split()[2]
            events = take(HubbleClient(fast_config(address)), 10)
            assert sum(isinstance(event, Flow) for event in events) == 10
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            process.kill()
            process.wait()

    def test_missing_file_is_a_clear_error(self, tmp_path: Path) -> None:
        """A flows file that does not exist makes the command exit 1 naming the file."""
        missing = tmp_path / "none.jsonl"
        result = subprocess.run(
            [sys.executable, "-m", "auditor", "replay-server", "--flows", str(missing), "--listen", LISTEN],
            capture_output=True, text=True, timeout=30, check=False,
        )
        assert result.returncode == 1
        assert str(missing) in result.stderr


class TestOptions:
    def test_key_without_certificate(self) -> None:
        """--tls-key-file alone is refused: TLS needs both the certificate and the key."""
        with pytest.raises(ConfigError, match="--tls-cert-file and --tls-key-file"):
            ReplayServerOptions(flows=(), tls_key_file="server.key").server_tls()

    def test_client_cas_make_mtls(self) -> None:
        """Client CA files turn on client-certificate verification (mTLS)."""
        tls = ReplayServerOptions(flows=(), tls_cert_file="s.crt", tls_key_file="s.key",
                                  tls_client_ca_files=("ca.crt",)).server_tls()
        assert tls is not None
        assert tls.client_ca_files == ("ca.crt",)
