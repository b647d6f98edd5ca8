"""MetricsServer: one real threaded HTTP server on loopback serving /metrics, /healthz and /readyz."""

from __future__ import annotations

import gzip
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from auditor.errors import ConfigError
from auditor.exporter.collector import make_registry
from auditor.exporter.http import MetricsServer, parse_address
from auditor.exporter.snapshot import MetricsSnapshot


class Readiness:
    """A switchable readiness answer, like the daemon's (stream connected and inventory synced)."""

    def __init__(self) -> None:
        self.state: tuple[bool, str] = (False, "hubble stream not connected")

    def __call__(self) -> tuple[bool, str]:
        return self.state


@pytest.fixture
def readiness() -> Readiness:
    return Readiness()


@pytest.fixture
def server(readiness: Readiness) -> Iterator[MetricsServer]:
    registry = make_registry(lambda: MetricsSnapshot(version="9.9.9", hubble_up=True))
    metrics_server = MetricsServer("127.0.0.1:0", registry=registry, ready_fn=readiness)
    metrics_server.start()
    yield metrics_server
    metrics_server.stop()


def get(server: MetricsServer, path: str, accept: str = "") -> tuple[int, str, str]:
    """GET path; returns (status, content type, body) also for error statuses."""
    request = urllib.request.Request(server.url + path, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


class TestEndpoints:
    def test_metrics_serves_text_exposition(self, server: MetricsServer) -> None:
        """/metrics returns the Prometheus text format with auditor metrics."""
        status, content_type, body = get(server, "/metrics")
        assert status == 200
        assert content_type.startswith("text/plain; version=0.0.4")
        assert 'auditor_build_info{version="9.9.9"} 1.0' in body

    def test_metrics_serves_openmetrics_when_asked(self, server: MetricsServer) -> None:
        """An OpenMetrics Accept header gets OpenMetrics, terminated by # EOF."""
        accept = "application/openmetrics-text; version=1.0.0"
        status, content_type, body = get(server, "/metrics", accept=accept)
        assert status == 200
        assert content_type.startswith("application/openmetrics-text")
        assert body.endswith("# EOF\n")

    def test_metrics_are_gzipped_when_accepted(self, server: MetricsServer) -> None:
        """A scraper offering gzip (as Prometheus does) gets a gzip-encoded body."""
        request = urllib.request.Request(server.url + "/metrics", headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            assert b"auditor_build_info" in gzip.decompress(response.read())

    def test_healthz_is_ok_while_alive(self, server: MetricsServer) -> None:
        """/healthz answers 200 ok."""
        assert get(server, "/healthz")[0::2] == (200, "ok\n")

    def test_readyz_is_503_with_reason_when_not_ready(self, server: MetricsServer) -> None:
        """/readyz answers 503 and says why while not ready."""
        assert get(server, "/readyz")[0::2] == (503, "hubble stream not connected\n")

    def test_readyz_becomes_200_when_ready(self, server: MetricsServer, readiness: Readiness) -> None:
        """/readyz follows the readiness function at each request."""
        readiness.state = (True, "")
        assert get(server, "/readyz")[0::2] == (200, "ok\n")

    def test_unknown_path_is_404(self, server: MetricsServer) -> None:
        """Anything else is 404."""
        assert get(server, "/nope")[0] == 404

    def test_failing_ready_check_is_503(self) -> None:
        """A readiness function that raises makes /readyz 503, not a crashed handler."""
        def broken() -> tuple[bool, str]:
            raise RuntimeError("boom")

        metrics_server = MetricsServer("127.0.0.1:0", registry=make_registry(MetricsSnapshot), ready_fn=broken)
        metrics_server.start()
        try:
            assert get(metrics_server, "/readyz")[0] == 503
        finally:
            metrics_server.stop()


class TestLifecycle:
    def test_port_zero_binds_a_free_port(self, server: MetricsServer) -> None:
        """Port 0 binds an ephemeral port that `port` reports."""
        assert server.port > 0

    def test_stop_releases_the_port(self) -> None:
        """After stop() the port can be bound again."""
        metrics_server = MetricsServer("127.0.0.1:0", registry=make_registry(MetricsSnapshot))
        metrics_server.start()
        port = metrics_server.port
        metrics_server.stop()
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))

    def test_busy_port_is_a_config_error(self, server: MetricsServer) -> None:
        """Binding a port already in use raises ConfigError naming the address."""
        other = MetricsServer(f"127.0.0.1:{server.port}", registry=make_registry(MetricsSnapshot))
        with pytest.raises(ConfigError, match=f"127.0.0.1:{server.port}"):
            other.start()


class TestParseAddress:
    def test_default_address(self) -> None:
        """The default 0.0.0.0:9967 parses to all interfaces on 9967."""
        assert parse_address("0.0.0.0:9967") == ("0.0.0.0", 9967)

    def test_empty_host_means_all_interfaces(self) -> None:
        """':9967' listens on every interface."""
        assert parse_address(":9967") == ("0.0.0.0", 9967)

    def test_ipv6_brackets_are_removed(self) -> None:
        """[::1]:9967 is the IPv6 loopback."""
        assert parse_address("[::1]:9967") == ("::1", 9967)

    @pytest.mark.parametrize("address", ["9967", "host:port", "host:70000"])
    def test_bad_address_is_rejected(self, address: str) -> None:
        """A malformed address raises ConfigError quoting it."""
        with pytest.raises(ConfigError, match="expected host:port"):
            parse_address(address)
