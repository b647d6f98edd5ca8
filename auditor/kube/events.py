"""`--cluster-events` files: timestamped inventory changes, one JSON object per line.

    {"time": "2026-11-20T09:15:02.5Z", "type": "MODIFIED", "object": {<Kubernetes object>}}

`time` is RFC 3339 with an explicit offset (nanoseconds kept); `type` is ADDED, MODIFIED or
DELETED; `object` is a Namespace, Pod, Node, Service, EndpointSlice, NetworkPolicy, CiliumNetworkPolicy,
CiliumClusterwideNetworkPolicy or CiliumCIDRGroup (other kinds are skipped and counted).  Blank
lines and lines starting with `#` are ignored; `.gz` files are decompressed.  Changes come back in
file order.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from auditor.errors import ManifestError
from auditor.kube.convert import is_supported, kind_of, object_from_dict
from auditor.kube.fields import TOO_DEEP, describe
from auditor.model.k8s import Change, ChangeType
from auditor.model.times import EPOCH as _EPOCH
from auditor.model.times import format_rfc3339_ns, parse_rfc3339_ns

__all__ = ["format_rfc3339_ns", "parse_rfc3339_ns"]  # moved to auditor.model.times; kept importable here

MAX_KEPT_ERRORS = 100


@dataclass
class EventFileStats:
    """What `iter_cluster_events` read; mutated while iterating."""

    changes: int = 0
    bad_lines: int = 0
    errors: list[str] = field(default_factory=list)
    """The first MAX_KEPT_ERRORS bad-line messages, each with file:line."""
    skipped_kinds: Counter[str] = field(default_factory=Counter)

    def record_error(self, error: ManifestError) -> None:
        self.bad_lines += 1
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append(str(error))


def parse_event_line(line: str, *, where: str) -> Change | None:
    """One line to a Change; None for blank lines, comments and unsupported kinds."""
    change = _parse(line, where)
    return change if isinstance(change, Change) else None


def _parse(line: str, where: str) -> Change | str | None:
    """A Change, the apiVersion/kind of an unsupported object, or None for blank lines and comments."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _error(where, f"invalid JSON: {exc.msg} (column {exc.colno})") from exc
    except RecursionError as exc:
        raise _error(where, f"invalid JSON: {TOO_DEEP}") from exc
    if not isinstance(record, Mapping):
        raise _error(where, f"expected a JSON object, got {describe(record)}")
    time_ns = _time_ns(record.get("time"), where)
    change_type = _change_type(record.get("type"), where)
    obj = record.get("object")
    if not isinstance(obj, Mapping):
        raise _error(where, f"object: expected a Kubernetes object, got {describe(obj)}")
    if not is_supported(obj):
        return kind_of(obj)
    return Change(time_ns=time_ns, type=change_type, obj=object_from_dict(obj, where=where))


def _time_ns(value: Any, where: str) -> int:
    if not isinstance(value, str):
        raise _error(where, f"time: expected an RFC 3339 string, got {describe(value)}")
    try:
        return parse_rfc3339_ns(value)
    except ValueError as exc:
        raise _error(where, f"time: {exc}") from exc


def _change_type(value: Any, where: str) -> ChangeType:
    try:
        return ChangeType(value)
    except ValueError:
        raise _error(where, f"type: expected ADDED, MODIFIED or DELETED, got {describe(value)}") from None


def _error(where: str, message: str) -> ManifestError:
    path, _, line = where.rpartition(":")
    return ManifestError(message, path=path, line=int(line))


def iter_cluster_events(path: str, stats: EventFileStats | None = None) -> Iterator[Change]:
    """Changes in file order; bad lines are counted in `stats` and skipped (for the daemon)."""
    stats = stats if stats is not None else EventFileStats()
    for number, line in _lines(path):
        try:
            change = _parse(line, f"{path}:{number}")
        except ManifestError as exc:
            stats.record_error(exc)
            continue
        if isinstance(change, str):
            stats.skipped_kinds[change] += 1
        elif change is not None:
            stats.changes += 1
            yield change


def load_cluster_events(path: str) -> list[Change]:
    """Every change in the file; the first bad line raises ManifestError with file:line and the problem."""
    changes = []
    for number, line in _lines(path):
        change = parse_event_line(line, where=f"{path}:{number}")
        if change is not None:
            changes.append(change)
    return changes


def _lines(path: str) -> Iterator[tuple[int, str]]:
    """Numbered lines; a `.gz` file is decompressed."""
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as handle:
            yield from enumerate(handle, start=1)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read: {exc}", path=path) from exc


def write_cluster_event(
    fp: IO[str], change_time: int | datetime, type: ChangeType | str, obj_dict: Mapping[str, Any]
) -> None:
    """Append one `--cluster-events` line.  `change_time` is ns since the epoch or an aware datetime."""
    if isinstance(change_time, datetime):
        if change_time.tzinfo is None:
            raise ValueError("change_time must be timezone-aware")
        delta = change_time - _EPOCH
        change_time = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    record = {
        "time": format_rfc3339_ns(change_time),
        "type": ChangeType(type).value,
        "object": obj_dict,
    }
    fp.write(json.dumps(record, separators=(",", ":"), sort_keys=False) + "\n")
