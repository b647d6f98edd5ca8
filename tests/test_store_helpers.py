"""Shared builders for the store tests (this module holds no tests itself)."""

from __future__ import annotations

from auditor.model.findings import Finding, FindingKind, Severity
from auditor.store import HOUR_NS, CounterRow

T0 = 1_700_000_000_000_000_000
"""A realistic flow time (Nov 2023), in ns."""


def finding(
    kind: FindingKind = FindingKind.POLICY_DROP,
    *,
    namespace: str = "shop",
    workload: str = "api",
    peer_workload: str = "shop/web",
    port: int = 8080,
    count: int = 1,
    first: int = T0,
    last: int = T0,
    message: str = "web cannot reach api on 8080/TCP: no ingress rule allows it.",
    severity: Severity = Severity.MEDIUM,
    **extra: object,
) -> Finding:
    """A finding with sensible defaults; `extra` sets any other Finding field."""
    return Finding(
        kind=kind,
        severity=severity,
        namespace=namespace,
        workload=workload,
        message=message,
        peer_workload=peer_workload,
        port=port,
        protocol="TCP",
        direction="ingress",
        count=count,
        first_seen_ns=first,
        last_seen_ns=last,
        **extra,  # type: ignore[arg-type]
    )


def counter(
    hour: int = 0,
    *,
    namespace: str = "shop",
    workload: str = "api",
    verdict: str = "DROPPED",
    direction: str = "ingress",
    policy: str = "shop/deny-all",
    count: int = 1,
) -> CounterRow:
    """A counter row `hour` hours after T0's hour."""
    hour_ns = T0 - T0 % HOUR_NS + hour * HOUR_NS
    return CounterRow(hour_ns, namespace, workload, verdict, direction, policy, count)
