"""Flow input from stdin, pipes, FIFOs, process substitution: never seeked, gzip sniffed, read as it comes."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditor.errors import InputError
from auditor.hubble.files import FileFlowSource
from auditor.model.flows import Flow

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "real-flows"
TCP = FIXTURES / "hubble-otel-basic-sample-400-tcp-flows.jsonl"
DEMO = ROOT / "auditor" / "data" / "demo"
COUNT_STDIN = ("from auditor.hubble.files import FileFlowSource\n"
               "source = FileFlowSource(['-'])\n"
               "print(sum(1 for _ in source.events()), source.stats.bad_lines)\n")


def uuids_and_times(paths: list[str]) -> list[tuple[str, int]]:
    return [(event.uuid, event.time_ns) for event in FileFlowSource(paths).events() if isinstance(event, Flow)]


def pipe_path(data: bytes) -> Iterator[str]:
    """A `/dev/fd/N` path of a pipe a thread writes `data` into, like bash's `<(...)`."""
    read_fd, write_fd = os.pipe()

    def write() -> None:
        with os.fdopen(write_fd, "wb") as out:
            out.write(data)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        yield f"/dev/fd/{read_fd}"
    finally:
        writer.join(timeout=10)
        os.close(read_fd)


class TestNonSeekableInputs:
    def test_stdin_dash_reads_every_line(self) -> None:
        """`-` reads the flows from stdin: every line, none bad."""
        result = subprocess.run([sys.executable, "-c", COUNT_STDIN], input=TCP.read_bytes(),
                                capture_output=True, timeout=60, check=True, cwd=ROOT)
        assert result.stdout.split() == [b"400", b"0"]

    def test_gzip_on_stdin_is_sniffed_without_seeking(self) -> None:
        """gzip data on stdin is recognised by its magic bytes and decompressed."""
        result = subprocess.run([sys.executable, "-c", COUNT_STDIN], input=gzip.compress(TCP.read_bytes()),
                                capture_output=True, timeout=60, check=True, cwd=ROOT)
        assert result.stdout.split() == [b"400", b"0"]

    def test_pipe_path_equals_the_file(self) -> None:
        """A pipe given by path (process substitution) yields what the file yields."""
        for path in pipe_path(TCP.read_bytes()):
            assert uuids_and_times([path]) == uuids_and_times([str(TCP)])

    def test_gzip_pipe_path_equals_the_file(self) -> None:
        """A gzip stream through a pipe path yields what the plain file yields."""
        for path in pipe_path(gzip.compress(TCP.read_bytes())):
            assert uuids_and_times([path]) == uuids_and_times([str(TCP)])

    def test_fifo_is_not_opened_before_reading(self, tmp_path: Path) -> None:
        """A FIFO is only checked at construction (opening it would wait for a writer), then read."""
        fifo = tmp_path / "flows.fifo"
        os.mkfifo(fifo)
        source = FileFlowSource([fifo])
        writer = threading.Thread(target=lambda: fifo.write_bytes(TCP.read_bytes()), daemon=True)
        writer.start()
        assert sum(1 for _ in source.events()) == 400
        writer.join(timeout=10)

    def test_stdin_twice_is_refused(self) -> None:
        """stdin can be read once: `--flows - -` is a clear error."""
        with pytest.raises(InputError, match="only once"):
            FileFlowSource(["-", "-"])

    def test_lines_are_handed_on_as_they_arrive(self) -> None:
        """An open pipe's first flow is yielded before the writer sends the rest (an endless stream)."""
        read_fd, write_fd = os.pipe()
        first, rest = TCP.read_bytes().split(b"\n", 1)
        os.write(write_fd, first + b"\n")
        events = FileFlowSource([f"/dev/fd/{read_fd}"]).events()
        assert isinstance(next(events), Flow)  # would block forever if the reader waited for EOF

        def write_rest() -> None:
            with os.fdopen(write_fd, "wb") as out:
                out.write(rest)

        writer = threading.Thread(target=write_rest, daemon=True)
        writer.start()
        assert sum(1 for _ in events) == 399
        writer.join(timeout=10)
        os.close(read_fd)


def audit(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "auditor", "audit", "--output", "json", *args], input=stdin,
                          capture_output=True, timeout=120, check=False, cwd=ROOT)


class TestCommands:
    def test_audit_flows_from_stdin_equal_the_file(self) -> None:
        """`auditor audit --flows -` prints what `--flows FILE` prints."""
        flows = DEMO / "flows.jsonl"
        from_file = audit("--manifests", str(DEMO / "cluster.yaml"), "--flows", str(flows))
        from_stdin = audit("--manifests", str(DEMO / "cluster.yaml"), "--flows", "-", stdin=flows.read_bytes())
        assert from_file.returncode == 0, from_file.stderr
        assert from_stdin.stdout == from_file.stdout

    def test_manifests_from_stdin_equal_the_file(self) -> None:
        """`auditor audit --manifests -` reads the manifests from stdin."""
        flows = str(DEMO / "flows.jsonl")
        from_file = audit("--manifests", str(DEMO / "cluster.yaml"), "--flows", flows)
        from_stdin = audit("--manifests", "-", "--flows", flows, stdin=(DEMO / "cluster.yaml").read_bytes())
        assert from_file.returncode == 0, from_file.stderr
        assert from_stdin.stdout == from_file.stdout

    def test_hubble_filter_flags_narrow_the_audit(self) -> None:
        """`--not --verdict FORWARDED` leaves exactly the flows whose verdict is not FORWARDED."""
        flows = DEMO / "flows.jsonl"
        lines = [json.loads(line) for line in flows.read_text().splitlines() if line.strip()]
        expected = sum(1 for line in lines if line["flow"].get("verdict") != "FORWARDED")
        result = audit("--manifests", str(DEMO / "cluster.yaml"), "--flows", str(flows), "--not", "--verdict",
                       "FORWARDED")
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)["summary"]
        assert summary["flows"] == expected > 0
        assert "FORWARDED" not in summary["by_verdict"]

    def test_follow_prints_findings_before_the_stream_ends(self) -> None:
        """`audit --follow --flows -` prints a finding while stdin is still open."""
        process = subprocess.Popen(
            [sys.executable, "-m", "auditor", "audit", "--manifests", str(DEMO / "cluster.yaml"),
             "--flows", "-", "--follow", "--output", "json"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=ROOT)
        assert process.stdin is not None
        assert process.stdout is not None
        timer = threading.Timer(60, process.kill)  # a hang guard, not a measurement
        timer.start()
        try:
            process.stdin.write((DEMO / "flows.jsonl").read_bytes())
            process.stdin.flush()
            first = process.stdout.readline()  # stdin is still open: the stream has not ended
            assert first.startswith(b'{"kind":'), first or (process.stderr.read() if process.stderr else b"")
        finally:
            process.stdin.close()
            process.wait(timeout=60)
            timer.cancel()

    def test_ctrl_c_ends_a_follow_audit_with_its_summary(self) -> None:
        """SIGINT during `audit --follow` on an open pipe prints the summary and exits 0."""
        process = subprocess.Popen(
            [sys.executable, "-m", "auditor", "audit", "--manifests", str(DEMO / "cluster.yaml"),
             "--flows", "-", "--follow", "--output", "json"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=ROOT)
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write((DEMO / "flows.jsonl").read_bytes())
        process.stdin.flush()
        assert process.stdout.readline().startswith(b'{"kind":')  # reading: the pipe is still open
        timer = threading.Timer(60, process.kill)  # a hang guard, not a measurement
        timer.start()
        try:
            process.send_signal(signal.SIGINT)
            out = process.stdout.read()  # stdin stays open: only the interrupt can end the input
            code = process.wait(timeout=60)
        finally:
            timer.cancel()
            process.stdin.close()
            if process.stderr is not None:
                process.stderr.close()
        assert code == 0
        assert b'"summary"' in out
