"""Cilium's label model: identity labels of every endpoint and endpoint selectors over them.

Cilium decides on security identities, each a set of `source:key=value` labels.  A pod's identity
holds its Kubernetes labels and the ones Cilium derives (pkg/k8s/apis/cilium.io/const.go,
pkg/k8s/utils): `io.kubernetes.pod.namespace`, `io.cilium.k8s.policy.serviceaccount`,
`io.cilium.k8s.policy.cluster` and `io.cilium.k8s.namespace.labels.<key>` for every namespace
label, all with source `k8s`.  Reserved endpoints carry `reserved:<name>` (host, remote-node,
world, kube-apiserver, health, init, ingress, unmanaged).

A selector key is `source:key`; a key without a source selects any source (`any:`), as
`labels.ParseSelectLabel` reads it.  Requirements are ANDed; operators as in apimachinery.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from auditor.model.k8s import LabelSelector, Pod

K8S = "k8s"
ANY = "any"
RESERVED = "reserved"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
SERVICE_ACCOUNT = "io.cilium.k8s.policy.serviceaccount"
CLUSTER = "io.cilium.k8s.policy.cluster"
NAMESPACE_LABELS = "io.cilium.k8s.namespace.labels."
DEFAULT_CLUSTER = "default"


@dataclass(frozen=True, slots=True)
class Requirement:
    """One requirement of a compiled endpoint selector: `source:key op values`."""

    source: str
    key: str
    operator: str
    """In, NotIn, Exists or DoesNotExist (matchLabels entries become In with one value)."""
    values: frozenset[str] = frozenset()


Selector = tuple[Requirement, ...]
"""A compiled endpoint selector; empty selects every identity (Cilium's wildcard selector)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """The labels of one security identity: `source:key` -> value, and key -> values of any source."""

    labels: Mapping[str, str]
    by_key: Mapping[str, tuple[str, ...]]

    @classmethod
    def of(cls, labels: Mapping[str, str]) -> Identity:
        by_key: dict[str, list[str]] = {}
        for full, value in labels.items():
            by_key.setdefault(full.partition(":")[2], []).append(value)
        return cls(labels, {k: tuple(v) for k, v in by_key.items()})

    def values(self, source: str, key: str) -> tuple[str, ...]:
        if source == ANY:
            return self.by_key.get(key, ())
        value = self.labels.get(f"{source}:{key}")
        return () if value is None else (value,)


def split_key(key: str) -> tuple[str, str]:
    """`k8s:app` -> (k8s, app); `app` -> (any, app).  Kubernetes label keys cannot contain ':'."""
    source, colon, rest = key.partition(":")
    return (source, rest) if colon else (ANY, key)


def compile_selector(selector: LabelSelector) -> Selector:
    """matchLabels and matchExpressions as requirements, keys split into source and key."""
    found: list[Requirement] = []
    for key, value in selector.match_labels.items():
        source, name = split_key(key)
        found.append(Requirement(source, name, "In", frozenset((value,))))
    for req in selector.match_expressions:
        source, name = split_key(req.key)
        found.append(Requirement(source, name, req.operator, frozenset(req.values)))
    return tuple(found)


def requirement_holds(req: Requirement, identity: Identity) -> bool:
    values = identity.values(req.source, req.key)
    op = req.operator
    if op == "In":
        return any(v in req.values for v in values)
    if op == "NotIn":
        return not any(v in req.values for v in values)
    if op == "Exists":
        return bool(values)
    if op == "DoesNotExist":
        return not values
    return False


def selects(selector: Selector, identity: Identity) -> bool:
    return all(requirement_holds(req, identity) for req in selector)


def has_key(selector: Selector, key: str) -> bool:
    """True when a requirement names `key` with source k8s or any (Cilium's `HasKey` on both)."""
    return any(r.key == key and r.source in (K8S, ANY) for r in selector)


def has_reserved(selector: Selector) -> bool:
    return any(r.source == RESERVED for r in selector)


_IGNORED_PREFIXES = ("io.kubernetes", "kubernetes.io", "k8s.io", "pod-template-generation", "pod-template-hash",
                     "controller-revision-hash", "annotation", "etcd_node", "io.cilium.k8s")
_BETA = re.compile(r".*beta\.kubernetes\.io")


def identity_relevant(key: str) -> bool:
    """Cilium's default identity label filter (pkg/labelsfilter): labels it leaves out of identities
    (pod-template-hash, kubernetes.io/..., ...) can never be selected by a Cilium policy."""
    if key.startswith("app.kubernetes.io"):
        return True
    return not key.startswith(_IGNORED_PREFIXES) and _BETA.match(key) is None


def derived_labels(pod: Pod, namespace_labels: Mapping[str, str], cluster: str) -> dict[str, str]:
    """The labels Cilium adds to every pod's identity (without source prefix)."""
    labels = {POD_NAMESPACE: pod.namespace, SERVICE_ACCOUNT: pod.service_account or "default", CLUSTER: cluster}
    for key, value in namespace_labels.items():
        labels[f"{NAMESPACE_LABELS}{key}"] = value
    return labels


def mentions_derived(keys: Iterable[str]) -> bool:
    """True when a selector's keys name a label only Cilium's identities carry."""
    return any(k == POD_NAMESPACE or k.startswith("io.cilium.k8s.") for k in keys)


def pod_labels(pod: Pod, namespace_labels: Mapping[str, str], cluster: str) -> dict[str, str]:
    """A pod's identity labels, as the Cilium agent derives them (filtered as its label filter does)."""
    labels = {f"{K8S}:{k}": v for k, v in pod.labels.items() if identity_relevant(k)}
    for key, value in derived_labels(pod, namespace_labels, cluster).items():
        labels[f"{K8S}:{key}"] = value
    return labels


def reserved_identity(*names: str, extra: Mapping[str, str] | None = None) -> Identity:
    """An identity of reserved labels (`reserved:host`, ...) plus `extra` labels (a node's)."""
    labels = {f"{RESERVED}:{name}": "" for name in names}
    if extra:
        labels.update(extra)
    return Identity.of(labels)


def describe(selector: Selector) -> str:
    """`app=web,k8s:io.kubernetes.pod.namespace=shop`, or `<all>` for the wildcard."""
    if not selector:
        return "<all>"
    parts: list[str] = []
    for r in selector:
        key = r.key if r.source == ANY else f"{r.source}:{r.key}"
        values = ",".join(sorted(r.values))
        if r.operator == "In" and len(r.values) == 1:
            parts.append(f"{key}={values}")
        elif r.operator in ("In", "NotIn"):
            parts.append(f"{key} {r.operator.lower()} ({values})")
        else:
            parts.append(key if r.operator == "Exists" else f"!{key}")
    return ",".join(parts)
