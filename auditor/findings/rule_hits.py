"""Which rules decided a flow: the keys the session counts per hour into `AnalysisDelta.rule_hits`.

Per enforced side of a decision: each rule that admitted the connection, each deny rule (Cilium's
ingressDeny/egressDeny) that denied it, and, when the side was denied, each policy that isolated
it (direction and path ""). The store keeps these per hour so a store-mode report can list the
rules that decided no flow in its window, as a files-mode report does from its own analysis.
"""

from __future__ import annotations

from auditor.model.decision import Decision, Enforcement
from auditor.model.delta import RuleHitKey


def rule_hit_keys(decision: Decision) -> tuple[RuleHitKey, ...]:
    """The rule and isolation keys of the enforced sides of `decision`, egress first."""
    keys: list[RuleHitKey] = []
    for side, direction in ((decision.egress, "Egress"), (decision.ingress, "Ingress")):
        if side.enforcement is not Enforcement.ENFORCED:
            continue
        for match in (*side.allowed_by, *side.denied_by):
            policy = match.policy
            keys.append((policy.namespace, policy.name, policy.kind, direction, match.path))
        if not side.allowed:
            keys.extend((p.namespace, p.name, p.kind, "", "") for p in side.isolated_by)
    return tuple(keys)
