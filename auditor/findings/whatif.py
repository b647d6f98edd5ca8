"""What a policy change does to recorded connections, and to the posture.

Each `Observation` (connections.py) is judged twice by the same engine: in the state in force at
its time (`current`) and in that state with the proposed changes applied (`proposed`).  The
connection is then:

- `newly-denied`: the current policies admit it, the proposed ones do not;
- `newly-allowed`: the other way round;
- `reattributed`: the verdict stays, but other rules decide it (another policy, or another rule of
  the same one: what a clean-up that removes an overlapping policy must keep intact);
- `undecided`: the proposed policies need a DNS name the capture does not know (`toFQDNs`);
- `unchanged`.

What decides is told in the engine's words (`RuleMatch.path`, `PolicyId.ref`): the admitting rules
of both enforced sides when allowed, the deny rules or the isolating policies (with the closest
miss) of the denying side when denied.  Revisions are left out of the comparison: a proposed
manifest of a policy usually carries no resourceVersion.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from auditor.findings.connections import ConnectionKey, Observation
from auditor.findings.correlate import Decider
from auditor.model.decision import Decision, Enforcement, PodSubject, SideDecision, Subject
from auditor.model.k8s import PolicyDirection
from auditor.policy.coverage import default_deny_policies, isolation
from auditor.policy.state import ClusterState


class Change(enum.Enum):
    NEWLY_DENIED = "newly-denied"
    NEWLY_ALLOWED = "newly-allowed"
    REATTRIBUTED = "reattributed"
    UNDECIDED = "undecided"
    UNCHANGED = "unchanged"


CHANGES_SHOWN = (Change.NEWLY_DENIED, Change.NEWLY_ALLOWED, Change.REATTRIBUTED, Change.UNDECIDED)
"""The changes a report lists row by row, most harmful first; unchanged ones are only counted."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """One judgement of a connection: allowed or not, and what decided, in the engine's words."""

    allowed: bool
    decided_by: tuple[str, ...]
    undecided: str = ""
    miss: str = ""
    """The closest miss of a denied side: told, but not part of the attribution compared."""

    @property
    def text(self) -> str:
        word = "allowed" if self.allowed else "denied"
        text = f"{word}: {'; '.join(self.decided_by)}" if self.decided_by else word
        return f"{text} (closest: {self.miss})" if self.miss else text


@dataclass(frozen=True, slots=True)
class Judged:
    """One observation judged under the current and the proposed policies."""

    observation: Observation
    before: Verdict
    after: Verdict
    change: Change


@dataclass(frozen=True, slots=True)
class Row:
    """One connection key and change, over every observation that has it."""

    key: ConnectionKey
    change: Change
    flows: int
    first_ns: int
    last_ns: int
    sample: str
    observed: tuple[str, ...]
    """The dataplane's classes of the flows (allowed, denied, audited)."""
    before: str
    after: str
    source: str
    """A sample source (namespace/pod, IP, reserved:...)."""
    destination: str


def side_text(direction: str, side: SideDecision) -> tuple[str, ...]:
    """What decides one side, as `egress: ns/pol rule 0` lines; nothing for an unenforced side."""
    if side.enforcement is not Enforcement.ENFORCED:
        return ()
    if side.denied_by:
        return tuple(f"{direction}: deny {m.policy.ref} {m.path}" for m in side.denied_by)
    if side.allowed_by:
        return tuple(f"{direction}: {m.policy.ref} {m.path}" for m in side.allowed_by)
    if not side.allowed:
        isolated = ", ".join(p.ref for p in side.isolated_by) or "policy-enforcement=always"
        return (f"{direction}: default deny of {isolated}",)
    return ()


def verdict_of(decision: Decision) -> Verdict:
    egress, ingress = decision.egress, decision.ingress
    if decision.allowed:
        lines = side_text("egress", egress) + side_text("ingress", ingress)
    else:
        lines = (side_text("egress", egress) if not egress.allowed else ()) + (
            side_text("ingress", ingress) if not ingress.allowed else ())
    misses = [s.closest_miss.message for s in (egress, ingress) if not s.allowed and s.closest_miss is not None]
    return Verdict(decision.allowed, lines, egress.undecided or ingress.undecided, "; ".join(misses))


def change_of(before: Verdict, after: Verdict) -> Change:
    if after.undecided and not before.undecided:
        return Change.UNDECIDED
    if before.allowed and not after.allowed:
        return Change.NEWLY_DENIED
    if after.allowed and not before.allowed:
        return Change.NEWLY_ALLOWED
    if set(before.decided_by) != set(after.decided_by):
        return Change.REATTRIBUTED
    return Change.UNCHANGED


def _in_state(subject: Subject, state: ClusterState) -> Subject:
    """A pod subject as the proposed state has the pod (its labels may be what the change is about)."""
    if not isinstance(subject, PodSubject):
        return subject
    pod = state.pod(subject.pod.namespace, subject.pod.name)
    return subject if pod is None or pod is subject.pod else PodSubject(pod, subject.ip)


def judge(observations: Iterable[Observation], engine: Decider,
          proposed: Callable[[ClusterState], ClusterState]) -> list[Judged]:
    """Each observation under its own state and under `proposed(state)` (the caller caches that)."""
    judged = []
    for o in observations:
        src, dst = o.src.subject, o.dst.subject
        assert src is not None
        assert dst is not None
        after_state = proposed(o.state)
        before = verdict_of(engine.decide(o.state, src, dst, o.port, o.protocol))
        after = verdict_of(engine.decide(after_state, _in_state(src, after_state), _in_state(dst, after_state),
                                         o.port, o.protocol))
        judged.append(Judged(o, before, after, change_of(before, after)))
    return judged


def rows(judged: Iterable[Judged]) -> list[Row]:
    """Judged observations merged per (connection key, change, before, after), most harmful first."""
    merged: dict[tuple[ConnectionKey, Change, str, str], list[Judged]] = {}
    for j in judged:
        merged.setdefault((j.observation.key, j.change, j.before.text, j.after.text), []).append(j)
    found = []
    for (key, change, before, after), group in merged.items():
        first = min(group, key=lambda j: j.observation.first_ns).observation
        found.append(Row(
            key=key, change=change, flows=sum(j.observation.count for j in group),
            first_ns=first.first_ns, last_ns=max(j.observation.last_ns for j in group), sample=first.sample,
            observed=tuple(sorted({j.observation.observed for j in group})), before=before,
            after=after, source=first.src.peer, destination=first.dst.peer,
        ))
    order = {change: index for index, change in enumerate(Change)}
    return sorted(found, key=lambda r: (order[r.change], -r.flows, r.key))


# --- posture ------------------------------------------------------------------------------------

_DIRECTIONS = (("ingress", PolicyDirection.INGRESS), ("egress", PolicyDirection.EGRESS))


@dataclass(frozen=True, slots=True)
class PostureDelta:
    """How coverage changes between the newest current state and the proposed one."""

    newly_covered: tuple[tuple[str, str], ...]
    """(namespace/pod, direction) isolated only under the proposed policies."""
    newly_uncovered: tuple[tuple[str, str], ...]
    default_deny_gained: tuple[tuple[str, str], ...]
    """(namespace, direction) with a default deny only under the proposed policies."""
    default_deny_lost: tuple[tuple[str, str], ...]

    @property
    def empty(self) -> bool:
        return not (self.newly_covered or self.newly_uncovered or self.default_deny_gained
                    or self.default_deny_lost)


def _coverage(state: ClusterState) -> set[tuple[str, str]]:
    covered = set()
    for pod in state.pods:
        for (label, _), isolated in zip(_DIRECTIONS, isolation(state, pod), strict=True):
            if isolated:
                covered.add((pod.key, label))
    return covered


def _default_denies(state: ClusterState) -> set[tuple[str, str]]:
    return {(ns.name, label) for ns in state.namespaces for label, direction in _DIRECTIONS
            if default_deny_policies(state, ns.name, direction)}


def _pods(state: ClusterState) -> set[str]:
    return {pod.key for pod in state.pods if not pod.host_network}


def posture_delta(current: ClusterState, proposed: ClusterState) -> PostureDelta:
    """Pods whose isolation changes (pods of both states only) and namespaces whose default deny does."""
    both = _pods(current) & _pods(proposed)
    before = {c for c in _coverage(current) if c[0] in both}
    after = {c for c in _coverage(proposed) if c[0] in both}
    deny_before, deny_after = _default_denies(current), _default_denies(proposed)
    return PostureDelta(tuple(sorted(after - before)), tuple(sorted(before - after)),
                        tuple(sorted(deny_after - deny_before)), tuple(sorted(deny_before - deny_after)))
