"""/readyz and /healthz under faults: a failing Kubernetes API, an unwritable store, a hung store write.

Real parts only: a loopback API server that answers 503 (tests/kubeapi.py), a real SQLite file made
immutable with chattr, a gRPC server streaming live flows, HTTP probes on loopback.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from auditor.app import daemon as daemon_module
from auditor.store.sqlite import SqliteStore
from tests.daemon_support import DEMO_FLOWS as DEMO_FLOWS_FILE
from tests.daemon_support import DEMO_MANIFESTS, build, daemon_base, http_get, running, total, wait_until
from tests.hubble_support import flow_response
from tests.kubeapi import KubeAPI
from tests.test_daemon_readiness import kubeconfig

pytestmark = pytest.mark.slow


class TickingHubble:
    """A GetFlows server that sends a fresh flow every 20 ms until stopped (a busy cluster)."""

    def __init__(self) -> None:
        self.stopped = threading.Event()
        handler = grpc.method_handlers_generic_handler(
            "observer.Observer", {"GetFlows": grpc.unary_stream_rpc_method_handler(self._flows)})
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((handler,))
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"

    def _flows(self, _request: bytes, _context: grpc.ServicerContext) -> Iterator[bytes]:
        index = 0
        while not self.stopped.wait(0.02):
            index += 1
            yield flow_response(index, time_ns=time.time_ns(), uuid=f"tick-{index}").SerializeToString()

    def __enter__(self) -> TickingHubble:
        self.server.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stopped.set()
        self.server.stop(0)


def readyz(base: str) -> tuple[int, str]:
    return http_get(base + "/readyz")


def store_errors(base: str) -> float:
    return total(http_get(base + "/metrics")[1], "auditor_errors_total", stage="store")


def chattr(flag: str, *paths: Path) -> bool:
    if shutil.which("chattr") is None:
        return False
    return subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, check=False).returncode == 0


@pytest.fixture
def hubble() -> Iterator[TickingHubble]:
    with TickingHubble() as server:
        yield server


def test_readyz_fails_while_every_store_write_fails(tmp_path: Path, hubble: TickingHubble) -> None:
    """An immutable store file turns /readyz to 503 "store writes failing"; it recovers when writable."""
    database = tmp_path / "auditor.db"
    daemon = build(tmp_path, ["--manifests", str(DEMO_MANIFESTS), "--hubble-server", hubble.address,
                              "--flush-interval", "1s"])
    with running(daemon):
        base = daemon_base(daemon)
        wait_until(lambda: readyz(base)[0] == 200, 20, "/readyz 200 with a working store")
        if not chattr("+i", database):
            pytest.skip("chattr +i is not available here (needs root on ext4/xfs)")
        try:
            wait_until(lambda: readyz(base)[1].startswith("store writes failing: "), 20, "/readyz store reason")
            assert readyz(base)[0] == 503
            wait_until(lambda: store_errors(base) >= 1, 20,
                       "auditor_errors_total{stage=store} counts the failed writes")
        finally:
            chattr("-i", database)
        wait_until(lambda: readyz(base)[0] == 200, 20, "/readyz 200 once the store is writable again")


def test_readyz_fails_while_the_kubernetes_api_is_down(
        tmp_path: Path, hubble: TickingHubble, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pod list/watch that keeps failing with 503 turns /readyz to 503 naming the resource."""
    monkeypatch.setattr(daemon_module, "INVENTORY_DOWN_GRACE_S", 0.3)
    api = KubeAPI().start()
    try:
        daemon = build(tmp_path, ["--kubeconfig", kubeconfig(tmp_path, api.url),
                                  "--hubble-server", hubble.address])
        with running(daemon):
            base = daemon_base(daemon)
            wait_until(lambda: readyz(base)[0] == 200, 20, "/readyz 200 with the API up")
            for _ in range(200):
                api.fail_next("pods", 503)
            api.drop("pods")
            wait_until(lambda: readyz(base)[1].startswith("inventory down: pods"), 20,
                       "/readyz inventory reason")
            assert readyz(base)[0] == 503
            assert total(http_get(base + "/metrics")[1], "auditor_inventory_up", resource="pods") == 0
    finally:
        api.stop()


def test_healthz_fails_when_a_store_write_hangs(tmp_path: Path, hubble: TickingHubble) -> None:
    """A store write that never returns stops the analysis loop: /healthz 503 with a reason, then 200."""
    daemon = build(tmp_path, ["--manifests", str(DEMO_MANIFESTS), "--hubble-server", hubble.address,
                              "--flush-interval", "1s"])
    daemon.health_stale_s = 1.0
    store: Any = daemon.store
    assert isinstance(store, SqliteStore)
    with running(daemon):
        base = daemon_base(daemon)
        wait_until(lambda: readyz(base)[0] == 200, 20, "/readyz 200")
        with store._write_lock:  # another writer holds the store forever (a hung disk)
            wait_until(lambda: http_get(base + "/healthz")[0] == 503, 20, "/healthz 503")
            assert http_get(base + "/healthz")[1].startswith("analysis loop made no progress for ")
        wait_until(lambda: http_get(base + "/healthz")[0] == 200, 20, "/healthz 200 after the write returned")


def test_live_inventory_counts_an_invalid_policy(tmp_path: Path) -> None:
    """A NetworkPolicy the API would reject (port 70000) counts in auditor_invalid_objects_total."""
    from auditor.app.inventory import LiveInventory
    from auditor.kube.client import factory_for
    from auditor.kube.watch import InventoryWatcher
    from auditor.policy.history import ClusterHistory
    from tests.test_kube_watch import FAST, namespace

    api = KubeAPI().start()
    api.put("namespaces", namespace("shop"))
    api.put("networkpolicies", {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "wide-port", "namespace": "shop"},
        "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 70000}]}]},
    })
    inventory = LiveInventory(ClusterHistory(window_ns=10**15),
                              lambda sink: InventoryWatcher(factory_for(api.configuration()), sink,
                                                            settings=FAST))
    inventory.start()
    try:
        wait_until(inventory.ready, 10, "the inventory's initial lists")
        status = inventory.status().resources["networkpolicies"]
    finally:
        inventory.stop()
        api.stop()
    assert status.invalid_objects == {"NetworkPolicy": 1}


def test_run_flows_exit_at_end_exits_zero_after_the_files(tmp_path: Path) -> None:
    """`run --flows --exit-at-end` analyses the files, flushes and returns 0 by itself."""
    from tests.daemon_support import DEMO_FLOW_COUNT, DEMO_FLOWS

    daemon = build(tmp_path, ["--manifests", str(DEMO_MANIFESTS), "--flows", str(DEMO_FLOWS), "--exit-at-end",
                              "--workers", "1"])
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(daemon.run()), daemon=True)
    thread.start()
    thread.join(20)
    assert result == [0]
    assert daemon.analyzer.flushed_flows == DEMO_FLOW_COUNT


def test_second_daemon_on_the_same_store_is_refused_with_one_line(tmp_path: Path) -> None:
    """Two daemons with one identity on one SQLite store: the second exits 1 with one clear line."""
    first = build(tmp_path, ["--manifests", str(DEMO_MANIFESTS), "--flows", str(DEMO_FLOWS_FILE)])
    with running(first):
        second = subprocess.run(
            [sys.executable, "-m", "auditor", "run", "--store", f"sqlite:{tmp_path / 'auditor.db'}",
             "--manifests", str(DEMO_MANIFESTS), "--flows", str(DEMO_FLOWS_FILE),
             "--metrics-address", "127.0.0.1:0", "--log-format", "json"],
            capture_output=True, text=True, timeout=60, check=False)
    errors = [line for line in second.stderr.splitlines() if "already live" in line]
    assert second.returncode == 1
    assert len(errors) == 1
    assert "give this daemon its own --instance or stop the other one" in errors[0]
