"""`auditor recommend`: least-privilege policies from the recorded traffic, checked before printed.

Wiring: the history (`audit.build_history`), the observations (`whatif.collect`: flow files or a
store), the engine's verdict on each at its own time, `policy.generate` for the objects, then
`recommend_verify` (API validation, the audit lint, whatif current -> recommended).

Learned: connections the dataplane allowed *and* the policies admit, both those in force at the
connection's time (an allow they deny is an unexpected allow, not a requirement) and the newest ones
(a connection a later change narrowed away is not brought back); `include_denied` learns every
judged connection.  Scope: the namespaces given, else every namespace with pods except kube-system;
`uncovered` writes rules only for the directions of workloads no policy isolates yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from auditor.app.audit import build_history
from auditor.app.recommend_verify import Verification, verify
from auditor.app.whatif import collect
from auditor.errors import ConfigError
from auditor.findings.connections import CollectStats, Observation
from auditor.findings.session import AnalysisOptions
from auditor.model.decision import PodSubject, Subject
from auditor.model.k8s import PolicyDirection
from auditor.policy.coverage import default_deny_policies, isolation
from auditor.policy.engine import PolicyEngine
from auditor.policy.generate import (
    KIND_NETWORKPOLICY,
    KINDS,
    Edge,
    Generated,
    GenerateOptions,
    Workload,
    generate,
)
from auditor.policy.state import ClusterState

__all__ = ["KINDS", "RecommendOptions", "RecommendResult", "run_recommend"]

SYSTEM_NAMESPACES = ("kube-system",)
"""Left out unless named with --namespace: a default deny there can take the cluster's DNS down."""


@dataclass(frozen=True, slots=True)
class RecommendOptions:
    manifests: tuple[str, ...]
    flows: tuple[str, ...] = ()
    store: str | None = None
    cluster_events: str | None = None
    namespaces: tuple[str, ...] = ()
    kind: str = KIND_NETWORKPOLICY
    uncovered: bool = False
    include_denied: bool = False
    min_prefix: int = 24
    from_ns: int | None = None
    to_ns: int | None = None
    enforce_node_traffic: bool = False
    policy_enforcement: str = "default"
    cidr_match_nodes: bool = False

    @property
    def analysis(self) -> AnalysisOptions:
        """The engine settings, as `audit` and `report` take them."""
        return AnalysisOptions(enforce_node_traffic=self.enforce_node_traffic,
                               cidr_match_nodes=self.cidr_match_nodes,
                               policy_enforcement=self.policy_enforcement)


@dataclass(frozen=True, slots=True)
class RecommendResult:
    generated: tuple[Generated, ...]
    verification: Verification
    stats: CollectStats
    source: str
    namespaces: tuple[str, ...]
    learned: int
    """Observations (distinct judged connections) the recommendation admits."""
    learned_flows: int
    not_learned: int
    not_learned_flows: int
    notes: tuple[str, ...] = ()


def scope(state: ClusterState, namespaces: Sequence[str]) -> tuple[str, ...]:
    if namespaces:
        missing = [ns for ns in namespaces if state.namespace(ns) is None and not state.pods_in(ns)]
        if missing:
            raise ConfigError(f"--namespace {', '.join(missing)}: not in the manifests")
        return tuple(namespaces)
    found = {p.namespace for p in state.pods if not p.host_network}
    return tuple(sorted(found - set(SYSTEM_NAMESPACES)))


def workloads(state: ClusterState, namespaces: Sequence[str], uncovered: bool) -> list[Workload]:
    """Every workload of the namespaces; with `uncovered`, only its directions no policy isolates."""
    found: dict[tuple[str, str], tuple[bool, bool]] = {}
    for namespace in namespaces:
        for pod in state.pods_in(namespace):
            if pod.host_network:
                continue
            ingress, egress = (True, True)
            if uncovered:
                isolated = isolation(state, pod)
                ingress, egress = not isolated[0], not isolated[1]
            before = found.get((namespace, pod.workload_name), (False, False))
            found[(namespace, pod.workload_name)] = (before[0] or ingress, before[1] or egress)
    return [Workload(ns, name, ingress, egress) for (ns, name), (ingress, egress) in sorted(found.items())]


def default_denies(state: ClusterState, namespaces: Sequence[str]) -> dict[str, tuple[bool, bool]]:
    """Per namespace, the directions that have no default deny yet."""
    return {ns: (not default_deny_policies(state, ns, PolicyDirection.INGRESS),
                 not default_deny_policies(state, ns, PolicyDirection.EGRESS)) for ns in namespaces}


def _own(subject: Subject, namespaces: set[str]) -> PodSubject | None:
    if isinstance(subject, PodSubject) and not subject.pod.host_network and subject.pod.namespace in namespaces:
        return subject
    return None


def edges_of(observation: Observation, namespaces: set[str]) -> list[Edge]:
    """The observation as its source's egress and its destination's ingress, for pods in scope."""
    src, dst = observation.src.subject, observation.dst.subject
    assert src is not None
    assert dst is not None
    if isinstance(src, PodSubject) and isinstance(dst, PodSubject) and src.pod.key == dst.pod.key:
        return []  # a pod cannot block itself
    o = observation
    found = []
    source, destination = _own(src, namespaces), _own(dst, namespaces)
    if source is not None:
        found.append(Edge(source.pod, PolicyDirection.EGRESS, dst, o.port, o.protocol, o.count, o.first_ns,
                          o.last_ns))
    if destination is not None:
        found.append(Edge(destination.pod, PolicyDirection.INGRESS, src, o.port, o.protocol, o.count,
                          o.first_ns, o.last_ns))
    return found


def learned(observations: Sequence[Observation], engine: PolicyEngine, include_denied: bool,
            latest: ClusterState | None = None) -> tuple[list[Observation], list[Observation]]:
    """(learned, not learned): see the module docstring."""
    keep: list[Observation] = []
    drop: list[Observation] = []
    for o in observations:
        assert o.src.subject is not None
        assert o.dst.subject is not None
        states = (o.state,) if latest is None else (o.state, latest)
        allowed = all(engine.decide(state, o.src.subject, o.dst.subject, o.port, o.protocol).allowed
                      for state in states)
        (keep if include_denied or (o.observed == "allowed" and allowed) else drop).append(o)
    return keep, drop


def run_recommend(options: RecommendOptions) -> RecommendResult:
    """Generate, verify, and say what was learned; AuditorError on unusable input."""
    if bool(options.flows) == bool(options.store):
        raise ConfigError("give either --flows FILE... or --store URL")
    if not 0 <= options.min_prefix <= 32:
        raise ConfigError(f"--min-prefix {options.min_prefix}: must be between 0 and 32")
    history, _, _ = build_history(options.manifests, options.cluster_events)
    latest = history.latest()
    namespaces = scope(latest, options.namespaces)
    observations, stats, source, notes = collect(history, options.flows, options.store, options.from_ns,
                                                 options.to_ns)
    engine = options.analysis.engine()
    keep, drop = learned(observations, engine, options.include_denied, latest)
    in_scope = set(namespaces)
    edges = [edge for o in keep for edge in edges_of(o, in_scope)]
    generate_options = GenerateOptions(kind=options.kind, min_prefix=options.min_prefix,
                                       default_deny=default_denies(latest, namespaces))
    generated = generate(latest, workloads(latest, namespaces, options.uncovered), edges, generate_options)
    verification = verify(generated, history, observations, keep, engine, namespaces,
                          enforce_node_traffic=options.enforce_node_traffic,
                          policy_enforcement=options.policy_enforcement)
    return RecommendResult(
        generated=tuple(generated), verification=verification, stats=stats, source=source,
        namespaces=namespaces,
        learned=len(keep), learned_flows=sum(o.count for o in keep), not_learned=len(drop),
        not_learned_flows=sum(o.count for o in drop), notes=notes,
    )
