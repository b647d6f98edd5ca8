"""ClusterHistory: the ClusterState in force at any instant of a bounded window.

Changes are kept with the time they took effect, each with the state after it (states share
structure, so this costs a little per change, not a copy of the cluster).  Time is always given by
the caller: the history never reads a clock.

- `apply` expects changes in time order; a change older than the newest one is inserted at its
  time (after any change with the same time) and every later state is rebuilt from it, so the
  result equals the in-order result.  A change older than the pruning horizon is applied at the
  horizon: it is folded into the oldest kept state and every later one.
- `at(t)` answers with the state after the last change at or before `t`; before the window (or
  before the first change) it answers with the oldest kept state, i.e. the state in force at the
  start of the window (the initial manifests before anything was pruned).
- `prune(now)` folds every change at or before `now - window_ns` into the oldest kept state.
- A change that alters nothing auditor reads is not recorded: a Pod, Node or Namespace write
  `relevant_equal` to the object in force at its time (a kubelet status write, a node
  heartbeat), or the deletion of one not in force.  It is counted in `unchanged`; the state in
  force keeps the earlier, equivalent object (its resourceVersion is the earlier one).  So the
  history grows with what auditor reads, not with how often the API server is written.  One
  approximation: a late change of an object inserted before such a skipped write is not undone
  by it (in-order, the write would restore the object as it was); writes of one object arrive in
  order from its watch, so this needs a clock step backwards.
"""

from __future__ import annotations

import bisect

from auditor.model.cilium import CiliumNetworkPolicy
from auditor.model.k8s import (
    Change,
    ChangeType,
    KubeObject,
    Namespace,
    NetworkPolicy,
    Node,
    Pod,
    relevant_equal,
)
from auditor.policy.state import ClusterState

DAY_NS = 24 * 3600 * 1_000_000_000


class ClusterHistory:
    """A time-indexed sequence of ClusterStates; see the module docstring."""

    def __init__(self, window_ns: int = DAY_NS, initial: ClusterState | None = None) -> None:
        if window_ns <= 0:
            raise ValueError("window_ns must be positive")
        self.window_ns = window_ns
        self._base = initial if initial is not None else ClusterState.empty()
        self._times: list[int] = []
        self._changes: list[Change] = []
        self._states: list[ClusterState] = []
        self._horizon: int | None = None
        self.out_of_order = 0
        """How many changes arrived older than the newest one (counted, then handled)."""
        self.unchanged = 0
        """How many changes altered nothing auditor reads (counted, not recorded; see the module docstring)."""

    def __len__(self) -> int:
        return len(self._changes)

    def apply(self, change: Change) -> None:
        """Record a change at `change.time_ns` (unless it changes nothing auditor reads)."""
        if _changes_nothing(self.at(change.time_ns), change):
            self.unchanged += 1
            return
        if self._horizon is not None and change.time_ns <= self._horizon:
            self.out_of_order += 1
            self._base = self._base.apply(change)
            self._rebuild(0)
            return
        if not self._times or change.time_ns >= self._times[-1]:
            previous = self._states[-1] if self._states else self._base
            previous.drop_memos()
            self._times.append(change.time_ns)
            self._changes.append(change)
            self._states.append(previous.apply(change))
            return
        self.out_of_order += 1
        index = bisect.bisect_right(self._times, change.time_ns)
        self._times.insert(index, change.time_ns)
        self._changes.insert(index, change)
        self._states.insert(index, self._base)  # placeholder, rebuilt next
        self._rebuild(index)

    def apply_initial(self, change: Change) -> None:
        """Fold a change into the state before every recorded change (an initial listing).

        A live inventory's first list describes the cluster as it already was: its objects are
        in force for every instant, and keeping one history entry per listed object would cost
        a state per object for nothing.  Later changes are rebuilt on top.
        """
        if _changes_nothing(self._base, change):
            self.unchanged += 1
            return
        self._base = self._base.apply(change)
        if self._changes:
            self._rebuild(0)

    def _rebuild(self, index: int) -> None:
        state = self._states[index - 1] if index > 0 else self._base
        for i in range(index, len(self._changes)):
            state = state.apply(self._changes[i])
            self._states[i] = state

    def at(self, time_ns: int) -> ClusterState:
        """The state in force at `time_ns` (the oldest kept state when `time_ns` precedes the window)."""
        index = bisect.bisect_right(self._times, time_ns)
        return self._states[index - 1] if index > 0 else self._base

    def latest(self) -> ClusterState:
        return self._states[-1] if self._states else self._base

    def oldest(self) -> ClusterState:
        """The state at the start of the kept window."""
        return self._base

    def changes_between(self, from_ns: int, to_ns: int, *, policies_only: bool = False) -> list[Change]:
        """Changes with from_ns <= time <= to_ns, in time order (optionally policy changes only, any kind)."""
        lo = bisect.bisect_left(self._times, from_ns)
        hi = bisect.bisect_right(self._times, to_ns)
        found = self._changes[lo:hi]
        if policies_only:
            return [c for c in found if isinstance(c.obj, NetworkPolicy | CiliumNetworkPolicy)]
        return list(found)

    def prune(self, now_ns: int) -> int:
        """Forget changes at or before `now_ns - window_ns`; returns how many were folded away."""
        horizon = now_ns - self.window_ns
        cut = bisect.bisect_right(self._times, horizon)
        if cut:
            self._base = self._states[cut - 1]
            del self._times[:cut], self._changes[:cut], self._states[:cut]
        if self._horizon is None or horizon > self._horizon:
            self._horizon = horizon
        return cut


def _in_force(state: ClusterState, obj: KubeObject) -> KubeObject | None:
    """The object of `obj`'s kind and name in `state` (pods, nodes and namespaces only)."""
    if isinstance(obj, Pod):
        return state.pod(obj.namespace, obj.name)
    if isinstance(obj, Node):
        return state.node(obj.name)
    if isinstance(obj, Namespace):
        return state.namespace(obj.name)
    return None


def _changes_nothing(state: ClusterState, change: Change) -> bool:
    """True when applying `change` to `state` alters nothing auditor reads."""
    if not isinstance(change.obj, Pod | Node | Namespace):
        return False
    current = _in_force(state, change.obj)
    if change.type is ChangeType.DELETED:
        return current is None
    return current is not None and relevant_equal(current, change.obj)
