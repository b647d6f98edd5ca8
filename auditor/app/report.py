"""`auditor report`: wire files or the store, and the posture, into `auditor.report`.

Files mode runs `auditor audit`'s analysis session (`analyse_files`), with the engine wrapped in
a `RuleUsageRecorder` so the report can say which rules matched no flow.  Store mode reads what the
daemon recorded; the posture comes from `--manifests` or a one-shot listing of the live cluster.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

from auditor import __version__
from auditor.app.audit import HISTORY_WINDOW_NS, analyse_files, flows_by_verdict, load_cluster_inputs
from auditor.app.inputs import require_flows, require_objects
from auditor.app.suggest import hint, namespace_names
from auditor.app.whatif_report import with_whatif_section
from auditor.errors import ConfigError, InputError
from auditor.findings.correlate import CorrelatorStats
from auditor.findings.session import AnalysisOptions
from auditor.findings.static import static_findings
from auditor.kube.manifests import load_manifests
from auditor.model.cilium import CiliumNetworkPolicy
from auditor.model.decision import policy_id_of
from auditor.model.delta import policy_key
from auditor.model.findings import Finding, Severity
from auditor.model.k8s import NetworkPolicy
from auditor.policy.history import ClusterHistory
from auditor.policy.state import ClusterState
from auditor.report.build import ReportInputs, build_report
from auditor.report.data import Completeness, GapInfo, PolicyChange, ReportData
from auditor.report.fmt import plural
from auditor.report.posture import PolicyHits
from auditor.report.render import render
from auditor.report.usage import RuleUsage, RuleUsageRecorder
from auditor.store import open_store, require_existing_store
from auditor.store.base import Store
from auditor.store.records import CounterRow

EXIT_FAIL_ON = 3
"""Exit code when --fail-on finds findings of that severity or worse."""
MAX_FINDINGS = 50_000


@dataclass(frozen=True, slots=True)
class ReportOptions:
    format: str
    output: str | None = None
    """None: return the text only (the CLI writes stdout when --output is '-')."""
    store: str | None = None
    manifests: tuple[str, ...] = ()
    cluster_events: str | None = None
    flows: tuple[str, ...] = ()
    from_ns: int | None = None
    to_ns: int | None = None
    namespaces: tuple[str, ...] | None = None
    fail_on: Severity | None = None
    title: str | None = None
    generated_at_ns: int = 0
    """0: now, unless `reproducible`."""
    reproducible: bool = False
    """No wall-clock generation time (unless `generated_at_ns`) and no version: byte-identical output."""
    live_cluster: bool = True
    """Store mode without manifests: list the live cluster for the posture."""
    kubeconfig: str | None = None
    context: str | None = None
    enforce_node_traffic: bool = False
    policy_enforcement: str = "default"
    cidr_match_nodes: bool = False
    whatif_proposed: tuple[str, ...] = ()
    """A proposal to add an `auditor whatif` section for (app/whatif_report.py)."""
    whatif_replace_policies: bool = False
    allow_empty: bool = False
    """Flow files without a usable flow, or manifests without an object, are no error."""

    @property
    def analysis(self) -> AnalysisOptions:
        return AnalysisOptions(enforce_node_traffic=self.enforce_node_traffic,
                               cidr_match_nodes=self.cidr_match_nodes,
                               policy_enforcement=self.policy_enforcement, max_findings=MAX_FINDINGS)


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    data: ReportData
    text: str
    exit_code: int
    failing: int
    """Findings at or above --fail-on."""
    warnings: tuple[str, ...] = ()
    """What the CLI prints to stderr: --namespace names the data does not have (with suggestions)."""


def run_report(options: ReportOptions) -> ReportOutcome:
    """Analyse, build, render, write; the exit code honours --fail-on."""
    if options.store and options.flows:
        raise ConfigError("use either --store or --flows, not both")
    if not options.store and not options.flows:
        raise ConfigError("give --store URL, or --manifests and --flows files")
    inputs = store_inputs(options) if options.store else files_inputs(options)
    if options.title:
        inputs = _replace_title(inputs, options.title)
    data = build_report(_stamped(inputs, options))
    text = with_whatif_section(render(data, options.format), options)
    if options.output:
        try:
            with open(options.output, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
        except OSError as exc:
            raise InputError(f"cannot write the report: {exc.strerror}", path=options.output) from exc
    failing = _failing(data.findings, options.fail_on)
    warnings = (*_input_warnings(inputs), *_unknown_namespaces(inputs))
    return ReportOutcome(data, text, EXIT_FAIL_ON if failing else 0, failing, warnings)


def _input_warnings(inputs: ReportInputs) -> tuple[str, ...]:
    """Skipped input reaches stderr too, not only the report's completeness section."""
    warnings = []
    skipped = inputs.completeness.skipped_lines
    if skipped:
        warnings.append(f"{skipped} flow lines skipped as unusable (see the completeness section)")
    if inputs.state is not None:
        warnings.extend(f"invalid object skipped: {error}" for error in inputs.state.invalid)
    return tuple(warnings)


def _unknown_namespaces(inputs: ReportInputs) -> tuple[str, ...]:
    """A warning per --namespace that neither the posture nor the findings know, with close names."""
    known = {f.namespace for f in inputs.findings if f.namespace}
    if inputs.state is not None:
        known |= namespace_names(inputs.state)
    return tuple(f"namespace {ns} is in neither the posture nor the findings{hint(ns, known)}"
                 for ns in inputs.namespaces or () if ns not in known)


def _failing(findings: Iterable[Finding], threshold: Severity | None) -> int:
    if threshold is None:
        return 0
    return sum(1 for f in findings if f.severity.at_least(threshold))


def _replace_title(inputs: ReportInputs, title: str) -> ReportInputs:
    return replace(inputs, title=title)


def _stamped(inputs: ReportInputs, options: ReportOptions) -> ReportInputs:
    """The generation time (given, else now) and auditor's version; neither with --reproducible."""
    if options.reproducible:
        return replace(inputs, generated_at_ns=options.generated_at_ns, auditor_version="")
    now = options.generated_at_ns or time.time_ns()
    return replace(inputs, generated_at_ns=now, auditor_version=__version__)


# --- files mode ---------------------------------------------------------------------------------


def files_inputs(options: ReportOptions) -> ReportInputs:
    """The offline analysis of manifests (+ cluster events) and flow files: `audit`'s session."""
    if not options.manifests:
        raise ConfigError("--flows needs --manifests (the cluster state the flows are judged against)")
    inputs = load_cluster_inputs(options.manifests, options.cluster_events)
    require_objects(options.manifests, len(inputs.objects) + len(inputs.changes),
                    allow_empty=options.allow_empty)
    history = inputs.history()
    recorder = RuleUsageRecorder(options.analysis.engine())
    lo = options.from_ns if options.from_ns is not None else 0
    hi = options.to_ns if options.to_ns is not None else 2**63
    analysis = analyse_files(history, options.analysis, options.flows, engine=recorder, window=(lo, hi))
    require_flows(options.flows, analysis.source.stats, allow_empty=options.allow_empty)
    state = history.latest()
    stats = analysis.session.stats
    window = (options.from_ns if options.from_ns is not None else stats.first_ns,
              options.to_ns if options.to_ns is not None else stats.last_ns)
    verdicts = flows_by_verdict(stats)
    gaps = tuple(GapInfo(g.from_ns, g.to_ns, g.reason, g.lost_count) for g in analysis.delta.gaps)
    completeness = Completeness(
        window_from_ns=window[0], window_to_ns=window[1], covered_ns=max(0, stats.last_ns - stats.first_ns),
        lost_events=sum(g.lost_count for g in gaps), gaps=gaps, flows=sum(verdicts.values()),
        skipped_lines=analysis.source.stats.bad_lines, unresolved=stats.unresolved,
        note="files: the capture is taken as continuous from its first to its last flow; gaps are the "
        "lost-events records in the files",
    )
    return ReportInputs(
        findings=list(analysis.findings), completeness=completeness, source="files",
        source_detail="flows " + ", ".join(options.flows), state=state, flows_by_verdict=verdicts,
        posture_note="posture from the manifests given, as of the end of the capture",
        policy_hits=_hits(stats), usage=recorder.usage(), changes=_history_changes(history, window),
        namespaces=options.namespaces, generated_at_ns=options.generated_at_ns,
        policy_enforcement=options.policy_enforcement,
    )


def _hits(stats: CorrelatorStats) -> PolicyHits:
    """Per policy (namespace, name, kind): (allowed, dropped), summed over directions, from the
    correlator's primary attribution."""
    hits: dict[tuple[str, str, str], tuple[int, int]] = {}
    for (namespace, name, _direction, action, kind), count in stats.policy_verdicts.items():
        _add_hit(hits, (namespace, name, kind), count, dropped=action == "dropped")
    return hits


def _add_hit(hits: dict[tuple[str, str, str], tuple[int, int]], key: tuple[str, str, str], count: int,
             *, dropped: bool) -> None:
    allowed, was_dropped = hits.get(key, (0, 0))
    hits[key] = (allowed, was_dropped + count) if dropped else (allowed + count, was_dropped)


def _history_changes(history: ClusterHistory, window: tuple[int, int]) -> list[PolicyChange]:
    """Policy changes of every kind in the window, with their kind."""
    changes = []
    for change in history.changes_between(window[0], window[1], policies_only=True):
        policy = change.obj
        assert isinstance(policy, NetworkPolicy | CiliumNetworkPolicy)
        pid = policy_id_of(policy)
        changes.append(PolicyChange(change.time_ns, change.type.value, policy.namespace, policy.name,
                                    pid.revision, kind=pid.kind))
    return changes


# --- store mode ---------------------------------------------------------------------------------


def store_inputs(options: ReportOptions) -> ReportInputs:
    """What the daemon recorded, plus the current posture."""
    state, note = posture(options)
    require_existing_store(options.store or "")
    with open_store(options.store or "") as store:
        since, until = _store_window(store, options)
        ns = options.namespaces
        findings = store.findings(since_ns=since, until_ns=until, namespaces=ns)
        verdicts = _store_verdicts(store.counts(since, until, ("verdict", "policy")))
        rows = store.counts(since, until, ("namespace", "policy", "verdict"), namespaces=ns)
        coverage = store.coverage(since, until)
        records = store.policy_changes(since, until, namespaces=ns)
        usage = store_usage(store, since, until)
    if state is not None:  # the static findings of the posture shown, not of whatever the daemon last saw
        static = static_findings(state, enforce_node_traffic=options.enforce_node_traffic,
                                 policy_enforcement=options.policy_enforcement)
        findings = [f for f in findings if not f.kind.is_static] + static
    shown_until = until - 1 if options.to_ns is None and until > since else until  # the last covered ns
    completeness = Completeness(
        window_from_ns=since, window_to_ns=shown_until, covered_ns=coverage.covered_ns,
        lost_events=coverage.lost_total, flows=sum(verdicts.values()),
        gaps=tuple(GapInfo(g.from_ns, g.to_ns, g.reason, g.lost_count) for g in coverage.gaps),
        note=f"store: {plural(len(coverage.windows), 'coverage window')} recorded by the daemon"
        + ("; flows by verdict are cluster-wide (the daemon counts them without namespace)" if ns else ""),
    )
    return ReportInputs(
        findings=findings, completeness=completeness, source="store", source_detail=options.store or "",
        state=state, posture_note=note, flows_by_verdict=verdicts, policy_hits=_store_hits(rows), usage=usage,
        changes=[PolicyChange(r.time_ns, r.change_type, r.namespace, r.name, r.revision, kind=r.kind)
                 for r in records],
        namespaces=options.namespaces, generated_at_ns=options.generated_at_ns,
        policy_enforcement=options.policy_enforcement,
    )


def store_usage(store: Store, since: int, until: int) -> RuleUsage | None:
    """Rule usage from the store's per-hour rule hits; None unless every hour of the window with flows
    has rule hits recorded (a daemon older than schema version 5 did not keep them)."""
    hits = store.rule_hits(since, until)
    recorded = {row.hour_ns for row in hits if not row.kind}
    flow_hours = {row.hour_ns for row in store.counts(since, until, ("hour", "policy")) if not row.policy}
    if not recorded or not flow_hours <= recorded:
        return None
    rules = {(r.namespace, r.name, r.direction, r.rule, r.kind): r.count for r in hits if r.kind and r.rule}
    isolating = {(r.namespace, r.name, r.kind): r.count for r in hits if r.kind and not r.rule}
    return RuleUsage(MappingProxyType(rules), MappingProxyType(isolating))


def _store_window(store: Store, options: ReportOptions) -> tuple[int, int]:
    """[since, until): the options' window, else from the first to just past the last coverage window."""
    snap = store.snapshot()
    since = options.from_ns if options.from_ns is not None else snap.coverage_from_ns
    if options.to_ns is not None:
        return since, options.to_ns
    return since, (snap.coverage_to_ns + 1 if snap.coverage_to_ns else time.time_ns())


def _store_verdicts(rows: Sequence[CounterRow]) -> dict[str, int]:
    """Flows by verdict: the daemon's rows without a policy (policy rows count attributions, not flows)."""
    verdicts: Counter[str] = Counter()
    for row in rows:
        if not row.policy:
            verdicts[row.verdict] += row.count
    return dict(verdicts)


def _store_hits(rows: Sequence[CounterRow]) -> PolicyHits:
    """Per-policy (allowed, dropped) from the daemon's policy rows (`model.delta.policy_key` reads them)."""
    hits: dict[tuple[str, str, str], tuple[int, int]] = {}
    for row in rows:
        if row.policy:
            _add_hit(hits, policy_key(row.policy, row.namespace), row.count, dropped=row.verdict == "DROPPED")
    return hits


def posture(options: ReportOptions) -> tuple[ClusterState | None, str]:
    """The current state from --manifests (+ events), else the live cluster, else None with the reason."""
    if options.manifests:
        if options.cluster_events:
            history = load_cluster_inputs(options.manifests, options.cluster_events).history()
            return history.latest(), "posture from the manifests and cluster events given"
        return ClusterState.build(load_manifests(list(options.manifests))), "posture from the manifests given"
    if not options.live_cluster:
        return None, "posture unavailable: no --manifests given and the live cluster was not asked"
    try:
        from auditor.kube.client import api_client_factory, list_inventory

        factory = api_client_factory(kubeconfig=options.kubeconfig, context=options.context)
        state = ClusterState.build(list_inventory(factory()))
    except Exception as exc:
        return None, f"posture unavailable: the live cluster could not be listed ({exc})"
    return state, "posture from a listing of the live cluster"


__all__ = ["EXIT_FAIL_ON", "HISTORY_WINDOW_NS", "ReportOptions", "ReportOutcome", "run_report"]
