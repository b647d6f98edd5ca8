"""The Cilium part of a ClusterState: valid CNPs by namespace, CCNPs, CiliumCIDRGroups.

Immutable like the state that holds it: `with_policy` / `with_group` return a new index sharing
everything untouched.  Policies are validated (`cilium_validate`) and compiled
(`cilium_compile`) once per version on the way in; invalid ones are left out and their errors
returned to the state, which reports them with the Kubernetes policies' errors.
"""

from __future__ import annotations

from dataclasses import dataclass

from auditor.errors import InvalidObjectError
from auditor.model.cilium import CiliumCIDRGroup, CiliumNetworkPolicy
from auditor.policy.cilium_compile import CompiledPolicy, CSpec, compile_policy
from auditor.policy.cilium_labels import ANY, DEFAULT_CLUSTER, Identity
from auditor.policy.cilium_validate import validate_cidr_group, validate_cilium_policy
from auditor.policy.pmap import PMap

PolicyKey = tuple[str, str, str]
"""(kind, namespace, name): a CNP, a CCNP and a NetworkPolicy may share namespace and name."""


def policy_key(policy: CiliumNetworkPolicy) -> PolicyKey:
    return (policy.kind.value, policy.namespace, policy.name)


def group_key(group: CiliumCIDRGroup) -> PolicyKey:
    return ("CiliumCIDRGroup", "", group.name)


def _by_name(found: list[CompiledPolicy]) -> tuple[CompiledPolicy, ...]:
    return tuple(sorted(found, key=lambda c: c.policy.name))


SpecRef = tuple[CompiledPolicy, CSpec]


@dataclass(frozen=True, slots=True)
class SubjectIndex:
    """Specs keyed by one `key In (value)` requirement of their subject selector, so finding the specs
    that may select an identity costs a lookup per identity label, not a selector match per spec."""

    by_label: dict[tuple[str, str, str], tuple[SpecRef, ...]]
    unindexed: tuple[SpecRef, ...]

    @classmethod
    def of(cls, policies: tuple[CompiledPolicy, ...]) -> SubjectIndex:
        by_label: dict[tuple[str, str, str], list[SpecRef]] = {}
        unindexed: list[SpecRef] = []
        for compiled in policies:
            for spec in compiled.specs:
                if spec.subject is None:
                    continue
                pin = next((r for r in spec.subject if r.operator == "In" and len(r.values) == 1), None)
                if pin is None:
                    unindexed.append((compiled, spec))
                else:
                    key = (pin.source, pin.key, next(iter(pin.values)))
                    by_label.setdefault(key, []).append((compiled, spec))
        return cls({k: tuple(v) for k, v in by_label.items()}, tuple(unindexed))

    def candidates(self, identity: Identity) -> list[SpecRef]:
        """Specs that may select `identity` (each still to be matched), in policy-name order."""
        found = list(self.unindexed)
        for full, value in identity.labels.items():
            source, _, key = full.partition(":")
            found.extend(self.by_label.get((source, key, value), ()))
            found.extend(self.by_label.get((ANY, key, value), ()))
        return sorted(dict.fromkeys(found), key=lambda ref: (ref[0].policy.name, ref[0].specs.index(ref[1])))


_NO_SUBJECTS = SubjectIndex({}, ())


@dataclass(frozen=True, slots=True)
class CiliumIndex:
    """Valid compiled Cilium policies and the CIDR groups they may reference."""

    policies: PMap[PolicyKey, CompiledPolicy]
    by_namespace: PMap[str, tuple[CompiledPolicy, ...]]
    """CNPs per namespace, and CCNPs under the key "" (sorted by name)."""
    groups: PMap[str, CiliumCIDRGroup]
    clusterwide: SubjectIndex = _NO_SUBJECTS
    """The CCNPs' pod-selecting specs, indexed by subject label."""

    @classmethod
    def empty(cls) -> CiliumIndex:
        return cls(PMap(), PMap(), PMap())

    @classmethod
    def build(cls, policies: list[CiliumNetworkPolicy], groups: list[CiliumCIDRGroup]
              ) -> tuple[CiliumIndex, dict[PolicyKey, tuple[InvalidObjectError, ...]]]:
        """An index of `policies` and `groups` (invalid ones left out), and the errors per object."""
        invalid: dict[PolicyKey, tuple[InvalidObjectError, ...]] = {}
        valid: dict[PolicyKey, CompiledPolicy] = {}
        for policy in policies:
            errors = tuple(validate_cilium_policy(policy))
            if errors:
                invalid[policy_key(policy)] = errors
            else:
                valid[policy_key(policy)] = compile_policy(policy, DEFAULT_CLUSTER)
        good_groups: dict[str, CiliumCIDRGroup] = {}
        for group in groups:
            errors = tuple(validate_cidr_group(group))
            if errors:
                invalid[group_key(group)] = errors
            else:
                good_groups[group.name] = group
        by_ns: dict[str, list[CompiledPolicy]] = {}
        for compiled in valid.values():
            by_ns.setdefault(compiled.policy.namespace, []).append(compiled)
        by_namespace = PMap.from_items((ns, _by_name(found)) for ns, found in by_ns.items())
        return (cls(PMap.from_items(valid.items()), by_namespace, PMap.from_items(good_groups.items()),
                    SubjectIndex.of(by_namespace.get("") or ())), invalid)

    def with_policy(self, policy: CiliumNetworkPolicy, deleted: bool
                    ) -> tuple[CiliumIndex, tuple[InvalidObjectError, ...]]:
        """The index after the policy was added, changed or deleted; its validation errors."""
        key = policy_key(policy)
        errors = () if deleted else tuple(validate_cilium_policy(policy))
        keep = not deleted and not errors
        policies = (self.policies.set(key, compile_policy(policy, DEFAULT_CLUSTER)) if keep
                    else self.policies.delete(key))
        namespace = policy.namespace
        siblings = [c for c in (self.by_namespace.get(namespace) or ()) if c.policy.name != policy.name]
        if keep:
            compiled = policies.get(key)
            assert compiled is not None
            siblings.append(compiled)
        by_ns = (self.by_namespace.set(namespace, _by_name(siblings)) if siblings
                 else self.by_namespace.delete(namespace))
        clusterwide = SubjectIndex.of(by_ns.get("") or ()) if not namespace else self.clusterwide
        return CiliumIndex(policies, by_ns, self.groups, clusterwide), errors

    def with_group(self, group: CiliumCIDRGroup, deleted: bool
                   ) -> tuple[CiliumIndex, tuple[InvalidObjectError, ...]]:
        errors = () if deleted else tuple(validate_cidr_group(group))
        keep = not deleted and not errors
        groups = self.groups.set(group.name, group) if keep else self.groups.delete(group.name)
        return CiliumIndex(self.policies, self.by_namespace, groups, self.clusterwide), errors

    def namespaced(self, namespace: str) -> tuple[CompiledPolicy, ...]:
        """CNPs of `namespace` (sorted by name); `namespaced("")` is every CCNP."""
        return self.by_namespace.get(namespace) or ()
