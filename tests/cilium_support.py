"""Reading the Cilium truth-table fixtures (tests/fixtures/cilium/) and asking the engine about them.

Shared by tests/test_cilium_connectivity.py and tests/test_cilium_docs_examples.py.  A probe's
endpoints are written as in the fixtures: `NAME` (a pod of the default namespace), `NS/NAME`
(a pod), `node/NAME` (a node), `ip/ADDR` (an address outside the cluster: Cilium's world;
`ip/ADDR#kube-apiserver` gives it reserved identities) and `svc/NAME` (a Service, decided at its backend pod of
the same name, as Cilium enforces policy after the service translation).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from auditor.kube.manifests import load_manifests
from auditor.model.decision import (
    Decision,
    ExternalSubject,
    NodeSubject,
    PodSubject,
    RuleMatch,
    SideDecision,
    Subject,
)
from auditor.model.k8s import KubeObject
from auditor.policy.engine import PolicyEngine
from auditor.policy.state import ClusterState

FIXTURES = Path(__file__).parent / "fixtures" / "cilium"
PROTOCOLS = {"tcp": "TCP", "udp": "UDP", "sctp": "SCTP", "icmp": "ICMP", "icmpv6": "ICMPv6"}


@dataclass(frozen=True)
class Probe:
    """One row of a truth table: source -> destination on protocol/port, and the expected verdict."""

    kind: str
    source: str
    destination: str
    protocol: str
    port: int
    allowed: bool
    why: str = ""

    @property
    def label(self) -> str:
        verdict = "allow" if self.allowed else "deny"
        return f"{self.kind}:{self.source}->{self.destination}:{self.protocol.lower()}/{self.port}={verdict}"


@dataclass(frozen=True)
class Scenario:
    """A set of manifests (on top of a topology) and the probes to ask about."""

    name: str
    manifests: tuple[Path, ...]
    probes: tuple[Probe, ...]
    engine: Mapping[str, Any] = field(default_factory=dict)
    namespace: str = "cilium-test"


def parse_probe(row: Sequence[Any]) -> Probe:
    """`[kind, from, to, proto/port, allow|deny, why?]` as written in the fixtures."""
    kind, source, destination, proto_port, verdict = row[:5]
    proto, _, port = str(proto_port).partition("/")
    if verdict not in ("allow", "deny") or proto not in PROTOCOLS:
        raise ValueError(f"bad probe row {row!r}")
    why = str(row[5]) if len(row) > 5 else ""
    return Probe(str(kind), str(source), str(destination), PROTOCOLS[proto], int(port), verdict == "allow", why)


def read_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@functools.cache
def objects_of(manifests: tuple[Path, ...]) -> tuple[KubeObject, ...]:
    return tuple(load_manifests([str(p) for p in manifests]))


@functools.cache
def state_of(manifests: tuple[Path, ...]) -> ClusterState:
    return ClusterState.build(objects_of(manifests))


def engine_for(scenario: Scenario) -> PolicyEngine:
    options: dict[str, Any] = {"enforce_node_traffic": False, "cidr_match_nodes": False,
                               "policy_enforcement": "default", **scenario.engine}
    return PolicyEngine(**options)


def subject(state: ClusterState, ref: str, namespace: str) -> Subject:
    """The subject a fixture endpoint names; KeyError when the topology has no such pod or node."""
    head, _, rest = ref.partition("/")
    if head == "ip" and rest:
        address, _, names = rest.partition("#")
        return ExternalSubject(address, identities=frozenset(names.split(",")) if names else frozenset())
    if head == "node" and rest:
        node = state.node(rest)
        if node is None:
            raise KeyError(f"no node {rest}")
        return NodeSubject(node.name, node.addresses[0] if node.addresses else "")
    if head == "svc" and rest:
        head, rest = namespace, rest
    elif not rest:
        head, rest = namespace, head
    pod = state.pod(head, rest)
    if pod is None:
        raise KeyError(f"no pod {head}/{rest}")
    return PodSubject(pod, pod.ips[0] if pod.ips else "")


def decide(scenario: Scenario, probe: Probe) -> Decision:
    state = state_of(scenario.manifests)
    source = subject(state, probe.source, scenario.namespace)
    destination = subject(state, probe.destination, scenario.namespace)
    return engine_for(scenario).decide(state, source, destination, probe.port, probe.protocol)


def _matches(matches: Iterable[RuleMatch]) -> str:
    return ", ".join(f"{m.policy} {m.path}" + (f" ({m.l7})" if m.l7 else "") for m in matches) or "-"


def _side_text(name: str, side: SideDecision) -> str:
    return (f"{name}: allowed={side.allowed} isolated={side.isolated} enforcement={side.enforcement.value} "
            f"allowed_by=[{_matches(side.allowed_by)}] denied_by=[{_matches(side.denied_by)}] "
            f"isolated_by=[{', '.join(str(p) for p in side.isolated_by) or '-'}]")


def explain(decision: Decision) -> str:
    """The decision in one paragraph, for assertion messages."""
    return f"allowed={decision.allowed}\n  {_side_text('egress', decision.egress)}\n  " \
           f"{_side_text('ingress', decision.ingress)}"


def policy_kinds(manifests: tuple[Path, ...]) -> dict[str, str]:
    """Policy name -> kind, for every policy document of `manifests` (read as plain YAML)."""
    kinds: dict[str, str] = {}
    for path in manifests:
        with path.open(encoding="utf-8") as handle:
            for doc in yaml.safe_load_all(handle):
                if isinstance(doc, dict) and str(doc.get("kind", "")).endswith("Policy"):
                    kinds[doc["metadata"]["name"]] = doc["kind"]
    return kinds


def check_attribution(scenario: Scenario, probe: Probe, decision: Decision) -> None:
    """Assert what `probe.why` says: `SIDE-default`, `SIDE-deny:POLICY` or `SIDE-l7:KIND`."""
    side_name, _, reason = probe.why.partition("-")
    side = decision.egress if side_name == "egress" else decision.ingress
    text = explain(decision)
    if reason == "default":
        assert not side.allowed, text
        assert side.isolated, text
        assert not side.denied_by, text
        assert side.isolated_by, text
    elif reason.startswith("deny:"):
        name = reason.removeprefix("deny:")
        kind = policy_kinds(scenario.manifests)[name]
        section = f"{side_name}Deny"
        assert not side.allowed, text
        assert any(m.policy.name == name and m.policy.kind == kind and m.section == section
                   for m in side.denied_by), text
    elif reason.startswith("l7:"):
        assert side.allowed, text
        assert any(m.l7 == reason.removeprefix("l7:") for m in side.allowed_by), text
    else:
        raise AssertionError(f"unknown attribution {probe.why!r}")
