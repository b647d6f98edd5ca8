"""Which policy rules decided the observed traffic: a recording wrapper around the policy engine.

The correlator asks its decider once per distinct judged connection (it caches outcomes per
endpoints, port and state revision).  `RuleUsageRecorder` passes every question to the real
engine and counts, per enforced side of the answer, each rule that admitted the connection, each
deny rule (Cilium's ingressDeny/egressDeny) that denied it, and each policy that isolated a
denied one: counts of connections, not of flows.  A rule no flow matched over a whole capture is
a candidate for removal; the report lists them.  Policies are keyed with their kind, since a
NetworkPolicy and a CiliumNetworkPolicy may share a namespace and name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from auditor.findings.correlate import Decider
from auditor.model.decision import KNP_KIND, Decision, Enforcement, PolicyId, RuleMatch, SideDecision, Subject
from auditor.policy.state import ClusterState

RuleKey = tuple[str, str, str, str, str]
"""(namespace, policy name, Ingress|Egress, rule path, policy kind).  The rule path is
`RuleMatch.path`: `rule 0` for a NetworkPolicy rule, `ingress[0]`, `specs[1].egressDeny[0]` for
Cilium's."""
PolicyKey = tuple[str, str, str]
"""(namespace, policy name, policy kind); namespace "" for a CiliumClusterwideNetworkPolicy."""


def _empty_rules() -> Mapping[RuleKey, int]:
    return MappingProxyType({})


def _empty_policies() -> Mapping[PolicyKey, int]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RuleUsage:
    """Flows admitted (or denied) per rule and denied flows isolated per policy, over one analysis."""

    rules: Mapping[RuleKey, int] = field(default_factory=_empty_rules)
    isolating: Mapping[PolicyKey, int] = field(default_factory=_empty_policies)

    def rule_hits(self, namespace: str, name: str, direction: str, index: int) -> int:
        """Connections rule `index` of NetworkPolicy namespace/name admitted in `direction`."""
        policy = PolicyId(namespace, name)
        return self.path_hits(policy, direction, RuleMatch(policy, index).path)

    def path_hits(self, policy: PolicyId, direction: str, path: str) -> int:
        """Connections the rule at `path` (`RuleMatch.path`) of `policy` (any kind) decided."""
        return self.rules.get((policy.namespace, policy.name, direction, path, policy.kind), 0)

    def isolating_hits(self, namespace: str, name: str, kind: str = KNP_KIND) -> int:
        return self.isolating.get((namespace, name, kind), 0)


class RuleUsageRecorder:
    """A `Decider` that records rule usage; see the module docstring."""

    def __init__(self, engine: Decider) -> None:
        self._engine = engine
        self._rules: Counter[RuleKey] = Counter()
        self._isolating: Counter[PolicyKey] = Counter()

    def decide(self, state: ClusterState, source: Subject, destination: Subject, port: int,
               protocol: str = "TCP") -> Decision:
        decision = self._engine.decide(state, source, destination, port, protocol)
        self._record(decision.egress, "Egress")
        self._record(decision.ingress, "Ingress")
        return decision

    def _record(self, side: SideDecision, direction: str) -> None:
        if side.enforcement is not Enforcement.ENFORCED:
            return
        for match in (*side.allowed_by, *side.denied_by):
            policy = match.policy
            self._rules[(policy.namespace, policy.name, direction, match.path, policy.kind)] += 1
        if not side.allowed:
            for policy in side.isolated_by:
                self._isolating[(policy.namespace, policy.name, policy.kind)] += 1

    def usage(self) -> RuleUsage:
        """A frozen copy of what was recorded so far."""
        return RuleUsage(MappingProxyType(dict(self._rules)), MappingProxyType(dict(self._isolating)))
