"""Plain-text pieces every format shares: times, durations, percentages, endpoints, ports."""

from __future__ import annotations

from auditor.kube.events import format_rfc3339_ns
from auditor.model.findings import Finding

NONE = "-"


def time_text(time_ns: int) -> str:
    """RFC 3339 UTC, or "-" for 0 (unknown)."""
    return format_rfc3339_ns(time_ns) if time_ns else NONE


def time_or_none(time_ns: int) -> str | None:
    return format_rfc3339_ns(time_ns) if time_ns else None


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


def port_text(port: int, protocol: str) -> str:
    if port:
        return f"{port}/{protocol}" if protocol else str(port)
    return protocol or NONE


def peer_text(finding: Finding) -> str:
    return finding.peer_workload or finding.peer or NONE


def details_text(finding: Finding) -> str:
    return "; ".join(f"{key}={value}" for key, value in finding.details)
