"""Static findings: what the inventory alone says, without any flow.

Every policy kind counts: Kubernetes NetworkPolicies and Cilium's CiliumNetworkPolicy (CNP) and
CiliumClusterwideNetworkPolicy (CCNP).  Policy-level findings (allow-all-rule, unused-policy) have no
workload; they are keyed by `workload = "<kind in lower case>/<name>"` (`networkpolicy/<name>`,
`ciliumnetworkpolicy/<name>`, `ciliumclusterwidenetworkpolicy/<name>` with namespace "") so that each
policy gets its own aggregate key.  Policies are named `str(PolicyId)`: `ns/name@rev` for a
NetworkPolicy, with the kind in front for Cilium's.  Static findings are timeless: count 1, first/last
seen 0.

Cilium's `policy-enforcement` mode is a parameter (`default`, `always`: every pod isolated, `never`:
nothing enforced), as the engine takes it.
"""

from __future__ import annotations

from collections.abc import Iterator

from auditor.findings.probes import describe_probe, probe_port
from auditor.findings.severity import PROBE_PORT_NODE_NOT_ENFORCED, severity_of
from auditor.model.decision import NodeSubject, PodSubject, PolicyId, RuleMatch
from auditor.model.findings import Finding, FindingKind, Severity
from auditor.model.k8s import NetworkPolicy, Pod, PolicyDirection
from auditor.policy.cilium_compile import CompiledPolicy
from auditor.policy.coverage import (
    DEFAULT,
    ENFORCEMENT_ALWAYS,
    NEVER,
    allows_port,
    cilium_rule_admits_everyone,
    isolating_policies,
    isolation,
    rule_admits_everyone,
    selected_nodes,
    selected_pods,
)
from auditor.policy.engine import PolicyEngine
from auditor.policy.state import ClusterState, policy_applies, policy_id

KUBE_DNS_LABEL = ("k8s-app", "kube-dns")
"""The label CoreDNS/kube-dns pods carry in kubeadm, GKE, EKS, AKS and kind clusters."""

_DIRECTIONS = (PolicyDirection.INGRESS, PolicyDirection.EGRESS)


def static_findings(state: ClusterState, *, enforce_node_traffic: bool = False,
                    policy_enforcement: str = DEFAULT) -> list[Finding]:
    """Every static finding of one state, in a stable order."""
    found: list[Finding] = []
    found.extend(no_default_deny(state, policy_enforcement))
    found.extend(missing_dns_egress(state, policy_enforcement))
    found.extend(allow_all_rules(state))
    found.extend(probe_ports_not_allowed(state, enforce_node_traffic=enforce_node_traffic,
                                         policy_enforcement=policy_enforcement))
    found.extend(unused_policies(state))
    return found


def _policy_workload(policy: NetworkPolicy | CompiledPolicy) -> str:
    if isinstance(policy, NetworkPolicy):
        return f"networkpolicy/{policy.name}"
    return f"{policy.pid.kind.lower()}/{policy.pid.name}"


def _names(policies: tuple[PolicyId, ...]) -> tuple[str, ...]:
    return tuple(str(p) for p in policies)


def _joined(names: tuple[str, ...]) -> str:
    """The policies for a message; under policy-enforcement `always` a pod may be isolated by none."""
    return ", ".join(names) or ENFORCEMENT_ALWAYS


def _direction(direction: PolicyDirection) -> str:
    return direction.value.lower()


def _open_text(state: ClusterState, word: str, policy_enforcement: str, verb: str = "are") -> str:
    """The rest of the message after `N of M pods in namespace X (e.g. pod)`; `verb` agrees with N."""
    if policy_enforcement == NEVER:
        return (f" {verb} not isolated for {word}: Cilium's policy-enforcement is never, so no policy is"
                " enforced.")
    if state.cilium_policies:
        return (f" {verb} isolated by no policy for {word} (NetworkPolicy or Cilium); add a default-deny {word}"
                " policy (a NetworkPolicy with podSelector: {} or a CiliumNetworkPolicy with"
                " endpointSelector: {}).")
    return (f" {verb} selected by no NetworkPolicy for {word}; add a default-deny {word} policy"
            " (podSelector: {}).")


def no_default_deny(state: ClusterState, policy_enforcement: str = DEFAULT) -> Iterator[Finding]:
    """Per namespace and direction: some pod-network pods are isolated by no policy of any kind."""
    for namespace in sorted({pod.namespace for pod in state.pods}):
        pods = [p for p in state.pods_in(namespace) if not p.host_network]
        if not pods:
            continue
        isolated = {p.name: isolation(state, p, policy_enforcement) for p in pods}
        for index, direction in enumerate(_DIRECTIONS):
            open_pods = [p for p in pods if not isolated[p.name][index]]
            if not open_pods:
                continue
            word = _direction(direction)
            noun, verb = ("pod" if len(pods) == 1 else "pods"), ("is" if len(open_pods) == 1 else "are")
            message = (
                f"{len(open_pods)} of {len(pods)} {noun} in namespace {namespace} (e.g. {open_pods[0].key})"
                + _open_text(state, word, policy_enforcement, verb)
            )
            yield Finding(
                FindingKind.NO_DEFAULT_DENY, severity_of(FindingKind.NO_DEFAULT_DENY), namespace, "", message,
                pod=open_pods[0].name, direction=word,
                details=(("unisolated-pods", str(len(open_pods))), ("pods", str(len(pods)))),
            )


def _dns_servers(state: ClusterState) -> list[PodSubject]:
    key, value = KUBE_DNS_LABEL
    return [PodSubject(p, p.ips[0] if p.ips else "") for p in state.pods if p.labels.get(key) == value]


def _dns_allowed(state: ClusterState, pod: Pod, protocol: str, servers: list[PodSubject],
                 engine: PolicyEngine) -> bool:
    if not servers:
        return allows_port(state, pod, PolicyDirection.EGRESS, 53, protocol)
    return any(allows_port(state, pod, PolicyDirection.EGRESS, 53, protocol, peer=s, engine=engine)
               for s in servers)


def missing_dns_egress(state: ClusterState, policy_enforcement: str = DEFAULT) -> Iterator[Finding]:
    """Per workload: egress-isolated pods whose policies allow no UDP 53 to kube-dns (or anywhere).

    Cilium rules count through the engine: `toEndpoints` selecting the kube-dns pods, entities
    `cluster`/`all`, a port-53 rule with `rules.dns` (the DNS proxy), a ports-only rule."""
    servers = _dns_servers(state)
    engine = PolicyEngine(policy_enforcement=policy_enforcement)
    seen: set[tuple[str, str]] = set()
    for pod in state.pods:
        key = (pod.namespace, pod.workload_name)
        if key in seen or pod.host_network or not isolation(state, pod, policy_enforcement)[1]:
            continue
        if pod.labels.get(KUBE_DNS_LABEL[0]) == KUBE_DNS_LABEL[1]:
            continue
        if _dns_allowed(state, pod, "UDP", servers, engine):
            continue
        seen.add(key)
        policies = _names(isolating_policies(state, pod, PolicyDirection.EGRESS))
        tcp = "allowed" if _dns_allowed(state, pod, "TCP", servers, engine) else "blocked too"
        target = "kube-dns" if servers else "any DNS server"
        message = (
            f"{pod.key} is isolated for egress by {_joined(policies)} and no rule allows UDP 53 to {target}, "
            f"so its DNS lookups fail; add an egress rule to kube-dns on UDP and TCP 53."
        )
        yield Finding(
            FindingKind.MISSING_DNS_EGRESS, severity_of(FindingKind.MISSING_DNS_EGRESS), pod.namespace,
            pod.workload_name, message, pod=pod.name, peer_workload="kube-system/kube-dns" if servers else "",
            port=53, protocol="UDP", direction="egress", policies=policies, details=(("tcp-53", tcp),),
        )


def allow_all_rules(state: ClusterState) -> Iterator[Finding]:
    """Rules that admit every source (ingress) or destination (egress) on every port: NetworkPolicies'
    (`rule_admits_everyone`), then Cilium's (`cilium_rule_admits_everyone`)."""
    yield from _knp_allow_all(state)
    for compiled in state.cilium_policies:
        yield from _cilium_allow_all(state, compiled)


def _cilium_allow_all(state: ClusterState, compiled: CompiledPolicy) -> Iterator[Finding]:
    pid = str(compiled.pid)
    for spec in compiled.specs:
        for rule in spec.rules:
            peer = cilium_rule_admits_everyone(state, rule)
            if not peer:
                continue
            ingress = rule.section.is_ingress
            word = "ingress" if ingress else "egress"
            path = RuleMatch(compiled.pid, rule.index, section=rule.section.value, spec=rule.spec).path
            message = (
                f"Rule {path} of {pid} admits every {'source' if ingress else 'destination'} ({peer}) on every "
                f"port for {word}, which undoes the isolation of the endpoints it selects; restrict its peers "
                "and ports."
            )
            yield Finding(
                FindingKind.ALLOW_ALL_RULE, severity_of(FindingKind.ALLOW_ALL_RULE), compiled.policy.namespace,
                _policy_workload(compiled), message, direction=word, policies=(pid,),
                details=(("rule", path), ("peer", peer)),
            )


def _knp_allow_all(state: ClusterState) -> Iterator[Finding]:
    for policy in state.policies:
        for direction in _DIRECTIONS:
            rules = policy.ingress if direction is PolicyDirection.INGRESS else policy.egress
            if not policy_applies(policy, direction):
                continue
            for index, rule in enumerate(rules or ()):
                if not rule_admits_everyone(rule, direction):
                    continue
                word = _direction(direction)
                who = "source" if direction is PolicyDirection.INGRESS else "destination"
                pid = str(policy_id(policy))
                message = (
                    f"Rule {index} of {pid} admits every {who} on every port for {word}, which undoes the "
                    f"isolation of the pods it selects; restrict its peers and ports."
                )
                yield Finding(
                    FindingKind.ALLOW_ALL_RULE, severity_of(FindingKind.ALLOW_ALL_RULE), policy.namespace,
                    _policy_workload(policy), message, direction=word, policies=(pid,),
                    details=(("rule", str(index)),),
                )


def probe_ports_not_allowed(state: ClusterState, *, enforce_node_traffic: bool = False,
                            policy_enforcement: str = DEFAULT) -> Iterator[Finding]:
    """Per workload and probe port: an ingress-isolated pod whose rules admit neither node nor any source.

    Kubelet probes come from the pod's own node, Cilium's `host` entity: a Cilium rule admits them
    from entity `host`, `cluster` or `all`, or with no peer field (ports only)."""
    strict = PolicyEngine(enforce_node_traffic=True, policy_enforcement=policy_enforcement)
    severity = severity_of(FindingKind.PROBE_PORT_NOT_ALLOWED) if enforce_node_traffic else (
        PROBE_PORT_NODE_NOT_ENFORCED)
    seen: set[tuple[str, str, int]] = set()
    for pod in state.pods:
        if not pod.probes or pod.host_network or not isolation(state, pod, policy_enforcement)[0]:
            continue
        node = NodeSubject(node_name=pod.node_name, ip=pod.host_ip)
        for probe in pod.probes:
            port = probe_port(pod, probe)
            key = (pod.namespace, pod.workload_name, port or 0)
            if port is None or key in seen:
                continue
            if allows_port(state, pod, PolicyDirection.INGRESS, port, "TCP", peer=node, engine=strict):
                continue
            seen.add(key)
            yield _probe_finding(state, pod, describe_probe(probe, port), port, severity, enforce_node_traffic)


def _probe_finding(state: ClusterState, pod: Pod, probe: str, port: int, severity: Severity,
                   enforced: bool) -> Finding:
    isolating = isolating_policies(state, pod, PolicyDirection.INGRESS)
    policies = _names(isolating)
    when = "" if enforced else " before Cilium enforces node traffic (host firewall)"
    how = " (in a Cilium policy: fromEntities: [host])" if any(p.is_cilium for p in isolating) else ""
    message = (
        f"The {probe} of {pod.key} is not allowed by any ingress rule of {_joined(policies)} from the node"
        f" or any source; allow ingress to port {port} from the node{how}{when}."
    )
    return Finding(
        FindingKind.PROBE_PORT_NOT_ALLOWED, severity, pod.namespace, pod.workload_name, message, pod=pod.name,
        peer="reserved:host", peer_workload="reserved:host", port=port, protocol="TCP", direction="ingress",
        policies=policies, details=(("probe", probe),),
    )


def unused_policies(state: ClusterState) -> Iterator[Finding]:
    """Policies that select nothing: NetworkPolicies whose podSelector matches no pod of their namespace,
    then Cilium policies none of whose specs selects a pod (or, for host policies, a node; unknown, so
    never reported, when the inventory has no nodes)."""
    yield from _unused_knps(state)
    for compiled in state.cilium_policies:
        if selected_pods(state, compiled) or _host_policy_used(state, compiled):
            continue
        pid = str(compiled.pid)
        if compiled.policy.namespace:
            message = (f"{pid} selects no pod in namespace {compiled.policy.namespace}; fix its "
                       "endpointSelector or delete it.")
        else:
            message = (f"{pid} selects no pod or node in the cluster; fix its endpointSelector or "
                       "nodeSelector or delete it.")
        yield Finding(
            FindingKind.UNUSED_POLICY, severity_of(FindingKind.UNUSED_POLICY), compiled.policy.namespace,
            _policy_workload(compiled), message, policies=(pid,),
        )


def _host_policy_used(state: ClusterState, compiled: CompiledPolicy) -> bool:
    if not any(s.nodes is not None for s in compiled.specs):
        return False
    return not state.nodes or bool(selected_nodes(state, compiled))


def _unused_knps(state: ClusterState) -> Iterator[Finding]:
    for policy in state.policies:
        if selected_pods(state, policy):
            continue
        pid = str(policy_id(policy))
        message = (
            f"{pid} selects no pod in namespace {policy.namespace}; fix its podSelector or delete it."
        )
        yield Finding(
            FindingKind.UNUSED_POLICY, severity_of(FindingKind.UNUSED_POLICY), policy.namespace,
            _policy_workload(policy), message, policies=(pid,),
        )
