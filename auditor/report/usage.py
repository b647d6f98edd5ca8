"""Which policy rules decided the observed traffic: a recording wrapper around the policy engine.

The correlator asks its decider once per distinct judged connection (it caches outcomes per
endpoints, port and state revision).  `RuleUsageRecorder` passes every question to the real
engine and counts, per enforced side of the answer, each rule that admitted the connection and
each policy that isolated a denied one: counts of connections, not of flows.  A rule no flow
matched over a whole capture is a candidate for removal; the report lists them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from auditor.findings.correlate import Decider
from auditor.model.decision import Decision, Enforcement, SideDecision, Subject
from auditor.policy.state import ClusterState

RuleKey = tuple[str, str, str, int]
"""(namespace, policy name, Ingress|Egress, rule index)."""
PolicyKey = tuple[str, str]


def _empty_rules() -> Mapping[RuleKey, int]:
    return MappingProxyType({})


def _empty_policies() -> Mapping[PolicyKey, int]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RuleUsage:
    """Flows admitted per rule and denied flows isolated per policy, over one analysis."""

    rules: Mapping[RuleKey, int] = field(default_factory=_empty_rules)
    isolating: Mapping[PolicyKey, int] = field(default_factory=_empty_policies)

    def rule_hits(self, namespace: str, name: str, direction: str, index: int) -> int:
        return self.rules.get((namespace, name, direction, index), 0)

    def isolating_hits(self, namespace: str, name: str) -> int:
        return self.isolating.get((namespace, name), 0)


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
        for match in side.allowed_by:
            self._rules[(match.policy.namespace, match.policy.name, direction, match.rule_index)] += 1
        if not side.allowed:
            for policy in side.isolated_by:
                self._isolating[(policy.namespace, policy.name)] += 1

    def usage(self) -> RuleUsage:
        """A frozen copy of what was recorded so far."""
        return RuleUsage(MappingProxyType(dict(self._rules)), MappingProxyType(dict(self._isolating)))
