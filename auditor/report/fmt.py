"""Plain-text pieces every format shares: times, durations, percentages, endpoints, ports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from auditor.model.findings import Finding

NONE = "-"
UNKNOWN_USAGE_NOTE = (" (rule-level usage unknown: the store has no rule hits for some hours of the window,"
                      " written by an auditor that did not record them)")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def rfc3339_ms(time_ns: int) -> str:
    """RFC 3339 UTC with exactly three fraction digits (milliseconds, truncated): every time in a
    report has the same width and sorts as text (`2026-11-20T10:09:45.010Z`)."""
    millis, _ = divmod(time_ns, 1_000_000)
    seconds, fraction = divmod(millis, 1000)
    return f"{(_EPOCH + timedelta(seconds=seconds)).strftime('%Y-%m-%dT%H:%M:%S')}.{fraction:03d}Z"


def time_text(time_ns: int) -> str:
    """RFC 3339 UTC at millisecond precision, or "-" for 0 (unknown)."""
    return rfc3339_ms(time_ns) if time_ns else NONE


def time_or_none(time_ns: int) -> str | None:
    return rfc3339_ms(time_ns) if time_ns else None


def plural(count: int, singular: str, plural_form: str = "") -> str:
    """`1 pod`, `2 pods`, `0 pods`; irregular plurals given (`1 policy`, `3 policies`)."""
    return f"{count} {singular if count == 1 else (plural_form or singular + 's')}"


def generated_text(generated_at_ns: int, version: str) -> str:
    """`2026-11-20T12:00:00.000Z by auditor 0.1.0`; either part may be missing (--reproducible)."""
    parts = [time_text(generated_at_ns)] if generated_at_ns else []
    if version:
        parts.append(f"by auditor {version}")
    return " ".join(parts)


def duration_text(duration_ns: int) -> str:
    """e.g. 2d 3h 4m 5s; 0s; sub-second spans as milliseconds."""
    if duration_ns < 1_000_000_000:
        return f"{duration_ns // 1_000_000}ms" if duration_ns else "0s"
    seconds = duration_ns // 1_000_000_000
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, seconds = divmod(seconds, size)
        if amount or (unit == "s" and not parts):
            parts.append(f"{amount}{unit}")
    return " ".join(parts)


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "n/a"


def fraction_text(fraction: float | None) -> str:
    return f"{100 * fraction:.1f}%" if fraction is not None else "n/a"


def where(finding: Finding) -> str:
    """namespace/workload of the finding's subject."""
    return "/".join(part for part in (finding.namespace, finding.workload) if part)


def port_cell(port: int) -> str:
    """A port for a table or CSV cell: empty for a finding without a port (not `0`)."""
    return str(port) if port else ""


def port_text(port: int, protocol: str) -> str:
    if port:
        return f"{port}/{protocol}" if protocol else str(port)
    return protocol or NONE


def peer_text(finding: Finding) -> str:
    return finding.peer_workload or finding.peer or NONE


def details_text(finding: Finding) -> str:
    return "; ".join(f"{key}={value}" for key, value in finding.details)
