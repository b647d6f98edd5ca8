"""`--cluster-events` files: parsing, bad lines, the skipping iterator and the writer."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from auditor.errors import ManifestError
from auditor.kube.events import (
    EventFileStats,
    format_rfc3339_ns,
    iter_cluster_events,
    load_cluster_events,
    parse_rfc3339_ns,
    write_cluster_event,
)
from auditor.kube.manifests import load_manifests
from auditor.model.k8s import ChangeType, NetworkPolicy, Pod

FIXTURES = Path(__file__).parent / "fixtures"

POLICY = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "api-from-frontend", "namespace": "shop"},
    "spec": {"podSelector": {"matchLabels": {"app": "api"}}, "ingress": [{"from": [{"podSelector": {}}]}]},
}
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "api-1", "namespace": "shop"}}


def line(time: str, type: str, obj: Any) -> str:
    return json.dumps({"time": time, "type": type, "object": obj})


def write_lines(tmp_path: Path, *lines: str) -> str:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


class TestTimes:
    @pytest.mark.parametrize(
        ("text", "time_ns"),
        [
            ("1970-01-01T00:00:01Z", 1_000_000_000),
            ("1970-01-01T00:00:00.000000001Z", 1),
            ("1970-01-01T01:00:00+01:00", 0),
            ("2026-11-20T09:15:02.5z", 1_795_166_102_500_000_000),
        ],
    )
    def test_rfc3339_to_ns(self, text: str, time_ns: int) -> None:
        """RFC 3339 times with offsets parse to epoch nanoseconds, fraction kept to the nanosecond."""
        assert parse_rfc3339_ns(text) == time_ns

    def test_time_without_offset_is_rejected(self) -> None:
        """A local time without an offset is ambiguous and rejected."""
        with pytest.raises(ValueError, match="offset"):
            parse_rfc3339_ns("2026-11-20T09:15:02")

    def test_format_roundtrip(self) -> None:
        """Formatting then parsing gives the same nanoseconds."""
        assert parse_rfc3339_ns(format_rfc3339_ns(1_795_166_102_000_000_123)) == 1_795_166_102_000_000_123


class TestLoad:
    def test_good_lines_become_changes_in_order(self, tmp_path: Path) -> None:
        """Each line becomes a Change with its time, type and converted object."""
        path = write_lines(
            tmp_path,
            line("2026-11-20T09:00:00Z", "ADDED", POLICY),
            "",
            "# a comment",
            line("2026-11-20T09:05:00Z", "DELETED", POD),
        )
        changes = load_cluster_events(path)
        assert [c.type for c in changes] == [ChangeType.ADDED, ChangeType.DELETED]
        assert isinstance(changes[0].obj, NetworkPolicy)
        assert isinstance(changes[1].obj, Pod)
        assert changes[1].time_ns - changes[0].time_ns == 300 * 1_000_000_000

    @pytest.mark.parametrize(
        ("bad", "message"),
        [
            ("{not json", "invalid JSON"),
            ("[1, 2]", "expected a JSON object, got list"),
            (line("yesterday", "ADDED", POD), "time: not an RFC 3339 time"),
            (
                line("2026-11-20T09:00:00Z", "UPDATED", POD),
                "type: expected ADDED, MODIFIED or DELETED, got str 'UPDATED'",
            ),
            (line("2026-11-20T09:00:00Z", "ADDED", None), "object: expected a Kubernetes object, got null"),
            (
                line("2026-11-20T09:00:00Z", "ADDED", {**POD, "metadata": {"namespace": "shop"}}),
                "metadata.name",
            ),
        ],
    )
    def test_bad_line_names_file_line_and_problem(self, tmp_path: Path, bad: str, message: str) -> None:
        """The first bad line raises ManifestError with file:line and what is wrong."""
        path = write_lines(tmp_path, line("2026-11-20T09:00:00Z", "ADDED", POD), bad)
        with pytest.raises(ManifestError) as caught:
            load_cluster_events(path)
        assert (caught.value.path, caught.value.line) == (path, 2)
        assert message in str(caught.value)

    def test_unsupported_kinds_are_skipped(self, tmp_path: Path) -> None:
        """Objects auditor does not track are skipped, not errors."""
        configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}}
        path = write_lines(tmp_path, line("2026-11-20T09:00:00Z", "ADDED", configmap))
        assert load_cluster_events(path) == []


class TestIterate:
    def test_bad_lines_are_counted_and_skipped(self, tmp_path: Path) -> None:
        """The daemon's iterator counts bad lines and unsupported kinds and goes on."""
        configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
        path = write_lines(
            tmp_path,
            "{broken",
            line("2026-11-20T09:00:00Z", "ADDED", POD),
            line("2026-11-20T09:00:01Z", "ADDED", configmap),
            line("2026-11-20T09:00:02Z", "MODIFIED", POLICY),
        )
        stats = EventFileStats()
        changes = list(iter_cluster_events(path, stats))
        assert [c.type for c in changes] == [ChangeType.ADDED, ChangeType.MODIFIED]
        assert (stats.changes, stats.bad_lines) == (2, 1)
        assert stats.errors[0].startswith(f"{path}:1: invalid JSON")
        assert stats.skipped_kinds == {"v1/ConfigMap": 1}


class TestWrite:
    def test_written_lines_load_back(self, tmp_path: Path) -> None:
        """write_cluster_event produces lines load_cluster_events reads back identically."""
        buffer = io.StringIO()
        write_cluster_event(buffer, 1_795_166_102_123_456_789, ChangeType.ADDED, POLICY)
        write_cluster_event(buffer, datetime(2026, 11, 20, 9, 20, tzinfo=UTC), "DELETED", POD)
        path = tmp_path / "recorded.jsonl"
        path.write_text(buffer.getvalue())
        changes = load_cluster_events(str(path))
        assert [(c.time_ns, c.type) for c in changes] == [
            (1_795_166_102_123_456_789, ChangeType.ADDED),
            (parse_rfc3339_ns("2026-11-20T09:20:00Z"), ChangeType.DELETED),
        ]
        assert json.loads(buffer.getvalue().splitlines()[0])["time"] == "2026-11-20T09:15:02.123456789Z"

    def test_naive_datetime_is_refused(self) -> None:
        """A datetime without a timezone cannot be written as RFC 3339."""
        with pytest.raises(ValueError, match="timezone-aware"):
            write_cluster_event(io.StringIO(), datetime(2026, 11, 20), ChangeType.ADDED, POD)


class TestShopFixture:
    def test_shop_events_follow_the_shop_manifests(self) -> None:
        """The shop events fixture loads, skips its unsupported kind, and changes objects of the manifests."""
        stats = EventFileStats()
        changes = list(iter_cluster_events(str(FIXTURES / "cluster-events" / "shop.jsonl"), stats))
        assert (stats.changes, stats.bad_lines, dict(stats.skipped_kinds)) == (4, 0, {"v1/Event": 1})
        keys = {getattr(o, "key", o.name) for o in load_manifests([str(FIXTURES / "manifests" / "shop")])}
        changed = [(c.type, getattr(c.obj, "key", c.obj.name)) for c in changes]
        assert [key in keys for _, key in changed] == [True, True, False, True]

    def test_gzip_files_are_read(self, tmp_path: Path) -> None:
        """A .gz events file reads like the plain one."""
        plain = (FIXTURES / "cluster-events" / "shop.jsonl").read_bytes()
        packed = tmp_path / "shop.jsonl.gz"
        packed.write_bytes(gzip.compress(plain))
        assert load_cluster_events(str(packed)) == load_cluster_events(
            str(FIXTURES / "cluster-events" / "shop.jsonl")
        )
