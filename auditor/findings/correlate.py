"""The Correlator: each flow judged against the cluster state in force at the flow's own time.

Per flow: classify (selection.py) -> drop the second event of a denied packet -> resolve both
endpoints in `history.at(flow.time_ns)` -> ask the engine (which caches per state revision) ->
build findings (runtime.py, symptoms.py).  It keeps plain in-memory counters (`CorrelatorStats`)
the exporter and summaries read; their key spaces are bounded by the inventory (namespaces,
workloads, policies, probe ports), never by IPs or flow counts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields, replace
from typing import Protocol

from auditor.findings.dns import DnsAnswers, DnsQueryCache, is_refused_by_proxy
from auditor.findings.resolve import Resolution, Resolved, resolve_endpoint
from auditor.findings.rule_hits import rule_hit_keys
from auditor.findings.runtime import (
    Judged,
    attribution_mismatch,
    deciding_side,
    denied_finding,
    is_dns_traffic,
    stamp,
    unexpected_allow,
    unprotected_findings,
)
from auditor.findings.selection import DropDeduplicator, FlowClass, classify
from auditor.findings.symptoms import dns_denied_by_policy, dns_refused, health_check_blocked
from auditor.model.decision import (
    KNP_KIND,
    Decision,
    Enforcement,
    ExternalSubject,
    PodSubject,
    PolicyId,
    RuleMatch,
    SideDecision,
    Subject,
)
from auditor.model.delta import RuleHitKey
from auditor.model.events import FlowEvent
from auditor.model.findings import Finding, FindingKind
from auditor.model.flows import Direction, Flow
from auditor.model.flows import Protocol as L4Protocol
from auditor.policy.state import ClusterState

RESOLVE_CACHE_MAX = 65_536
PolicyVerdictKey = tuple[str, str, str, str, str]
"""(namespace, policy name, direction, allowed|dropped, policy kind)."""
OUTCOME_CACHE_MAX = 16_384
"""Judged outcomes kept per (class, verdict, direction, state revisions, endpoints, port, protocol)."""


_REPLY, _NOT_DECISION, _OTHER_DROP = FlowClass.REPLY, FlowClass.NOT_DECISION, FlowClass.OTHER_DROP
_POLICY_DENIED, _DNS_RESPONSE = FlowClass.POLICY_DENIED, FlowClass.DNS_RESPONSE
_ALLOWED, _AUDITED = FlowClass.ALLOWED, FlowClass.AUDITED
"""Module globals: in Python 3.11 reading an enum member off its class is a Python-level call."""


class StateHistory(Protocol):
    """What the correlator needs of `auditor.policy.history.ClusterHistory`."""

    def at(self, time_ns: int) -> ClusterState: ...

    def latest(self) -> ClusterState: ...


class Decider(Protocol):
    """What the correlator needs of `auditor.policy.engine.PolicyEngine`."""

    def decide(self, state: ClusterState, source: Subject, destination: Subject, port: int,
               protocol: str = "TCP") -> Decision: ...


@dataclass
class CorrelatorStats:
    """Counters since start.  Policy attribution: each enforced side decision counts once, under its
    primary policy (smallest namespace/name among the admitting rules' policies when the dataplane
    allowed, among the isolating policies when it dropped), so a sum over policies counts each such
    decision once.  Decisions no policy made (unisolated side, node traffic, unexpected drops the
    model allows without a rule) are not attributed."""

    flows: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(verdict, direction) of every flow seen."""
    policy_verdicts: Counter[PolicyVerdictKey] = field(default_factory=Counter)
    """(namespace, policy name, direction, action allowed|dropped, policy kind) per judged flow, primary
    policy; namespace "" for a CiliumClusterwideNetworkPolicy."""
    policy_drops: Counter[tuple[str, str, str, bool]] = field(default_factory=Counter)
    """(namespace, workload, direction, expected) of policy drops; expected = the model also denies."""
    dns_denials: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(namespace, workload) of the DNS client."""
    health_check_drops: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    """(namespace, workload, probe port)."""
    skipped: Counter[str] = field(default_factory=Counter)
    """Flows not judged, by reason: reply, not-decision, health, dns-response."""
    other_drops: Counter[str] = field(default_factory=Counter)
    """Drops for non-policy reasons, by drop reason."""
    unresolved: int = 0
    """Decision flows with an endpoint unknown to the inventory at flow time."""
    deduplicated: int = 0
    """Second events (policy-verdict + drop) of a denied packet already counted."""
    judged: int = 0
    """Flows compared with the engine's decision."""
    first_ns: int = 0
    last_ns: int = 0

    def snapshot(self) -> CorrelatorStats:
        """A copy for readers on other threads (each mapping is copied in one C-level step)."""
        return CorrelatorStats(
            flows=Counter(dict(self.flows)), policy_verdicts=Counter(dict(self.policy_verdicts)),
            policy_drops=Counter(dict(self.policy_drops)), dns_denials=Counter(dict(self.dns_denials)),
            health_check_drops=Counter(dict(self.health_check_drops)), skipped=Counter(dict(self.skipped)),
            other_drops=Counter(dict(self.other_drops)), unresolved=self.unresolved,
            deduplicated=self.deduplicated, judged=self.judged, first_ns=self.first_ns, last_ns=self.last_ns,
        )


class Correlator:
    """Turns flow events into findings; see the module docstring."""

    def __init__(self, history: StateHistory, engine: Decider, *, dedup: DropDeduplicator | None = None,
                 dns_cache: DnsQueryCache | None = None) -> None:
        self._history = history
        self._engine = engine
        self._dedup = dedup or DropDeduplicator()
        self._dns = dns_cache or DnsQueryCache()
        self._answers = DnsAnswers()
        self._resolved: dict[tuple[object, ...], tuple[Resolved, tuple[object, ...]]] = {}
        self._outcomes: dict[tuple[object, ...], _Outcome] = {}
        self.stats = CorrelatorStats()
        self.last_verdict: PolicyVerdictKey | None = None
        """The policy attribution `process` counted for its flow (None when none): the session
        counts it again in the flow's own hour."""
        self.last_rules: tuple[RuleHitKey, ...] = ()
        """The rules that decided `process`'s flow (empty when it was not judged), for the session."""
        self.last_connection: tuple[FlowClass, Resolved, Resolved] | None = None
        """The class and resolved endpoints of `process`'s flow when it was judged (None otherwise):
        the session folds them into distinct connections (`connections.ConnectionTally`)."""

    def process(self, event: FlowEvent) -> list[Finding]:
        """Findings supported by one event (LostEvents and NodeStatus yield none)."""
        self.last_verdict = None
        self.last_rules = ()
        self.last_connection = None
        if not isinstance(event, Flow):
            return []
        flow = event
        kind = self._admit(flow)
        if kind is None:
            return []
        state = self._history.at(flow.time_ns)
        src, src_key = self._resolve(flow, state, source=True)
        dst, dst_key = self._with_answers(flow, self._resolve(flow, state, source=False))
        if kind is _DNS_RESPONSE:
            return self._dns_response(flow, state, src, dst)
        if Resolution.HEALTH in (src.resolution, dst.resolution):
            self.stats.skipped["health"] += 1
            return []
        if src.subject is None or dst.subject is None:
            self.stats.unresolved += 1
            return []
        self.stats.judged += 1
        self.last_connection = (kind, src, dst)
        if not _cacheable(flow):
            return self._apply(self._judge(kind, flow, state, src, dst))
        # Enum members by id(): Python 3.11's Enum.__hash__ is a Python-level call, four per flow here.
        latest = self._history.latest().revision
        key = (id(kind), id(flow.verdict), id(flow.direction), state.revision, latest, src_key, dst_key,
               flow.source.ip, flow.destination.ip, flow.destination.port, id(flow.protocol), flow.icmp_type)
        outcome = self._outcomes.get(key)
        if outcome is None:
            if len(self._outcomes) >= OUTCOME_CACHE_MAX:
                self._outcomes.clear()
            outcome = self._judge(kind, flow, state, src, dst)
            self._outcomes[key] = outcome
            return self._apply(outcome)
        return [stamp(template, flow) for template in self._apply(outcome)]

    def _admit(self, flow: Flow) -> FlowClass | None:
        """Count the flow; its class when it is to be judged, None when it is skipped or a duplicate."""
        stats = self.stats
        stats.flows[(flow.verdict._value_, flow.direction._value_)] += 1  # ._value_: no descriptor call
        time_ns = flow.time_ns
        if not stats.first_ns or time_ns < stats.first_ns:
            stats.first_ns = time_ns
        if time_ns > stats.last_ns:
            stats.last_ns = time_ns
        if flow.l7 is not None and flow.l7.dns is not None:
            self._dns.observe(flow)
            self._answers.observe(flow)
        kind = flow.flow_class  # the light conversion classified it already
        if kind is None:
            kind = classify(flow)
        if kind is _REPLY or kind is _NOT_DECISION:
            stats.skipped[kind.value] += 1
            return None
        if kind is _OTHER_DROP:
            stats.other_drops[flow.drop_reason or "unknown"] += 1
            return None
        if kind is _POLICY_DENIED and self._dedup.is_duplicate(flow):
            stats.deduplicated += 1
            return None
        return kind

    def _resolve(self, flow: Flow, state: ClusterState, *, source: bool) -> tuple[Resolved, tuple[object, ...]]:
        """The endpoint resolved in `state`, and its `resolved_key` (computed once per resolution)."""
        endpoint = flow.source if source else flow.destination
        key = (state.revision, endpoint.ip, endpoint.namespace, endpoint.pod_name, endpoint.identity,
               endpoint.labels, endpoint.names, flow.node_name)
        hit = self._resolved.get(key)
        if hit is None:
            if len(self._resolved) >= RESOLVE_CACHE_MAX:
                self._resolved.clear()
            resolved = resolve_endpoint(endpoint, flow.node_name, state)
            hit = (resolved, resolved_key(resolved))
            self._resolved[key] = hit
        return hit

    def _with_answers(self, flow: Flow, resolved: tuple[Resolved, tuple[object, ...]]
                      ) -> tuple[Resolved, tuple[object, ...]]:
        """An external destination with the names its client resolved to it (for toFQDNs rules), and
        the `resolved_key` of the value returned."""
        dst = resolved[0]
        subject = dst.subject
        if not len(self._answers) or not isinstance(subject, ExternalSubject) or not subject.ip:
            return resolved
        names = self._answers.names_for(flow.source.ip, subject.ip, flow.time_ns)
        if not names or set(names) <= set(subject.names):
            return resolved
        merged = tuple(sorted({*subject.names, *names}))
        named = replace(dst, subject=replace(subject, names=merged))
        return named, resolved_key(named)

    def _judge(self, kind: FlowClass, flow: Flow, state: ClusterState, src: Resolved, dst: Resolved
               ) -> _Outcome:
        source, destination = src.subject, dst.subject
        assert source is not None
        assert destination is not None
        port, protocol = policy_l4(flow)
        decision = self._engine.decide(state, source, destination, port, protocol)
        side = deciding_side(flow, decision, dst.pod_subject is not None)
        judged = Judged(flow, src, dst, decision, side)
        if judged.side_decision.undecided:
            return _Outcome((), skipped=f"undecided-{judged.side_decision.undecided}")
        if kind is _ALLOWED:
            outcome = self._allowed(judged, state)
        else:
            outcome = self._denied(judged, audited=kind is _AUDITED)
        return replace(outcome, rules=rule_hit_keys(decision))

    def _apply(self, outcome: _Outcome) -> list[Finding]:
        """Count one occurrence of `outcome` in the stats; its findings."""
        stats = self.stats
        if outcome.skipped:
            stats.skipped[outcome.skipped] += 1
            return []
        self.last_rules = outcome.rules
        if outcome.verdict_key is not None:
            stats.policy_verdicts[outcome.verdict_key] += 1
            self.last_verdict = outcome.verdict_key
        if outcome.drop_key is not None:
            stats.policy_drops[outcome.drop_key] += 1
        if outcome.dns_key is not None:
            stats.dns_denials[outcome.dns_key] += 1
        if outcome.health_key is not None:
            stats.health_check_drops[outcome.health_key] += 1
        return list(outcome.findings)

    def _dns_response(self, flow: Flow, state: ClusterState, src: Resolved, dst: Resolved) -> list[Finding]:
        if not is_refused_by_proxy(flow):
            self.stats.skipped["dns-response"] += 1
            return []
        finding = dns_refused(flow, dst, src, self._dns.query_for(flow), self._dns_rules(flow, state, src, dst))
        if finding is None:
            self.stats.unresolved += 1
            return []
        self.stats.dns_denials[(finding.namespace, finding.workload)] += 1
        return [finding]

    def _dns_rules(self, flow: Flow, state: ClusterState, server: Resolved, client: Resolved
                   ) -> tuple[RuleMatch, ...]:
        """The client's egress rules that hand its lookup to Cilium's DNS proxy (the REFUSED is theirs)."""
        if server.subject is None or client.subject is None:
            return ()
        protocol = "TCP" if flow.protocol is L4Protocol.TCP else "UDP"
        decision = self._engine.decide(state, client.subject, server.subject, flow.source.port or 53, protocol)
        return tuple(m for m in decision.egress.allowed_by if m.l7 == "dns")

    def _allowed(self, judged: Judged, state: ClusterState) -> _Outcome:
        found = unprotected_findings(judged)
        if not judged.model_allows:
            found.append(unexpected_allow(judged, lambda kind, ns, name: has_policy(state, kind, ns, name)))
        else:
            mismatch = attribution_mismatch(judged)
            if mismatch is not None:
                found.append(mismatch)
        return _Outcome(tuple(found), verdict_key=_verdict_key(judged, allowed=True))

    def _denied(self, judged: Judged, *, audited: bool) -> _Outcome:
        main = denied_finding(judged, audited=audited)
        if audited:
            # Audit mode let the packet through: nothing was blocked, so no dns-denied or
            # health-check-blocked, and no drop is counted.  The policy-drop marked audit-mode
            # says what enforcement would break.
            return _Outcome((main,))
        found = [main]
        expected = main.kind is FindingKind.POLICY_DROP
        mismatch = attribution_mismatch(judged) if not judged.model_allows else None
        if mismatch is not None:
            found.append(mismatch)
        dns_key = health_key = None
        if is_dns_traffic(judged.flow):
            dns = dns_denied_by_policy(judged, self._dns.query_for(judged.flow))
            if dns is not None:
                dns_key = (dns.namespace, dns.workload)
                found.append(dns)
        target = judged.dst.pod_subject
        if target is not None and judged.side is Direction.INGRESS:
            # Only the target's ingress stands between a prober and the probed port; a drop by the
            # client's egress policy blocks that client, not the target's health checks.
            latest = self._history.latest().pod(target.pod.namespace, target.pod.name)
            health = health_check_blocked(judged, latest)
            if health is not None:
                health_key = (health.namespace, health.workload, health.port)
                found.append(health)
        return _Outcome(tuple(found), verdict_key=_verdict_key(judged, allowed=False),
                        drop_key=(main.namespace, main.workload, main.direction, expected),
                        dns_key=dns_key, health_key=health_key)


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What one judged flow yields: findings (stamped with its time) and the counters it bumps."""

    findings: tuple[Finding, ...]
    verdict_key: PolicyVerdictKey | None = None
    drop_key: tuple[str, str, str, bool] | None = None
    dns_key: tuple[str, str] | None = None
    health_key: tuple[str, str, int] | None = None
    skipped: str = ""
    """A reason the flow could not be judged (`undecided-fqdn`): counted in `skipped`, no findings."""
    rules: tuple[RuleHitKey, ...] = ()
    """The rules and isolating policies that decided it (`rule_hit_keys`), for per-hour rule usage."""


_ICMP_PROTOCOLS = {L4Protocol.ICMPV4: "ICMP", L4Protocol.ICMPV6: "ICMPv6"}


_RESOLVED_FIELDS = tuple(f.name for f in fields(Resolved))


def resolved_key(resolved: Resolved) -> tuple[object, ...]:
    """The outcome cache's key of a resolved endpoint, derived from the value itself: every field of
    `Resolved`, so a field added later is part of it too.  A pod subject's pod stands in by its name and
    uid (its fields are fixed by the state revision, also in the key), which keeps the key cheap to hash."""
    values: list[object] = []
    for name in _RESOLVED_FIELDS:
        value = getattr(resolved, name)
        if isinstance(value, PodSubject):
            value = (PodSubject, value.pod.namespace, value.pod.name, value.pod.uid, value.ip)
        values.append(value)
    return tuple(values)


def policy_l4(flow: Flow) -> tuple[int, str]:
    """(port, protocol) as the engine takes them: the destination port, or for ICMP the message
    type with Cilium's protocol names ICMP / ICMPv6 (Cilium keys ICMP rules by type)."""
    icmp = _ICMP_PROTOCOLS.get(flow.protocol)
    if icmp is not None:
        return flow.icmp_type, icmp
    return flow.destination.port, flow.protocol.value


def has_policy(state: ClusterState, kind: str, namespace: str, name: str) -> bool:
    """Whether the inventory holds a valid policy Hubble names (`kind` "" matches any kind)."""
    if kind in ("", KNP_KIND) and state.policy(namespace, name) is not None:
        return True
    return any(c.pid.namespace == namespace and c.pid.name == name and kind in ("", c.pid.kind)
               for c in state.cilium.namespaced(namespace))


def _cacheable(flow: Flow) -> bool:
    """Flows whose findings depend only on the outcome key (no L7, DNS query or Cilium policy names)."""
    return (flow.l7 is None and not flow.ingress_allowed_by and not flow.egress_allowed_by
            and not flow.ingress_denied_by and not flow.egress_denied_by and not is_dns_traffic(flow))


def _verdict_key(judged: Judged, *, allowed: bool) -> PolicyVerdictKey | None:
    side = judged.side_decision
    primary = _primary(side, allowed)
    if primary is None or side.enforcement is not Enforcement.ENFORCED:
        return None
    action = "allowed" if allowed else "dropped"
    return (primary.namespace, primary.name, judged.side.value, action, primary.kind)


def _primary(side: SideDecision, allowed: bool) -> PolicyId | None:
    """The policy a side's verdict is counted under: among the admitting rules' policies when allowed;
    when dropped, among the deny rules' policies, else the isolating ones (smallest kind, namespace/name)."""
    if allowed:
        candidates = [m.policy for m in side.allowed_by]
    elif side.denied_by:
        candidates = [m.policy for m in side.denied_by]
    else:
        candidates = list(side.isolated_by)
    return min(candidates, key=lambda p: (p.namespace, p.name, p.kind), default=None)

