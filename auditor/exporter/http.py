"""The daemon's one HTTP server: /metrics, /healthz and /readyz on a threaded stdlib server."""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from auditor.errors import ConfigError
from auditor.log import get_logger

DEFAULT_ADDRESS = "0.0.0.0:9967"
_T = TypeVar("_T")


def parse_address(address: str) -> tuple[str, int]:
    """Split `host:port` (IPv6 as `[::1]:9967`; empty host means all interfaces)."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(f"--metrics-address {address!r}: expected host:port, e.g. {DEFAULT_ADDRESS}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port_text)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    registry: CollectorRegistry
    health_fn: Callable[[], bool | tuple[bool, str]]
    ready_fn: Callable[[], tuple[bool, str]]


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._metrics()
        elif path == "/healthz":
            failed: bool | tuple[bool, str] = (False, "health check failed")
            health = self._safe(self.server.health_fn, failed)
            alive, reason = health if isinstance(health, tuple) else (health, "not alive")
            self._reply(200 if alive else 503, "ok\n" if alive else f"{reason}\n")
        elif path == "/readyz":
            ready, reason = self._safe(self.server.ready_fn, (False, "readiness check failed"))
            self._reply(200 if ready else 503, "ok\n" if ready else f"{reason}\n")
        else:
            self._reply(404, "not found: try /metrics, /healthz or /readyz\n")

    def _metrics(self) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        try:
            body = encoder(self.server.registry)
        except Exception as exc:
            get_logger("auditor.exporter").exception("metrics encoding failed")
            self._reply(500, f"metrics failed: {exc}\n")
            return
        encoding = ""
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            # Prometheus always offers gzip; 10,000 series are ~1 MiB of text and ~10x less gzipped.
            body, encoding = gzip.compress(body, compresslevel=1), "gzip"
        self._send(200, body, content_type, encoding)

    def _safe(self, fn: Callable[[], _T], fallback: _T) -> _T:
        try:
            return fn()
        except Exception:
            get_logger("auditor.exporter").exception("probe check failed", path=self.path)
            return fallback

    def _reply(self, status: int, text: str) -> None:
        self._send(status, text.encode(), "text/plain; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str, encoding: str = "") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def log_message(self, format: str, *args: object) -> None:
        """Scrapes and probes are not worth a log line each."""


class MetricsServer:
    """Serves the registry and the probes until `stop()`; `port` is the bound port (use port 0 in tests)."""

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        registry: CollectorRegistry,
        health_fn: Callable[[], bool | tuple[bool, str]] = lambda: True,
        ready_fn: Callable[[], tuple[bool, str]] = lambda: (True, ""),
    ) -> None:
        self.address = address
        self._host, self._requested_port = parse_address(address)
        self._registry = registry
        self._health_fn = health_fn
        self._ready_fn = ready_fn
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("MetricsServer is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self._host in ("0.0.0.0", "") else self._host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind and serve in a daemon thread; raises ConfigError when the address cannot be bound."""
        if self._server is not None:
            return
        server_class = _Server6 if ":" in self._host else _Server
        try:
            server = server_class((self._host, self._requested_port), _Handler)
        except OSError as exc:
            raise ConfigError(f"--metrics-address {self.address}: cannot listen: {exc.strerror}") from exc
        server.registry = self._registry
        server.health_fn = self._health_fn
        server.ready_fn = self._ready_fn
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="metrics-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
