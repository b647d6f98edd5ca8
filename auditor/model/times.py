"""RFC 3339 times <-> nanoseconds since the Unix epoch: the one leaf every layer parses and prints times with.

Pure functions (no clock): the cluster-events reader, the command line's `--from/--to` and explain's
`--at` read times with `parse_rfc3339_ns`; `format_rfc3339_ns` is its inverse.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

_RFC3339 = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<clock>\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d{1,9}))?"
    r"(?P<offset>[Zz]|[+-]\d{2}:\d{2})$"
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_rfc3339_ns(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 timestamp; ValueError when it is not one."""
    match = _RFC3339.match(text)
    if not match:
        raise ValueError(f"not an RFC 3339 time with offset: {text!r}")
    offset = match["offset"]
    zone = UTC
    if offset not in ("Z", "z"):
        sign = 1 if offset[0] == "+" else -1
        zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    moment = datetime.fromisoformat(f"{match['date']}T{match['clock']}").replace(tzinfo=zone)
    seconds = (moment - EPOCH) // timedelta(seconds=1)
    nanos = int((match["fraction"] or "0").ljust(9, "0"))
    return seconds * 1_000_000_000 + nanos


def format_rfc3339_ns(time_ns: int) -> str:
    """UTC RFC 3339 with nanoseconds (trailing zeros trimmed), the inverse of `parse_rfc3339_ns`."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    stamp = (EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f".{nanos:09d}".rstrip("0") if nanos else ""
    return f"{stamp}{fraction}Z"
