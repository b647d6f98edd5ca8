"""`auditor record` does not claim success when change lines could not be written."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from auditor.cli import main
from tests.kubeapi import KubeAPI
from tests.test_kube_record import kubeconfig


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


class TestRecordWriteFailures:
    def test_unwritable_events_file_exits_non_zero_naming_it(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Changes that could not be written to --events (disk full) make record exit 1 and say so."""
        api = KubeAPI().start()
        api.put("namespaces", {"metadata": {"name": "shop"}})
        snapshot = tmp_path / "snapshot.yaml"

        def change_after_snapshot() -> None:
            deadline = time.monotonic() + 10
            while not snapshot.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            api.put("pods", {"metadata": {"name": "web-1", "namespace": "shop"}})

        worker = threading.Thread(target=change_after_snapshot, daemon=True)
        worker.start()
        try:
            code = main(["record", "--snapshot", str(snapshot), "--events", "/dev/full", "--duration", "1.5s",
                         "--kubeconfig", kubeconfig(tmp_path, api.url)])
        finally:
            worker.join(10)
            api.stop()
        err = capsys.readouterr().err
        assert code == 1, err
        last = err.strip().splitlines()[-1]
        assert last.startswith("auditor record: error: /dev/full: 1 change"), err


class TestRecordSummary:
    def test_invalid_objects_are_counted_in_the_summary(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Objects the API served that cannot be converted are skipped and counted in record's last line."""
        api = KubeAPI().start()
        api.put("namespaces", {"metadata": {"name": "shop"}})
        api.put("pods", {"metadata": {"name": "bad-1", "namespace": "shop", "labels": ["not", "a", "map"]}})
        try:
            code = main(["record", "--snapshot", str(tmp_path / "s.yaml"), "--events",
                         str(tmp_path / "e.jsonl"), "--duration", "0.2s",
                         "--kubeconfig", kubeconfig(tmp_path, api.url)])
        finally:
            api.stop()
        err = capsys.readouterr().err
        assert code == 0, err
        assert err.strip().splitlines()[-1].endswith("1 invalid object skipped (Pod 1)"), err
