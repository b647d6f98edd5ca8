"""`auditor record` against the loopback API: a snapshot, then change lines, both readable offline."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from auditor.app.record import RecordOptions, record
from auditor.cli import main
from auditor.kube.client import factory_for
from auditor.kube.events import load_cluster_events
from auditor.kube.manifests import load_manifests
from auditor.model.events import NodeStatus
from auditor.model.k8s import ChangeType, Namespace, Pod
from tests.kubeapi import KubeAPI


def kubeconfig(tmp_path: Path, server: str) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: loopback\n"
        f"clusters:\n- name: loopback\n  cluster:\n    server: {server}\n"
        "users:\n- name: tester\n  user:\n    token: not-a-secret\n"
        "contexts:\n- name: loopback\n  context:\n    cluster: loopback\n    user: tester\n"
    )
    return str(path)


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """The CLI configures structlog onto the captured stderr; undo it for later tests."""
    yield
    structlog.reset_defaults()


@pytest.fixture(name="api")
def _api() -> Iterator[KubeAPI]:
    api = KubeAPI().start()
    api.put("namespaces", {"metadata": {"name": "shop"}})
    api.put("pods", {"metadata": {"name": "api-1", "namespace": "shop", "labels": {"app": "api"}}})
    yield api
    api.stop()


class TestRecord:
    def test_snapshot_then_changes(self, api: KubeAPI, tmp_path: Path) -> None:
        """The snapshot holds the listed state; later changes are event lines load_cluster_events reads."""
        snapshot, events = tmp_path / "snapshot.yaml", tmp_path / "events.jsonl"
        stop, written = threading.Event(), threading.Event()
        options = RecordOptions(snapshot=str(snapshot), events=str(events))
        worker = threading.Thread(
            target=record,
            args=(options,),
            kwargs={
                "factory": factory_for(api.configuration()),
                "stop": stop,
                "on_snapshot": lambda n: written.set(),
            },
        )
        worker.start()
        assert written.wait(10)
        api.put("pods", {"metadata": {"name": "web-1", "namespace": "shop"}})
        api.delete("pods", "api-1", "shop")
        for _ in range(1000):
            if events.exists() and len(events.read_text().splitlines()) == 2:
                break
            stop.wait(0.01)
        stop.set()
        worker.join(10)
        assert [type(o) for o in load_manifests([str(snapshot)])] == [Namespace, Pod]
        changes = load_cluster_events(str(events))
        assert [(c.type, c.obj.name) for c in changes] == [
            (ChangeType.ADDED, "web-1"),
            (ChangeType.DELETED, "api-1"),
        ]


class TestRecordCommand:
    def test_records_through_a_kubeconfig(self, api: KubeAPI, tmp_path: Path) -> None:
        """`auditor record --kubeconfig` loads the config, records for --duration and exits 0."""
        snapshot = tmp_path / "snapshot.json"
        argv = ["record", "--snapshot", str(snapshot), "--events", str(tmp_path / "e.jsonl")]
        code = main([*argv, "--duration", "0.2s", "--kubeconfig", kubeconfig(tmp_path, api.url)])
        assert code == 0
        assert {o.name for o in load_manifests([str(snapshot)])} == {"shop", "api-1"}

    def test_unreachable_api_fails_after_sync_timeout(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """When the lists never come in, record exits 1 naming the resources and the error."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
        argv = ["record", "--snapshot", str(tmp_path / "s.yaml"), "--events", str(tmp_path / "e.jsonl")]
        code = main([*argv, "--sync-timeout", "0.3s", "--kubeconfig", kubeconfig(tmp_path, closed)])
        assert code == 1
        assert "did not sync within 0.3s: namespaces (" in capsys.readouterr().err
        assert not (tmp_path / "s.yaml").exists()

    def test_missing_kubeconfig_is_a_config_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A kubeconfig that cannot be loaded is reported, not a traceback."""
        argv = ["record", "--snapshot", str(tmp_path / "s.yaml"), "--events", str(tmp_path / "e.jsonl")]
        assert main([*argv, "--kubeconfig", str(tmp_path / "absent")]) == 1
        assert "cannot load Kubernetes configuration" in capsys.readouterr().err


class TestRecordOut:
    def test_out_dir_records_inventory_and_flows(self, api: KubeAPI, tmp_path: Path) -> None:
        """--out DIR writes cluster.yaml, cluster-events.jsonl and flows.jsonl that audit can replay."""
        from auditor.hubble.files import FileFlowSource
        from auditor.hubble.replay_server import ReplayServer

        served = Path(__file__).parent / "fixtures" / "real-flows" / "hubble-otel-basic-sample-10-flows.jsonl"
        server = ReplayServer([served])
        address = server.start()
        out = tmp_path / "incident"
        try:
            argv = [
                "record",
                "--out",
                str(out),
                "--hubble-server",
                address,
                "--duration",
                "1.5s",
                "--kubeconfig",
                kubeconfig(tmp_path, api.url),
            ]
            assert main(argv) == 0
        finally:
            server.stop()
        assert {o.name for o in load_manifests([str(out / "cluster.yaml")])} == {"shop", "api-1"}
        assert (out / "cluster-events.jsonl").exists()
        recorded = list(FileFlowSource([str(out / "flows.jsonl")]).events())
        original = list(FileFlowSource([str(served)]).events())
        # the stream also carried the server's node-status event, recorded too (as from Relay)
        assert [event for event in recorded if not isinstance(event, NodeStatus)] == original
        audit = main(
            [
                "audit",
                "--manifests",
                str(out / "cluster.yaml"),
                "--cluster-events",
                str(out / "cluster-events.jsonl"),
                "--flows",
                str(out / "flows.jsonl"),
                "--output",
                "json",
            ]
        )
        assert audit == 0

    def test_out_and_snapshot_together_is_an_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--out and --snapshot/--events are two ways to name the files; both at once is refused."""
        assert main(["record", "--out", str(tmp_path), "--snapshot", str(tmp_path / "s.yaml")]) == 1
        assert "either --out DIR or --snapshot/--events" in capsys.readouterr().err
