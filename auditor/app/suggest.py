"""'Did you mean ...?' for names a user types that the inventory does not have: pods, namespaces,
policies.  A pod is usually named by its workload (`shop/frontend` for the Deployment's pod
`shop/frontend-7d9c5b7f4-x2k8p`), so names that start with what was typed come first, then the
closest spellings (difflib), at most three."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from auditor.policy.state import ClusterState

MAX_SUGGESTIONS = 3


def closest(wanted: str, candidates: Iterable[str]) -> list[str]:
    """Up to MAX_SUGGESTIONS candidates: those extending `wanted` (shortest first), then near spellings."""
    names = sorted(set(candidates))
    extending = sorted((n for n in names if n.startswith(wanted) and n != wanted), key=lambda n: (len(n), n))
    near = difflib.get_close_matches(wanted, names, n=MAX_SUGGESTIONS, cutoff=0.6)
    return list(dict.fromkeys([*extending, *near]))[:MAX_SUGGESTIONS]


def hint(wanted: str, candidates: Iterable[str]) -> str:
    """` (did you mean a, b or c?)`, or "" when nothing is close."""
    found = closest(wanted, candidates)
    if not found:
        return ""
    listed = found[0] if len(found) == 1 else f"{', '.join(found[:-1])} or {found[-1]}"
    return f" (did you mean {listed}?)"


def namespace_names(state: ClusterState) -> set[str]:
    return {ns.name for ns in state.namespaces} | {p.namespace for p in state.pods}


def pod_hint(state: ClusterState, namespace: str, name: str) -> str:
    """For an unknown `namespace/name`: pods of that namespace, or namespaces when it has none."""
    in_namespace = [p.name for p in state.pods_in(namespace)]
    if in_namespace:
        return hint(f"{namespace}/{name}", (f"{namespace}/{n}" for n in in_namespace))
    namespaces = namespace_names(state)
    if namespace not in namespaces:
        return f"; namespace {namespace} is unknown{hint(namespace, namespaces)}"
    return hint(f"{namespace}/{name}", (p.key for p in state.pods))


def namespace_hint(state: ClusterState, namespace: str) -> str:
    return hint(namespace, namespace_names(state))


def policy_hint(state: ClusterState, ref: str) -> str:
    """For an unknown policy `ns/name` (or a cluster-wide policy's name): policies of every kind by ref."""
    refs = [f"{p.namespace}/{p.name}" for p in state.policies]
    refs += [c.pid.ref.split(" ", 1)[-1] for c in state.cilium_policies]
    return hint(ref, refs)
