"""The severity of each finding kind (docs/findings.md explains the choices)."""

from __future__ import annotations

from auditor.model.findings import FindingKind, Severity

SEVERITY: dict[FindingKind, Severity] = {
    FindingKind.UNEXPECTED_ALLOW: Severity.HIGH,
    FindingKind.DNS_DENIED: Severity.HIGH,
    FindingKind.HEALTH_CHECK_BLOCKED: Severity.HIGH,
    FindingKind.UNEXPECTED_DROP: Severity.MEDIUM,
    FindingKind.MISSING_DNS_EGRESS: Severity.MEDIUM,
    FindingKind.PROBE_PORT_NOT_ALLOWED: Severity.MEDIUM,
    FindingKind.NO_DEFAULT_DENY: Severity.MEDIUM,
    FindingKind.ALLOW_ALL_RULE: Severity.MEDIUM,
    FindingKind.UNPROTECTED_POD: Severity.MEDIUM,
    FindingKind.ATTRIBUTION_MISMATCH: Severity.MEDIUM,
    FindingKind.POLICY_DROP: Severity.LOW,
    FindingKind.UNUSED_POLICY: Severity.LOW,
}
"""Default severity per kind; the exceptions below adjust it for one finding."""

UNPROTECTED_EGRESS = Severity.LOW
"""An unprotected pod's egress exposes less than its ingress."""

HEALTH_CHECK_NOW_UNREADY = Severity.CRITICAL
"""A blocked probe of a pod that is no longer Ready: the outage has started."""

PROBE_PORT_NODE_NOT_ENFORCED = Severity.LOW
"""probe-port-not-allowed while node traffic is not enforced: probes from the local node still pass."""


def severity_of(kind: FindingKind) -> Severity:
    return SEVERITY[kind]
