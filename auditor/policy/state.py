"""ClusterState: an immutable snapshot of pods, namespaces, nodes and the valid NetworkPolicies.

Build one with `ClusterState.build(objects)` (bulk) or grow one change at a time with
`ClusterState.empty().apply(change)`.  `apply` never mutates: it returns a new state that
shares every untouched part with its predecessor (see `pmap.PMap`), so keeping one state per
change for a whole history window stays cheap.  Each state gets a `revision` from a process-wide
monotonic counter: two different states never share a revision, which makes it a safe cache key.

Invalid NetworkPolicies are validated on the way in, left out of `.policies`, and reported in
`.invalid`; an invalid new version of a policy replaces (removes) the previous valid one.
hostNetwork pods are not indexed by IP (their IP is the node's; `node_by_ip` answers for it).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Mapping

from auditor.errors import InvalidObjectError
from auditor.model.cilium import CiliumCIDRGroup, CiliumNetworkPolicy
from auditor.model.decision import PolicyId, policy_id_of
from auditor.model.k8s import (
    Change,
    ChangeType,
    EndpointSlice,
    KubeObject,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Node,
    Pod,
    PolicyDirection,
    Service,
)
from auditor.policy.cilium_compile import CompiledPolicy
from auditor.policy.cilium_index import CiliumIndex, PolicyKey, group_key, policy_key
from auditor.policy.cilium_labels import DEFAULT_CLUSTER, derived_labels, mentions_derived
from auditor.policy.pmap import PMap
from auditor.policy.selectors import namespace_labels, selector_keys, selector_matches
from auditor.policy.service_index import ServiceIndex
from auditor.policy.validate import validate_policy

_revisions = itertools.count(1)

Key = tuple[str, str]
KNP = "NetworkPolicy"


def policy_applies(policy: NetworkPolicy, direction: PolicyDirection) -> bool:
    """policyTypes after API-server defaulting: Ingress always, Egress when `egress` has rules.

    Upstream `SetDefaults_NetworkPolicy` appends Egress only when `len(spec.egress) != 0`, so an
    absent *or empty* egress list without policyTypes leaves the policy ingress-only.
    """
    if policy.policy_types:
        return direction in policy.policy_types
    if direction is PolicyDirection.INGRESS:
        return True
    return bool(policy.egress)


def policy_id(policy: NetworkPolicy) -> PolicyId:
    """The policy and its revision: resourceVersion when set, else generation (empty when neither)."""
    return policy_id_of(policy)


class ClusterState:
    """One immutable snapshot of the inventory; see the module docstring."""

    __slots__ = ("_cilium", "_ids", "_invalid", "_namespaces", "_node_ip", "_nodes", "_ns_labels", "_pod_ip",
                 "_pods", "_pods_by_ns", "_policies", "_policies_by_ns", "_selecting", "_services", "_sorted",
                 "memo", "revision")

    def __init__(self, pods: PMap[Key, Pod], pods_by_ns: PMap[str, PMap[str, Pod]], pod_ip: PMap[str, Pod],
                 namespaces: PMap[str, Namespace], nodes: PMap[str, Node], node_ip: PMap[str, Node],
                 policies: PMap[Key, NetworkPolicy], policies_by_ns: PMap[str, tuple[NetworkPolicy, ...]],
                 invalid: PMap[PolicyKey, tuple[InvalidObjectError, ...]],
                 cilium: CiliumIndex | None = None, services: ServiceIndex | None = None) -> None:
        self._pods, self._pods_by_ns, self._pod_ip = pods, pods_by_ns, pod_ip
        self._namespaces, self._nodes, self._node_ip = namespaces, nodes, node_ip
        self._policies, self._policies_by_ns, self._invalid = policies, policies_by_ns, invalid
        self._cilium = cilium if cilium is not None else CiliumIndex.empty()
        self._services = services if services is not None else ServiceIndex.empty()
        self.revision: int = next(_revisions)
        self._selecting: dict[tuple[str, str, PolicyDirection], tuple[NetworkPolicy, ...]] = {}
        self._ns_labels: dict[str, Mapping[str, str]] = {}
        self._sorted: dict[str, tuple[object, ...]] = {}
        self._ids: dict[Key, tuple[NetworkPolicy, PolicyId]] = {}
        self.memo: dict[object, object] = {}
        """Lazily computed lookups of other policy modules (Cilium identities, selecting specs)."""

    def drop_memos(self) -> None:
        """Forget lazily computed lookups (selector matches, sorted listings); they are rebuilt on demand.

        ClusterHistory calls this on a state once a newer one supersedes it, so a long history
        does not keep a memo per state.  Answers are unaffected.
        """
        self._selecting = {}
        self._ns_labels = {}
        self._sorted = {}
        self._ids = {}
        self.memo = {}

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def empty(cls) -> ClusterState:
        return cls(PMap(), PMap(), PMap(), PMap(), PMap(), PMap(), PMap(), PMap(), PMap())

    @classmethod
    def build(cls, objects: Iterable[KubeObject]) -> ClusterState:
        """A state holding `objects` (later duplicates win), built in one pass."""
        state = _Builder()
        for obj in objects:
            state.put(obj)
        return state.freeze()

    def apply(self, change: Change) -> ClusterState:
        """The state after `change`; self is unchanged."""
        obj = change.obj
        deleted = change.type is ChangeType.DELETED
        if isinstance(obj, Pod):
            return self._with_pod(obj, deleted)
        if isinstance(obj, NetworkPolicy):
            return self._with_policy(obj, deleted)
        if isinstance(obj, Namespace):
            namespaces = self._namespaces.delete(obj.name) if deleted else self._namespaces.set(obj.name, obj)
            return self._replace(namespaces=namespaces)
        if isinstance(obj, CiliumNetworkPolicy):
            cilium, errors = self._cilium.with_policy(obj, deleted)
            return self._replace(cilium=cilium, invalid=self._with_errors(policy_key(obj), errors))
        if isinstance(obj, CiliumCIDRGroup):
            cilium, errors = self._cilium.with_group(obj, deleted)
            return self._replace(cilium=cilium, invalid=self._with_errors(group_key(obj), errors))
        if isinstance(obj, Service):
            return self._replace(services=self._services.with_service(obj, deleted))
        if isinstance(obj, EndpointSlice):
            return self._replace(services=self._services.with_slice(obj, deleted))
        return self._with_node(obj, deleted)

    def _with_errors(self, key: PolicyKey, errors: tuple[InvalidObjectError, ...]
                     ) -> PMap[PolicyKey, tuple[InvalidObjectError, ...]]:
        return self._invalid.set(key, errors) if errors else self._invalid.delete(key)

    def _replace(self, **parts: object) -> ClusterState:
        current: dict[str, object] = {
            "pods": self._pods, "pods_by_ns": self._pods_by_ns, "pod_ip": self._pod_ip,
            "namespaces": self._namespaces, "nodes": self._nodes, "node_ip": self._node_ip,
            "policies": self._policies, "policies_by_ns": self._policies_by_ns, "invalid": self._invalid,
            "cilium": self._cilium, "services": self._services,
        }
        current.update(parts)
        return ClusterState(**current)  # type: ignore[arg-type]

    def _with_pod(self, pod: Pod, deleted: bool) -> ClusterState:
        key = (pod.namespace, pod.name)
        old = self._pods.get(key)
        pod_ip = self._pod_ip
        new_ips = () if deleted or pod.host_network else pod.ips
        for ip in old.ips if old is not None else ():
            holder = pod_ip.get(ip)
            if ip not in new_ips and holder is not None and (holder.namespace, holder.name) == key:
                pod_ip = pod_ip.delete(ip)
        pods = self._pods.delete(key) if deleted else self._pods.set(key, pod)
        for ip in new_ips:
            pod_ip = pod_ip.set(ip, pod)
        siblings: PMap[str, Pod] = self._pods_by_ns.get(pod.namespace) or PMap()
        siblings = siblings.delete(pod.name) if deleted else siblings.set(pod.name, pod)
        by_ns = (self._pods_by_ns.set(pod.namespace, siblings) if len(siblings)
                 else self._pods_by_ns.delete(pod.namespace))
        return self._replace(pods=pods, pod_ip=pod_ip, pods_by_ns=by_ns)

    def _with_node(self, node: Node, deleted: bool) -> ClusterState:
        node_ip = self._node_ip
        old = self._nodes.get(node.name)
        for ip in old.addresses if old is not None else ():
            holder = node_ip.get(ip)
            if holder is not None and holder.name == node.name:
                node_ip = node_ip.delete(ip)
        if not deleted:
            for ip in node.addresses:
                node_ip = node_ip.set(ip, node)
        nodes = self._nodes.delete(node.name) if deleted else self._nodes.set(node.name, node)
        return self._replace(nodes=nodes, node_ip=node_ip)

    def _with_policy(self, policy: NetworkPolicy, deleted: bool) -> ClusterState:
        key = (policy.namespace, policy.name)
        errors = () if deleted else tuple(validate_policy(policy))
        invalid = self._with_errors((KNP, *key), errors)
        keep = not deleted and not errors
        policies = self._policies.set(key, policy) if keep else self._policies.delete(key)
        siblings = tuple(p for p in (self._policies_by_ns.get(policy.namespace) or ()) if p.name != policy.name)
        if keep:
            siblings = tuple(sorted((*siblings, policy), key=lambda p: p.name))
        by_ns = (self._policies_by_ns.set(policy.namespace, siblings) if siblings
                 else self._policies_by_ns.delete(policy.namespace))
        return self._replace(policies=policies, policies_by_ns=by_ns, invalid=invalid)

    # -- queries ------------------------------------------------------------------------------
    def _sorted_values(self, name: str, source: PMap[Key, object] | PMap[str, object]) -> tuple[object, ...]:
        cached = self._sorted.get(name)
        if cached is None:
            cached = tuple(v for _, v in sorted(source.items(), key=lambda kv: kv[0]))
            self._sorted[name] = cached
        return cached

    @property
    def pods(self) -> tuple[Pod, ...]:
        """Every pod, sorted by namespace/name."""
        return self._sorted_values("pods", self._pods)  # type: ignore[arg-type,return-value]

    @property
    def namespaces(self) -> tuple[Namespace, ...]:
        return self._sorted_values("namespaces", self._namespaces)  # type: ignore[arg-type,return-value]

    @property
    def nodes(self) -> tuple[Node, ...]:
        return self._sorted_values("nodes", self._nodes)  # type: ignore[arg-type,return-value]

    @property
    def policies(self) -> tuple[NetworkPolicy, ...]:
        """Every valid policy, sorted by namespace/name."""
        return self._sorted_values("policies", self._policies)  # type: ignore[arg-type,return-value]

    @property
    def invalid(self) -> list[InvalidObjectError]:
        """Why each skipped policy was skipped (one error per offending field)."""
        return [e for _, errors in sorted(self._invalid.items(), key=lambda kv: kv[0]) for e in errors]

    @property
    def cilium(self) -> CiliumIndex:
        """The valid Cilium policies (compiled) and CIDR groups."""
        return self._cilium

    @property
    def cilium_policies(self) -> tuple[CompiledPolicy, ...]:
        """Every valid CNP and CCNP, compiled: CCNPs first, then CNPs by namespace/name."""
        return self._sorted_values("cilium", self._cilium.policies)  # type: ignore[arg-type,return-value]

    @property
    def services(self) -> tuple[Service, ...]:
        """Every Service, sorted by namespace/name."""
        return self._sorted_values("services", self._services.services)  # type: ignore[arg-type,return-value]

    @property
    def service_index(self) -> ServiceIndex:
        """Services and EndpointSlices, slices grouped by their Service."""
        return self._services

    def service(self, namespace: str, name: str) -> Service | None:
        return self._services.service(namespace, name)

    def service_slices(self, namespace: str, name: str) -> tuple[EndpointSlice, ...]:
        """The EndpointSlices of Service namespace/name (by their `kubernetes.io/service-name` label)."""
        return self._services.slices_of(namespace, name)

    def pod(self, namespace: str, name: str) -> Pod | None:
        return self._pods.get((namespace, name))

    def pod_by_ip(self, ip: str) -> Pod | None:
        return self._pod_ip.get(ip)

    def node(self, name: str) -> Node | None:
        return self._nodes.get(name)

    def node_by_ip(self, ip: str) -> Node | None:
        return self._node_ip.get(ip)

    def namespace(self, name: str) -> Namespace | None:
        return self._namespaces.get(name)

    def policy(self, namespace: str, name: str) -> NetworkPolicy | None:
        return self._policies.get((namespace, name))

    def pods_in(self, namespace: str) -> tuple[Pod, ...]:
        """Pods of one namespace, sorted by name (memoised; kept as a persistent map by name, so a pod
        change copies one path of it, not the namespace's list)."""
        pods: PMap[str, object] = self._pods_by_ns.get(namespace) or PMap()  # type: ignore[assignment]
        return self._sorted_values(f"pods-in:{namespace}", pods)  # type: ignore[return-value]

    def policies_in(self, namespace: str) -> tuple[NetworkPolicy, ...]:
        """Valid policies of one namespace, sorted by name."""
        return self._policies_by_ns.get(namespace) or ()

    def namespace_labels(self, name: str) -> Mapping[str, str]:
        """Labels of namespace `name` incl. kubernetes.io/metadata.name (just that one if unknown)."""
        labels = self._ns_labels.get(name)
        if labels is None:
            ns = self._namespaces.get(name)
            labels = namespace_labels(name, ns.labels if ns is not None else {})
            self._ns_labels[name] = labels
        return labels

    def selector_labels(self, pod: Pod, selector: LabelSelector) -> Mapping[str, str]:
        """The labels a NetworkPolicy podSelector is matched against: the pod's own, plus the labels
        Cilium puts in every identity (`io.kubernetes.pod.namespace`, `io.cilium.k8s.policy.*`,
        `io.cilium.k8s.namespace.labels.*`) when the selector names one, as Cilium matches them."""
        if not _names_derived(selector):
            return pod.labels
        key = ("knp-labels", pod.namespace, pod.name)
        own = self._pods.get((pod.namespace, pod.name)) is pod
        hit = self.memo.get(key) if own else None
        if hit is None:
            hit = {**pod.labels, **derived_labels(pod, self.namespace_labels(pod.namespace), DEFAULT_CLUSTER)}
            if own:
                self.memo[key] = hit
        return hit  # type: ignore[return-value]

    def policy_id(self, policy: NetworkPolicy) -> PolicyId:
        """`policy_id(policy)`, memoised per policy object so decisions share PolicyId values."""
        key = (policy.namespace, policy.name)
        hit = self._ids.get(key)
        if hit is not None and hit[0] is policy:
            return hit[1]
        pid = policy_id(policy)
        self._ids[key] = (policy, pid)
        return pid

    def policies_selecting(self, pod: Pod, direction: PolicyDirection) -> tuple[NetworkPolicy, ...]:
        """Valid policies of the pod's namespace whose podSelector matches it and that apply to `direction`."""
        own = self._pods.get((pod.namespace, pod.name)) is pod
        cache_key = (pod.namespace, pod.name, direction)
        if own:
            hit = self._selecting.get(cache_key)
            if hit is not None:
                return hit
        found = tuple(p for p in self.policies_in(pod.namespace)
                      if policy_applies(p, direction)
                      and selector_matches(p.pod_selector, self.selector_labels(pod, p.pod_selector)))
        if own:
            self._selecting[cache_key] = found
        return found


@functools.lru_cache(maxsize=4096)
def _names_derived(selector: LabelSelector) -> bool:
    return mentions_derived(selector_keys(selector))


class _Builder:
    """Mutable accumulation for `ClusterState.build`."""

    def __init__(self) -> None:
        self.pods: dict[Key, Pod] = {}
        self.namespaces: dict[str, Namespace] = {}
        self.nodes: dict[str, Node] = {}
        self.policies: dict[Key, NetworkPolicy] = {}
        self.cilium: dict[PolicyKey, CiliumNetworkPolicy] = {}
        self.groups: dict[str, CiliumCIDRGroup] = {}
        self.services: dict[Key, Service] = {}
        self.slices: dict[Key, EndpointSlice] = {}

    def put(self, obj: KubeObject) -> None:
        if isinstance(obj, Pod):
            self.pods[(obj.namespace, obj.name)] = obj
        elif isinstance(obj, NetworkPolicy):
            self.policies[(obj.namespace, obj.name)] = obj
        elif isinstance(obj, Namespace):
            self.namespaces[obj.name] = obj
        elif isinstance(obj, CiliumNetworkPolicy):
            self.cilium[policy_key(obj)] = obj
        elif isinstance(obj, CiliumCIDRGroup):
            self.groups[obj.name] = obj
        elif isinstance(obj, Service):
            self.services[(obj.namespace, obj.name)] = obj
        elif isinstance(obj, EndpointSlice):
            self.slices[(obj.namespace, obj.name)] = obj
        else:
            self.nodes[obj.name] = obj

    def freeze(self) -> ClusterState:
        pods_by_ns: dict[str, list[Pod]] = {}
        for pod in self.pods.values():
            pods_by_ns.setdefault(pod.namespace, []).append(pod)
        pod_ip = [(ip, p) for p in self.pods.values() if not p.host_network for ip in p.ips]
        cilium, invalid = CiliumIndex.build(list(self.cilium.values()), list(self.groups.values()))
        valid: dict[Key, NetworkPolicy] = {}
        for key, policy in self.policies.items():
            errors = tuple(validate_policy(policy))
            if errors:
                invalid[(KNP, *key)] = errors
            else:
                valid[key] = policy
        pols_by_ns: dict[str, list[NetworkPolicy]] = {}
        for policy in valid.values():
            pols_by_ns.setdefault(policy.namespace, []).append(policy)
        return ClusterState(
            PMap.from_items(self.pods.items()),
            PMap.from_items((ns, PMap.from_items((p.name, p) for p in ps)) for ns, ps in pods_by_ns.items()),
            PMap.from_items(pod_ip),
            PMap.from_items(self.namespaces.items()),
            PMap.from_items(self.nodes.items()),
            PMap.from_items((ip, n) for n in self.nodes.values() for ip in n.addresses),
            PMap.from_items(valid.items()),
            PMap.from_items((ns, tuple(sorted(ps, key=lambda p: p.name))) for ns, ps in pols_by_ns.items()),
            PMap.from_items(invalid.items()),
            cilium,
            services=ServiceIndex.build(list(self.services.values()), list(self.slices.values())),
        )
