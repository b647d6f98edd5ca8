"""/readyz follows the Hubble stream: 503 while Hubble is unreachable, 200 once it (comes back and) streams.

The client's reconnect backoff is exponential (0.5 s doubling, HubbleConfig's default; `auditor run`
has no flag for it), so the server is started soon after the first 503 to keep the wait short.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from auditor.hubble.replay_server import ReplayServer
from tests.daemon_support import (
    DEMO_FLOWS,
    DEMO_MANIFESTS,
    build,
    daemon_base,
    free_port,
    http_get,
    running,
    total,
    wait_until,
)

pytestmark = pytest.mark.slow

NOT_CONNECTED = (503, "hubble stream not connected\n")


def readyz(base: str) -> tuple[int, str]:
    return http_get(base + "/readyz")


class TestReadiness:
    def test_unreachable_then_reachable(self, tmp_path: Path) -> None:
        """503 naming the Hubble stream while nothing listens; 200 once a server streams on that port."""
        port = free_port()
        daemon = build(tmp_path, ["--manifests", str(DEMO_MANIFESTS), "--hubble-server", f"127.0.0.1:{port}"])
        with running(daemon):
            base = daemon_base(daemon)
            assert readyz(base) == NOT_CONNECTED
            assert http_get(base + "/healthz")[0] == 200
            with ReplayServer([DEMO_FLOWS], listen=f"127.0.0.1:{port}"):
                wait_until(lambda: readyz(base)[0] == 200, 20, "/readyz 200 after Hubble came up")
                assert readyz(base) == (200, "ok\n")

    def test_lost_then_back(self, tmp_path: Path) -> None:
        """A Hubble that goes away turns /readyz to 503 again; it returns to 200 when Hubble is back."""
        port = free_port()
        daemon = build(tmp_path, ["--manifests", str(DEMO_MANIFESTS), "--hubble-server", f"127.0.0.1:{port}"])
        with running(daemon):
            base = daemon_base(daemon)
            with ReplayServer([DEMO_FLOWS], listen=f"127.0.0.1:{port}"):
                wait_until(lambda: readyz(base)[0] == 200, 20, "/readyz 200 while Hubble streams")
            wait_until(lambda: readyz(base) == NOT_CONNECTED, 10, "/readyz 503 after Hubble went away")
            assert total(http_get(base + "/metrics")[1], "auditor_hubble_up") == 0
            with ReplayServer([DEMO_FLOWS], listen=f"127.0.0.1:{port}"):
                wait_until(lambda: readyz(base)[0] == 200, 20, "/readyz 200 after Hubble came back")
                text = http_get(base + "/metrics")[1]
        assert total(text, "auditor_hubble_up") == 1
        assert total(text, "auditor_hubble_reconnects_total") >= 1
