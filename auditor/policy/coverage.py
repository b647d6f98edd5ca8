"""Static questions for findings: is a pod isolated, which pods does a policy select, what is open.

These ask about policies and pods, not about one concrete connection (use `PolicyEngine` for that).
Every policy kind counts: Kubernetes NetworkPolicies (`NetworkPolicy`) and Cilium's
CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy (`CompiledPolicy`, from `state.cilium_policies`).

Cilium's `policy-enforcement` mode (`default`, `always`, `never`; see `PolicyEngine`) changes what
isolates: under `always` every endpoint is in default deny whether or not a policy selects it, under
`never` nothing is enforced (Documentation/security/policy/intro.rst, "Policy Enforcement Modes").
Functions that depend on it take `policy_enforcement`; `allows_port` reads it from its engine.
"""

from __future__ import annotations

from collections.abc import Iterable

from auditor.model.decision import PodSubject, PolicyId, Subject
from auditor.model.k8s import NetworkPolicy, Node, Pod, PolicyDirection, Rule
from auditor.policy.cilium_compile import ANY_PROTOCOLS, CompiledPolicy, CPeer, CRule, CSpec, is_world_network
from auditor.policy.cilium_labels import (
    ANY,
    CLUSTER,
    DEFAULT_CLUSTER,
    K8S,
    NAMESPACE_LABELS,
    POD_NAMESPACE,
    RESERVED,
    Identity,
    Requirement,
    Selector,
    requirement_holds,
    selects,
)
from auditor.policy.cilium_side import Selected, l4_match, pod_identity, pod_isolating, pod_selecting
from auditor.policy.engine import PolicyEngine
from auditor.policy.matching import destination_pod, port_number_matches
from auditor.policy.selectors import parse_network, selector_matches
from auditor.policy.state import ClusterState, policy_applies, policy_id

DEFAULT, ALWAYS, NEVER = "default", "always", "never"
WORLD_ENTITIES = ("world", "world-ipv4", "world-ipv6")
ENFORCEMENT_ALWAYS = "policy-enforcement=always"
"""What `default_deny_policies` lists under `always`: the agent setting isolates every pod by itself."""


def isolation(state: ClusterState, pod: Pod, policy_enforcement: str = DEFAULT) -> tuple[bool, bool]:
    """(ingress_isolated, egress_isolated): whether a valid policy of any kind isolates the pod per direction.

    A NetworkPolicy isolates the pods it selects for the directions it applies to; a Cilium policy
    those its specs select with rules for the direction (unless `enableDefaultDeny` is false for it).
    hostNetwork pods are never isolated (NetworkPolicy does not apply to them; Cilium treats them as
    the host).  `always`: every other pod is isolated both ways; `never`: none is.
    """
    if pod.host_network or policy_enforcement == NEVER:
        return (False, False)
    if policy_enforcement == ALWAYS:
        return (True, True)
    return (_isolated(state, pod, PolicyDirection.INGRESS), _isolated(state, pod, PolicyDirection.EGRESS))


def _isolated(state: ClusterState, pod: Pod, direction: PolicyDirection) -> bool:
    return bool(state.policies_selecting(pod, direction)) or bool(pod_isolating(state, pod, direction))


def isolating_policies(state: ClusterState, pod: Pod, direction: PolicyDirection) -> tuple[PolicyId, ...]:
    """The policies isolating `pod` for `direction`: its NetworkPolicies (by name), then Cilium's."""
    if pod.host_network:
        return ()
    knps = tuple(policy_id(p) for p in state.policies_selecting(pod, direction))
    return (*knps, *pod_isolating(state, pod, direction))


def _spec_isolates(spec: CSpec, direction: PolicyDirection) -> bool:
    return spec.isolates_ingress if direction is PolicyDirection.INGRESS else spec.isolates_egress


def _namespace_identity(state: ClusterState, namespace: str) -> Identity:
    labels = {f"{K8S}:{POD_NAMESPACE}": namespace, f"{K8S}:{CLUSTER}": DEFAULT_CLUSTER}
    labels.update({f"{K8S}:{NAMESPACE_LABELS}{k}": v for k, v in state.namespace_labels(namespace).items()})
    return Identity.of(labels)


def _namespace_wide(req_key: str) -> bool:
    return req_key in (POD_NAMESPACE, CLUSTER) or req_key.startswith(NAMESPACE_LABELS)


def selects_whole_namespace(state: ClusterState, subject: Selector, namespace: str) -> bool:
    """Whether an endpoint selector selects every pod of `namespace`, also pods created later: each of
    its requirements is on a label every pod of the namespace carries alike (the namespace, its labels,
    the cluster) and holds there.  A CNP's `endpointSelector: {}` and a CCNP's `{}` both do."""
    identity = _namespace_identity(state, namespace)
    return all(r.source in (K8S, ANY) and _namespace_wide(r.key) and requirement_holds(r, identity)
               for r in subject)


def _applicable(state: ClusterState, namespace: str) -> tuple[CompiledPolicy, ...]:
    """The Cilium policies that may select pods of `namespace`: its CNPs (by name), then every CCNP."""
    return (*state.cilium.namespaced(namespace), *state.cilium.namespaced("")) if namespace else ()


def cilium_default_denies(state: ClusterState, namespace: str, direction: PolicyDirection
                          ) -> tuple[CompiledPolicy, ...]:
    """CNPs of `namespace` and CCNPs with a spec that selects every pod of the namespace and isolates it
    for `direction`: Cilium's default deny (e.g. `endpointSelector: {}` with `ingress: [{}]`)."""
    return tuple(c for c in _applicable(state, namespace)
                 if any(s.subject is not None and _spec_isolates(s, direction)
                        and selects_whole_namespace(state, s.subject, namespace) for s in c.specs))


def default_deny_policies(state: ClusterState, namespace: str, direction: PolicyDirection,
                          policy_enforcement: str = DEFAULT) -> tuple[str, ...]:
    """The namespace's default denies for `direction`: policies that isolate every pod of the namespace,
    also pods created later.  NetworkPolicies with an empty podSelector (by name), then Cilium policies
    (`cilium_default_denies`, as `PolicyId.ref`: kind and key).  Under `always` the setting itself comes
    first (`ENFORCEMENT_ALWAYS`); under `never` nothing isolates, so there is none."""
    if policy_enforcement == NEVER:
        return ()
    knps = tuple(p.name for p in state.policies_in(namespace)
                 if p.pod_selector.is_empty and policy_applies(p, direction))
    cilium = tuple(c.pid.ref for c in cilium_default_denies(state, namespace, direction))
    return (*((ENFORCEMENT_ALWAYS,) if policy_enforcement == ALWAYS else ()), *knps, *cilium)


def _cilium_selects(state: ClusterState, policy: CompiledPolicy, pod: Pod) -> bool:
    if pod.host_network:
        return False
    identity = pod_identity(state, pod)
    return any(s.subject is not None and selects(s.subject, identity) for s in policy.specs)


def selected_pods(state: ClusterState, policy: NetworkPolicy | CompiledPolicy,
                  namespace: str | None = None) -> tuple[Pod, ...]:
    """Pod-network pods the policy selects (only those of `namespace` when given), by namespace/name.

    A NetworkPolicy's podSelector matches pods of its own namespace; a CNP's specs select pods of its
    namespace, a CCNP's pods of every namespace (`endpointSelector`; `nodeSelector` specs select nodes).
    """
    if isinstance(policy, NetworkPolicy):
        if namespace is not None and namespace != policy.namespace:
            return ()
        return tuple(p for p in state.pods_in(policy.namespace)
                     if not p.host_network and selector_matches(policy.pod_selector, p.labels))
    home = policy.policy.namespace
    if home and namespace is not None and namespace != home:
        return ()
    scope = home or namespace
    pods: Iterable[Pod] = state.pods_in(scope) if scope else state.pods
    return tuple(p for p in pods if _cilium_selects(state, policy, p))


def selected_nodes(state: ClusterState, policy: CompiledPolicy) -> tuple[Node, ...]:
    """Nodes a CCNP's host-policy specs (`nodeSelector`) select, by name."""
    host_specs = [s.nodes for s in policy.specs if s.nodes is not None]
    if not host_specs:
        return ()
    found: list[Node] = []
    for node in state.nodes:
        labels = Identity.of({f"{K8S}:{k}": v for k, v in node.labels.items()})
        if any(selects(nodes, labels) for nodes in host_specs):
            found.append(node)
    return tuple(found)


def _all_pods_peer(rule: Rule) -> bool:
    return any(p.ip_block is None and p.namespace_selector is not None and p.namespace_selector.is_empty
               and (p.pod_selector is None or p.pod_selector.is_empty) for p in rule.peers)


def _world_peers(rule: Rule) -> bool:
    versions: set[int] = set()
    for peer in rule.peers:
        if peer.ip_block is not None and not peer.ip_block.except_:
            net = parse_network(peer.ip_block.cidr)
            if net is not None and net.prefixlen == 0:
                versions.add(net.version)
    return versions == {4, 6}


def rule_admits_everyone(rule: Rule, direction: PolicyDirection) -> bool:
    """An allow-all rule: no ports, and no peers, or a peer selecting every pod, or the whole internet.

    Every pod = a peer with an empty namespaceSelector and an empty or absent podSelector; the whole
    internet = ipBlocks 0.0.0.0/0 and ::/0 (both, without `except`).  `direction` is accepted for
    symmetry: the test is the same for ingress and egress rules.  For Cilium rules see
    `auditor.findings.static`'s allow-all check.
    """
    del direction
    if rule.ports:
        return False
    return not rule.peers or _all_pods_peer(rule) or _world_peers(rule)


def _every_pod(selector: Selector) -> bool:
    """A compiled peer selector admitting every pod of the cluster (a CCNP's `endpoints: [{}]`, the pods
    of entity `cluster`): it only asks for a namespace label to exist, or for this cluster."""
    def any_pod(r: Requirement) -> bool:
        if r.source not in (K8S, ANY):
            return False
        if r.key == POD_NAMESPACE:
            return r.operator == "Exists"
        return r.key == CLUSTER and r.operator == "In" and DEFAULT_CLUSTER in r.values
    return bool(selector) and all(any_pod(r) for r in selector)


def _world_selector(selector: Selector) -> bool:
    return len(selector) == 1 and selector[0].source == RESERVED and selector[0].operator == "Exists" and (
        selector[0].key in WORLD_ENTITIES)


def _everyone_peer(state: ClusterState, peer: CPeer) -> bool:
    if peer.selector is not None:
        return peer.selector == () or _every_pod(peer.selector) or _world_selector(peer.selector)
    if peer.network is not None:
        return is_world_network(peer.network) and not peer.excepts
    if peer.group_ref:
        group = state.cilium.groups.get(peer.group_ref)
        return group is not None and any(is_world_network(parse_network(c)) for c in group.cidrs)
    return peer.fqdn is not None and peer.fqdn.match_pattern.strip() == "*"


def _every_port(rule: CRule) -> bool:
    if rule.ports is None:
        return True
    return bool(rule.ports) and all(p.low == 0 and p.high == 65535 and not p.name and not p.l7
                                    and p.protocols == ANY_PROTOCOLS for p in rule.ports)


def cilium_rule_admits_everyone(state: ClusterState, rule: CRule) -> str:
    """The peer (in Cilium's words) through which a Cilium allow rule admits everyone on every port, or "".

    Every port: no `toPorts`/`icmps`, or only port 0 / all protocols without L7 rules.  Everyone: no
    peer field (a ports-only rule; `any peer`), entity `all`, the internet (entity `world`, a /0 CIDR of
    either family without `except`, a CiliumCIDRGroup holding one, `toFQDNs` matchPattern `*`) or every
    pod of the cluster (a CCNP's `endpoints: [{}]`, entity `cluster`).  Rules narrowed by `requires` and
    deny rules are not allow-all.
    """
    if rule.section.is_deny or rule.requires or not _every_port(rule):
        return ""
    if rule.peers is None:
        return "any peer"
    return next((p.text for p in rule.peers if _everyone_peer(state, p)), "")


def _named_port_may_match(rule: Rule, port: int, protocol: str, destination: Pod | None) -> bool:
    for policy_port in rule.ports:
        if policy_port.protocol != protocol:
            continue
        if isinstance(policy_port.port, str) and destination is None:
            return True
        if port_number_matches(policy_port, port, destination):
            return True
    return not rule.ports


def _cilium_may_admit(rule: CRule, port: int, protocol: str, destination: Pod | None) -> bool:
    """An allow rule with some peer whose ports admit port/protocol (a named port counts as possibly
    matching when the destination is not known)."""
    if rule.peers == ():
        return False
    if l4_match(rule, port, protocol, destination) is not None:
        return True
    return destination is None and rule.ports is not None and any(
        e.name and protocol in e.protocols for e in rule.ports)


def _denies_every_peer(rule: CRule, port: int, protocol: str, destination: Pod | None) -> bool:
    """A deny rule that matches every peer (no peer field, or entity all) on port/protocol."""
    every_peer = rule.peers is None or any(p.selector == () for p in rule.peers)
    return (every_peer and not rule.requires
            and l4_match(rule, port, protocol, destination) is not None)


def _cilium_rules(selected: Selected, direction: PolicyDirection) -> list[CRule]:
    ingress = direction is PolicyDirection.INGRESS
    return [r for _, s in selected for r in s.rules if r.section.is_ingress == ingress]


def allows_port(state: ClusterState, pod: Pod, direction: PolicyDirection, port: int, protocol: str = "TCP",
                peer: Subject | None = None, engine: PolicyEngine | None = None) -> bool:
    """Whether the pod's `direction` side lets port/protocol through.

    With `peer` it is the engine's side verdict for that peer (the destination for egress, the
    source for ingress).  Without a peer it asks whether *some* peer is admitted: the pod is not
    isolated, or a rule of a selecting policy (of any kind) admits the port (named ports in egress
    rules count as possibly matching, since they resolve on a destination not given here), and no
    Cilium deny rule denies every peer on it.  The engine's `policy_enforcement` applies (default
    `default` without an engine).
    """
    if peer is not None:
        own = PodSubject(pod)
        side = (engine or PolicyEngine()).side(state, direction, own, peer, port, protocol)
        return side.allowed
    mode = engine.policy_enforcement if engine is not None else DEFAULT
    if pod.host_network or mode == NEVER:
        return True
    destination = pod if direction is PolicyDirection.INGRESS else None
    rules = _cilium_rules(pod_selecting(state, pod, direction), direction)
    if any(r.section.is_deny and _denies_every_peer(r, port, protocol, destination) for r in rules):
        return False
    selecting = state.policies_selecting(pod, direction)
    if not selecting and not pod_isolating(state, pod, direction) and mode != ALWAYS:
        return True
    for policy in selecting:
        knp_rules = policy.ingress if direction is PolicyDirection.INGRESS else policy.egress
        if any(_named_port_may_match(r, port, protocol, destination) for r in knp_rules or ()):
            return True
    return any(not r.section.is_deny and _cilium_may_admit(r, port, protocol, destination) for r in rules)


__all__ = ["allows_port", "cilium_default_denies", "cilium_rule_admits_everyone", "default_deny_policies",
           "destination_pod", "isolating_policies", "isolation", "policy_applies", "rule_admits_everyone",
           "selected_nodes", "selected_pods", "selects_whole_namespace"]
