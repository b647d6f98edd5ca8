"""`auditor whatif`: re-judge every recorded connection under proposed policies, offline.

Wiring only: the history of the current manifests (+ cluster events) is `audit.build_history`'s,
flows come from `KeyFlowSource` (JSON straight to the fields connections read; a large plain file
is read in parts by one process per core, `whatif_split`) or from the
connections a daemon kept in a store (`whatif_store`), connections are folded by
`findings.connections`, judged twice by one `PolicyEngine` (`findings.whatif.judge`), and the
posture delta compares the newest current state with the proposed one.

The proposed change is a list of `Change`s applied, in order, on top of the state in force at each
connection's time (so a capture spanning cluster events is judged "as if the change had been
there all along"):
- `--proposed PATH...`: every object is added or replaces the object of the same kind and name;
  with `replace_policies` the paths are the *whole* policy set: current policies (of every kind)
  they do not hold are deleted (a policies directory of a branch against the one of main);
- `--proposed-events FILE`: `--cluster-events` lines (ADDED/MODIFIED/DELETED) applied in file order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from auditor.app.audit import build_history
from auditor.app.whatif_split import MIN_SPLIT_BYTES, collect_split, splittable
from auditor.app.whatif_store import Collected, collect_store
from auditor.app.workers import default_workers
from auditor.errors import ConfigError
from auditor.findings.connections import CollectStats, ConnectionCollector
from auditor.findings.session import AnalysisOptions
from auditor.findings.whatif import Change, Judged, PostureDelta, Row, judge, posture_delta, rows
from auditor.hubble.keyflows import KeyFlowSource
from auditor.kube.events import load_cluster_events
from auditor.kube.export import object_to_dict
from auditor.kube.manifests import load_manifests
from auditor.model.cilium import CiliumNetworkPolicy
from auditor.model.flows import Flow
from auditor.model.k8s import Change as KubeChange
from auditor.model.k8s import ChangeType, KubeObject, NetworkPolicy
from auditor.policy.history import ClusterHistory
from auditor.policy.state import ClusterState

EXIT_FAIL_ON = 3
FAIL_ON = ("newly-denied", "newly-allowed", "any-change")
"""--fail-on values: exit 3 when a connection of that change (any shown change) exists."""


@dataclass(frozen=True, slots=True)
class WhatifOptions:
    manifests: tuple[str, ...]
    proposed: tuple[str, ...] = ()
    proposed_events: str | None = None
    replace_policies: bool = False
    flows: tuple[str, ...] = ()
    store: str | None = None
    cluster_events: str | None = None
    from_ns: int | None = None
    to_ns: int | None = None
    enforce_node_traffic: bool = False
    policy_enforcement: str = "default"
    cidr_match_nodes: bool = False
    fail_on: str | None = None

    @property
    def analysis(self) -> AnalysisOptions:
        """The engine settings, as `audit` and `report` take them."""
        return AnalysisOptions(enforce_node_traffic=self.enforce_node_traffic,
                               cidr_match_nodes=self.cidr_match_nodes,
                               policy_enforcement=self.policy_enforcement)


@dataclass(frozen=True, slots=True)
class ProposedChange:
    """One object of the proposal, as people read it: `added NetworkPolicy shop/web`."""

    action: str
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.action} {self.kind} {self.name}"


@dataclass(frozen=True, slots=True)
class WhatifResult:
    rows: tuple[Row, ...]
    judged: tuple[Judged, ...]
    posture: PostureDelta
    proposal: tuple[ProposedChange, ...]
    invalid: tuple[str, ...]
    """Errors of proposed policies that are invalid (an invalid version removes the valid one)."""
    stats: CollectStats
    source: str
    notes: tuple[str, ...] = ()
    by_change: dict[str, int] = field(default_factory=dict)
    """Connection keys per change."""
    flows_by_change: dict[str, int] = field(default_factory=dict)

    @property
    def distinct(self) -> int:
        """Distinct connection keys judged (a key seen in several states or directions counts once)."""
        return len({j.observation.key for j in self.judged})

    def count(self, change: Change) -> int:
        return self.by_change.get(change.value, 0)

    def failing(self, fail_on: str | None) -> int:
        """Connection keys that meet `--fail-on` (0 without it)."""
        if fail_on is None:
            return 0
        if fail_on == "any-change":
            return sum(v for k, v in self.by_change.items() if k != Change.UNCHANGED.value)
        return self.by_change.get(fail_on, 0)


def object_ref(obj: KubeObject) -> tuple[str, str]:
    """(kind, namespace/name or name) of an inventory object."""
    kind = obj.kind.value if isinstance(obj, CiliumNetworkPolicy) else type(obj).__name__
    namespace = getattr(obj, "namespace", "")
    name = getattr(obj, "name", "")
    return kind, f"{namespace}/{name}" if namespace else name


def _is_policy(obj: KubeObject) -> bool:
    return isinstance(obj, NetworkPolicy | CiliumNetworkPolicy)


def _policy_objects(state: ClusterState) -> list[KubeObject]:
    return [*state.policies, *(c.policy for c in state.cilium_policies)]


def proposal_changes(options: WhatifOptions, latest: ClusterState) -> list[KubeChange]:
    """The proposed changes in the order they apply (see the module docstring)."""
    changes: list[KubeChange] = []
    if options.proposed:
        objects = load_manifests(list(options.proposed))
        changes += [KubeChange(0, ChangeType.MODIFIED, obj) for obj in objects]
        if options.replace_policies:
            kept = {object_ref(obj) for obj in objects if _is_policy(obj)}
            changes += [KubeChange(0, ChangeType.DELETED, obj) for obj in _policy_objects(latest)
                        if object_ref(obj) not in kept]
    if options.proposed_events:
        changes += load_cluster_events(options.proposed_events)
    return changes


def describe_proposal(changes: Sequence[KubeChange], latest: ClusterState) -> tuple[ProposedChange, ...]:
    """What each proposed change does to the newest current state: added, changed or deleted."""
    existing = {object_ref(obj): obj for obj in (*_policy_objects(latest), *latest.pods, *latest.namespaces)}
    described = []
    for change in changes:
        kind, name = object_ref(change.obj)
        before = existing.get((kind, name))
        if change.type is ChangeType.DELETED:
            action = "deleted" if before is not None else "deleted (absent)"
        elif before is None:
            action = "added"
        else:
            action = "unchanged" if _same(before, change.obj) else "changed"
        described.append(ProposedChange(action, kind, name))
    return tuple(described)


_REVISION_FIELDS = ("resourceVersion", "uid", "generation")


def _same(before: KubeObject, after: KubeObject) -> bool:
    """Equal as manifests, but for the revision fields a manifest kept in git does not carry."""
    manifests = [object_to_dict(before), object_to_dict(after)]
    for manifest in manifests:
        for name in _REVISION_FIELDS:
            manifest["metadata"].pop(name, None)
    return manifests[0] == manifests[1]


class Proposed:
    """`state` -> `state` with the proposal applied; one state per current revision."""

    def __init__(self, changes: Sequence[KubeChange]) -> None:
        self._changes = list(changes)
        self._states: dict[int, ClusterState] = {}

    def __call__(self, state: ClusterState) -> ClusterState:
        found = self._states.get(state.revision)
        if found is None:
            found = state
            for change in self._changes:
                found = found.apply(change)
            self._states[state.revision] = found
        return found


def _invalid_added(current: ClusterState, proposed: ClusterState) -> tuple[str, ...]:
    before = {str(error) for error in current.invalid}
    return tuple(str(e) for e in proposed.invalid if str(e) not in before)


def collect_files(history: ClusterHistory, flows: Sequence[str], from_ns: int | None = None,
                  to_ns: int | None = None, *, workers: int | None = None,
                  min_split_bytes: int = MIN_SPLIT_BYTES) -> ConnectionCollector:
    """Every flow of the files inside the window, folded into observations; plain files of
    `min_split_bytes` or more in `workers` processes (default: the cores available), see whatif_split."""
    source = KeyFlowSource(flows, light=True)  # only what connections read; checks the paths
    lo = from_ns if from_ns is not None else 0
    hi = to_ns if to_ns is not None else 2**63
    workers = default_workers() if workers is None else workers
    if workers > 1 and splittable(flows, min_split_bytes):
        return collect_split(history, flows, lo, hi, workers)
    collector = ConnectionCollector(history)
    add = collector.add
    for event in source.events():
        if isinstance(event, Flow) and lo <= event.time_ns < hi:
            add(event)
    return collector


def run_whatif(options: WhatifOptions,
               collect: Callable[[ClusterHistory, WhatifOptions], Collected] | None = None) -> WhatifResult:
    """Judge the capture under the current and the proposed policies; AuditorError on bad input."""
    if bool(options.flows) == bool(options.store):
        raise ConfigError("give either --flows FILE... or --store URL")
    if not options.proposed and not options.proposed_events:
        raise ConfigError("give the change: --proposed PATH... and/or --proposed-events FILE")
    history, _objects, _changes = build_history(options.manifests, options.cluster_events)
    latest = history.latest()
    changes = proposal_changes(options, latest)
    proposed = Proposed(changes)
    observations, stats, source, notes = (collect or _collect)(history, options)
    engine = options.analysis.engine()
    judged = judge(observations, engine, proposed)
    found = rows(judged)
    by_change: Counter[str] = Counter(r.change.value for r in found)
    flows: Counter[str] = Counter()
    for r in found:
        flows[r.change.value] += r.flows
    return WhatifResult(
        rows=tuple(found), judged=tuple(judged), posture=posture_delta(latest, proposed(latest)),
        proposal=describe_proposal(changes, latest), invalid=_invalid_added(latest, proposed(latest)),
        stats=stats, source=source, notes=notes, by_change=dict(by_change), flows_by_change=dict(flows),
    )


def _collect(history: ClusterHistory, options: WhatifOptions) -> Collected:
    return collect(history, options.flows, options.store, options.from_ns, options.to_ns)


def collect(history: ClusterHistory, flows: Sequence[str], store: str | None, from_ns: int | None,
            to_ns: int | None) -> Collected:
    """Observations from flow files, or from the findings a daemon kept in `store`."""
    if store:
        return collect_store(history, store, from_ns, to_ns)
    collector = collect_files(history, flows, from_ns, to_ns)
    return collector.observations(), collector.stats, "flows " + ", ".join(flows), ()
