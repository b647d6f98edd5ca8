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
from tests.kubeapi import KubeAPI

pytestmark = pytest.mark.slow

NOT_CONNECTED = (503, "hubble stream not connected\n")
NOT_SYNCED = (503, "inventory not synced\n")


def kubeconfig(tmp_path: Path, server: str) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: loopback\n"
        f"clusters:\n- name: loopback\n  cluster:\n    server: {server}\n"
        "users:\n- name: tester\n  user:\n    token: not-a-secret\n"
        "contexts:\n- name: loopback\n  context:\n    cluster: loopback\n    user: tester\n"
    )
    return str(path)


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

    def test_live_inventory_not_synced_until_lists_arrive(self, tmp_path: Path) -> None:
        """With Hubble streaming, /readyz stays 503 "inventory not synced" until the pod list arrives."""
        api = KubeAPI().start()
        held = api.hold("pods")
        try:
            with ReplayServer([DEMO_FLOWS]) as replay:
                daemon = build(tmp_path, ["--kubeconfig", kubeconfig(tmp_path, api.url),
                                          "--hubble-server", replay.address])
                with running(daemon):
                    base = daemon_base(daemon)
                    wait_until(lambda: readyz(base) == NOT_SYNCED, 20, "/readyz 503 inventory not synced")
                    pods_up = total(http_get(base + "/metrics")[1], "auditor_inventory_up", resource="pods")
                    held.set()
                    wait_until(lambda: readyz(base)[0] == 200, 20, "/readyz 200 once the lists are in")
                    text = http_get(base + "/metrics")[1]
        finally:
            api.stop()
        assert pods_up == 0
        assert total(text, "auditor_inventory_up", resource="pods") == 1

    def test_quiet_open_stream_is_ready(self, tmp_path: Path) -> None:
        """An open GetFlows stream that has nothing to send yet still counts as connected."""
        with ReplayServer(responses=[]) as replay:
            daemon = build(tmp_path, ["--manifests", str(DEMO_MANIFESTS), "--hubble-server", replay.address])
            with running(daemon):
                base = daemon_base(daemon)
                wait_until(lambda: readyz(base)[0] == 200, 5, "/readyz 200 with a quiet stream")
