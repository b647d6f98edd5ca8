"""Findings: what auditor tells people, aggregated so memory stays bounded.

The `FindingKind` values are a public contract (metrics labels, reports, JSON output).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class FindingKind(enum.Enum):
    # Runtime, from flows judged against the policies in force at flow time.
    POLICY_DROP = "policy-drop"
    UNEXPECTED_DROP = "unexpected-drop"
    UNEXPECTED_ALLOW = "unexpected-allow"
    DNS_DENIED = "dns-denied"
    HEALTH_CHECK_BLOCKED = "health-check-blocked"
    UNPROTECTED_POD = "unprotected-pod"
    ATTRIBUTION_MISMATCH = "attribution-mismatch"
    # Static, from the inventory alone.
    NO_DEFAULT_DENY = "no-default-deny"
    MISSING_DNS_EGRESS = "missing-dns-egress"
    ALLOW_ALL_RULE = "allow-all-rule"
    PROBE_PORT_NOT_ALLOWED = "probe-port-not-allowed"
    UNUSED_POLICY = "unused-policy"

    @property
    def is_static(self) -> bool:
        return self in _STATIC_KINDS


_STATIC_KINDS = frozenset(
    {
        FindingKind.NO_DEFAULT_DENY,
        FindingKind.MISSING_DNS_EGRESS,
        FindingKind.ALLOW_ALL_RULE,
        FindingKind.PROBE_PORT_NOT_ALLOWED,
        FindingKind.UNUSED_POLICY,
    }
)


class Severity(enum.Enum):
    """Ordered: compare with `.rank`."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_ORDER.index(self)

    def at_least(self, other: Severity) -> bool:
        return self.rank >= other.rank


_SEVERITY_ORDER = [Severity.INFO, Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]


@dataclass(frozen=True, slots=True)
class FindingKey:
    """The aggregate key: one finding per distinct key, however many flows match it."""

    kind: FindingKind
    namespace: str
    workload: str
    peer_workload: str
    port: int
    protocol: str
    direction: str

    def as_string(self) -> str:
        """A stable text form, used as the store's primary key."""
        return "|".join(
            [
                self.kind.value,
                self.namespace,
                self.workload,
                self.peer_workload,
                str(self.port),
                self.protocol,
                self.direction,
            ]
        )


@dataclass(frozen=True, slots=True)
class Finding:
    """One aggregated finding."""

    kind: FindingKind
    severity: Severity
    namespace: str
    workload: str
    message: str
    """One sentence a person can act on."""
    pod: str = ""
    """A sample pod of the workload ("" for namespace- or policy-level findings)."""
    peer: str = ""
    """namespace/pod, an IP, or a reserved identity such as reserved:host."""
    peer_workload: str = ""
    port: int = 0
    protocol: str = ""
    direction: str = ""
    """ingress, egress or "" when not directional."""
    policies: tuple[str, ...] = ()
    """namespace/name@revision of the policies that decided (or isolated) it."""
    count: int = 1
    first_seen_ns: int = 0
    last_seen_ns: int = 0
    sample_flow: str = ""
    """uuid of a flow behind the finding, or its time when it had no uuid."""
    details: tuple[tuple[str, str], ...] = field(default=())
    """Extra kind-specific facts (dns query, probe, closest miss), as ordered pairs."""

    @property
    def key(self) -> FindingKey:
        return FindingKey(
            kind=self.kind,
            namespace=self.namespace,
            workload=self.workload,
            peer_workload=self.peer_workload,
            port=self.port,
            protocol=self.protocol,
            direction=self.direction,
        )

    def detail(self, name: str, default: str = "") -> str:
        for key, value in self.details:
            if key == name:
                return value
        return default


MAX_POLICIES_PER_FINDING = 8
"""Policies kept per finding: the union in first-seen order, so every revision seen stays visible."""


def merge_findings(older: Finding, newer: Finding) -> Finding:
    """The one merge rule for two findings of the same key: `older` arrived first.

    Counts add; first seen is the earliest non-zero, last seen the latest; the highest severity wins;
    the sample flow is the first one; policies are the union in arrival order (at most
    MAX_POLICIES_PER_FINDING); message, pod and peer come from the one seen last (the larger
    last_seen, `newer` on a tie), and so does a detail both carry.  The rule is associative, so a
    finding merged across flushes (the store) is the finding merged in one pass (`audit`), wherever
    the flushes fall.  The aggregator and the store both use it.
    """
    newer_is_latest = newer.last_seen_ns >= older.last_seen_ns
    latest = newer if newer_is_latest else older
    firsts = [t for t in (older.first_seen_ns, newer.first_seen_ns) if t]
    severity = newer.severity if newer.severity.rank > older.severity.rank else older.severity
    policies = dict.fromkeys(older.policies[:MAX_POLICIES_PER_FINDING])
    for policy in newer.policies:
        if len(policies) >= MAX_POLICIES_PER_FINDING:
            break
        policies.setdefault(policy, None)
    details = dict(older.details)
    for name, value in newer.details:
        if newer_is_latest or name not in details:
            details[name] = value
    return Finding(
        kind=newer.kind, severity=severity, namespace=newer.namespace, workload=newer.workload,
        message=latest.message, pod=latest.pod, peer=latest.peer, peer_workload=newer.peer_workload,
        port=newer.port, protocol=newer.protocol, direction=newer.direction, policies=tuple(policies),
        count=older.count + newer.count, first_seen_ns=min(firsts) if firsts else 0,
        last_seen_ns=max(older.last_seen_ns, newer.last_seen_ns),
        sample_flow=older.sample_flow or newer.sample_flow, details=tuple(details.items()),
    )
