"""`auditor audit`: manifests (+ cluster events) and flow files -> findings, offline.

The daemon's pipeline: `FileFlowSource` -> the one `AnalysisSession` (state at flow time from a
`ClusterHistory`) -> one delta, whose static findings are those of the state at the end of the
capture.  The manifests are the state before the first event; `--cluster-events` changes apply
at their own times.  `analyse_files` is shared with `report --flows`.
"""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from auditor.app.inputs import require_flows, require_objects
from auditor.errors import InputError, InvalidObjectError
from auditor.findings.aggregate import ordered
from auditor.findings.correlate import Correlator, CorrelatorStats, Decider
from auditor.findings.session import AnalysisOptions, AnalysisSession
from auditor.hubble.files import FileFlowSource
from auditor.kube.events import load_cluster_events
from auditor.kube.manifests import load_manifests
from auditor.model.delta import AnalysisDelta, HourCount
from auditor.model.events import LostEvents
from auditor.model.findings import Finding
from auditor.model.flows import Flow
from auditor.model.k8s import Change, ChangeType, KubeObject
from auditor.policy.history import ClusterHistory
from auditor.policy.state import ClusterState
from auditor.report.fmt import time_or_none, time_text
from auditor.report.json_format import finding_json

HISTORY_WINDOW_NS = 100 * 365 * 24 * 3600 * 1_000_000_000
"""Offline the history is never pruned: every change of the capture stays answerable."""

TABLE_WIDTH = 100


@dataclass(frozen=True, slots=True)
class AuditOptions:
    manifests: tuple[str, ...]
    flows: tuple[str, ...]
    cluster_events: str | None = None
    enforce_node_traffic: bool = False
    max_findings: int = 50_000
    policy_enforcement: str = "default"
    cidr_match_nodes: bool = False
    keep: Callable[[Any], bool] | None = None
    """Only flows it keeps are analysed (the CLI's flow filters, a predicate on flow_pb2.Flow)."""
    allow_empty: bool = False
    """Flow files without a usable flow, or manifests without an object, are no error."""

    @property
    def analysis(self) -> AnalysisOptions:
        return AnalysisOptions(enforce_node_traffic=self.enforce_node_traffic,
                               cidr_match_nodes=self.cidr_match_nodes,
                               policy_enforcement=self.policy_enforcement, max_findings=self.max_findings)


@dataclass(frozen=True, slots=True)
class AuditSummary:
    flows: int
    by_verdict: dict[str, int]
    skipped_lines: int
    lost_events: int
    window_from_ns: int
    window_to_ns: int
    judged: int = 0
    unresolved: int = 0
    deduplicated: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    other_drops: dict[str, int] = field(default_factory=dict)
    overflow: int = 0
    objects: int = 0
    cluster_events: int = 0
    errors: tuple[str, ...] = ()
    """The first bad-line messages (path:line: what is wrong)."""
    ignored_events: int = 0
    """Decoded events that carry nothing auditor reads (agent and debug events)."""
    bad_flows: dict[str, int] = field(default_factory=dict)
    """Flows the analysis skipped, by reason (time outside 1970..2262, analysis error)."""
    flow_files: int = 0
    """Flow files given; 0 for a static lint of the manifests, whose summary has no flow statistics."""
    invalid_objects: tuple[InvalidObjectError, ...] = ()
    """Policies skipped because the API server or Cilium would reject them (one error per bad field)."""


@dataclass(frozen=True, slots=True)
class AuditResult:
    findings: tuple[Finding, ...]
    summary: AuditSummary
    counts: tuple[HourCount, ...] = ()
    """The flows counted per hour of their own time (what the daemon writes to the store's counters)."""


@dataclass(frozen=True, slots=True)
class ClusterInputs:
    """Manifests (the state before the first event) and cluster events, as read from the files."""

    objects: tuple[KubeObject, ...]
    changes: tuple[Change, ...]
    """Sorted by time."""

    def history(self, window_ns: int = HISTORY_WINDOW_NS) -> ClusterHistory:
        history = ClusterHistory(window_ns=window_ns, initial=ClusterState.build(list(self.objects)))
        for change in self.changes:
            history.apply(change)
        return history

    def policy_changes(self) -> tuple[Change, ...]:
        """What the policy history records: the manifests' objects as ADDED at time 0 (in force before
        the capture, like a live inventory's initial list), then every event."""
        initial = tuple(Change(0, ChangeType.ADDED, obj) for obj in self.objects)
        return initial + self.changes


def load_cluster_inputs(manifests: Sequence[str], cluster_events: str | None) -> ClusterInputs:
    if not manifests:
        raise InputError("at least one --manifests path is required")
    objects = load_manifests(list(manifests))
    changes = load_cluster_events(cluster_events) if cluster_events else []
    return ClusterInputs(tuple(objects), tuple(sorted(changes, key=lambda c: c.time_ns)))


def build_history(manifests: Sequence[str], cluster_events: str | None) -> tuple[ClusterHistory, int, int]:
    """The history: manifests as the initial state, then every cluster event at its time (used by
    `whatif` too)."""
    inputs = load_cluster_inputs(manifests, cluster_events)
    return inputs.history(), len(inputs.objects), len(inputs.changes)


@dataclass(frozen=True, slots=True)
class FileAnalysis:
    """One pass of the analysis session over flow files."""

    session: AnalysisSession
    source: FileFlowSource
    delta: AnalysisDelta

    @property
    def findings(self) -> tuple[Finding, ...]:
        """Runtime and static findings, most severe first (as the daemon's store would hold them)."""
        return tuple(ordered([*self.delta.findings, *(self.delta.static or ())]))


def analyse_files(history: ClusterHistory, options: AnalysisOptions, flows: Sequence[str], *,
                  engine: Decider | None = None, window: tuple[int, int] | None = None,
                  changes: Sequence[Change] = (), keep: Callable[[Any], bool] | None = None,
                  on_new: Callable[[Finding], None] | None = None) -> FileAnalysis:
    """Every event of the flow files through one AnalysisSession (the daemon's), then one delta.

    `window` [from, to): flows outside it are not read, lost events outside it are no gaps.
    `changes` are recorded in the delta's policy history (they are already in `history`).
    `keep` (a predicate on flow_pb2.Flow, auditor.hubble.filters): only flows it keeps are analysed.
    `on_new` is called with the first finding of each key as it appears (`audit --follow`).
    """
    correlator = Correlator(history, engine) if engine is not None else None
    session = AnalysisSession(history, options, correlator=correlator, on_new=on_new)
    for change in changes:
        session.change(change)
    source = FileFlowSource(list(flows), light=True, keep=keep,  # its flows go to the correlator only
                            stop_on_interrupt=on_new is not None)  # audit --follow: Ctrl-C ends the input
    lo, hi = window or (0, 2**63)
    for event in source.events():
        if isinstance(event, Flow):
            if lo <= event.time_ns < hi:
                session.flow(event)
        elif isinstance(event, LostEvents) and lo <= event.span_ns[0] < hi:
            session.lost(event)
    return FileAnalysis(session, source, session.delta())


def run_audit(options: AuditOptions, on_new: Callable[[Finding], None] | None = None) -> AuditResult:
    """Run the whole offline pipeline.  Unusable input raises an AuditorError naming the file.

    Without flow files only the static findings of the manifests are produced (a lint).  `on_new`
    sees each runtime finding key's first finding as it appears.
    """
    inputs = load_cluster_inputs(options.manifests, options.cluster_events)
    require_objects(options.manifests, len(inputs.objects) + len(inputs.changes),
                    allow_empty=options.allow_empty)
    history = inputs.history()
    analysis = analyse_files(history, options.analysis, options.flows, keep=options.keep, on_new=on_new)
    require_flows(options.flows, analysis.source.stats, allow_empty=options.allow_empty)
    stats = analysis.session.stats
    source = analysis.source
    summary = AuditSummary(
        flows=source.stats.flows,
        by_verdict=flows_by_verdict(stats),
        skipped_lines=source.stats.bad_lines,
        lost_events=sum(gap.lost_count for gap in analysis.delta.gaps),
        window_from_ns=stats.first_ns,
        window_to_ns=stats.last_ns,
        judged=stats.judged,
        unresolved=stats.unresolved,
        deduplicated=stats.deduplicated,
        skipped=dict(stats.skipped),
        other_drops=dict(stats.other_drops),
        overflow=analysis.session.findings_overflow,
        objects=len(inputs.objects),
        cluster_events=len(inputs.changes),
        errors=tuple(source.stats.errors),
        ignored_events=source.stats.ignored_events,
        bad_flows=dict(analysis.session.bad_flows),
        flow_files=len(options.flows),
        invalid_objects=tuple(history.latest().invalid),
    )
    return AuditResult(findings=analysis.findings, summary=summary, counts=analysis.delta.counts)


def flows_by_verdict(stats: CorrelatorStats) -> dict[str, int]:
    """Flows the correlator counted, by verdict (over both directions), sorted by verdict."""
    totals: Counter[str] = Counter()
    for (verdict, _direction), count in stats.flows.items():
        totals[verdict] += count
    return dict(sorted(totals.items()))


def result_json(result: AuditResult) -> str:
    """The `--output json` document."""
    s = result.summary
    summary = {
        "flows": s.flows,
        "by_verdict": s.by_verdict,
        "skipped_lines": s.skipped_lines,
        "ignored_events": s.ignored_events,
        "lost_events": s.lost_events,
        "window": {"from": time_or_none(s.window_from_ns), "to": time_or_none(s.window_to_ns)},
        "judged": s.judged,
        "unresolved": s.unresolved,
        "deduplicated": s.deduplicated,
        "skipped": s.skipped,
        "other_drops": s.other_drops,
        "findings_overflow": s.overflow,
        "objects": s.objects,
        "cluster_events": s.cluster_events,
        "invalid_objects": [{"object": e.ref, "field": e.field, "error": e.reason} for e in s.invalid_objects],
    }
    document = {"findings": [finding_json(f) for f in result.findings], "summary": summary}
    return json.dumps(document, indent=2, sort_keys=False)


def _row(cells: Iterable[tuple[str, int]]) -> str:
    return " ".join(text.ljust(width) for text, width in cells).rstrip()


_COLUMNS = (("SEVERITY", 8), ("KIND", 22), ("NAMESPACE/WORKLOAD", 29), ("PEER", 20), ("PORT", 9))
"""Headers and minimum widths; a column grows to its longest value, nothing is cut."""


def _cells(f: Finding) -> tuple[str, str, str, str, str]:
    where = "/".join(part for part in (f.namespace, f.workload) if part)
    port = f"{f.port}/{f.protocol}" if f.port else f.protocol
    return f.severity.value, f.kind.value, where, f.peer_workload or f.peer, port


def result_table(result: AuditResult, width: int = TABLE_WIDTH) -> str:
    """Plain text for a terminal: one header row, two lines per finding, then the summary."""
    rows = [_cells(f) for f in result.findings]
    widths = [max([minimum, *(len(row[i]) for row in rows)]) for i, (_, minimum) in enumerate(_COLUMNS)]
    indent = sum(w + 1 for w in widths)
    lines = [_row(zip((h for h, _ in _COLUMNS), widths, strict=True)).ljust(indent) + "COUNT".rjust(7)]
    for f, cells in zip(result.findings, rows, strict=True):
        lines.append(f"{_row(zip(cells, widths, strict=True)).ljust(indent)}{f.count:>7}")
        lines.extend(textwrap.wrap(f.message, width=width, initial_indent="    ", subsequent_indent="    "))
    if not result.findings:
        lines.append("(no findings)")
    lines.append("")
    lines.extend(_summary_lines(result.summary))
    return "\n".join(lines)


def finding_line(f: Finding, output: str = "table") -> str:
    """One new finding as it happens (`audit --follow`): a JSON object, or one line of text."""
    if output == "json":
        return json.dumps(finding_json(f), sort_keys=False)
    where = "/".join(part for part in (f.namespace, f.workload) if part) or "-"
    peer = f.peer_workload or f.peer or "-"
    port = f"{f.port}/{f.protocol}" if f.port else f.protocol or "-"
    when = time_text(f.first_seen_ns)
    return f"{when} {f.severity.value} {f.kind.value} {where} -> {peer} {port}: {f.message}"


def _summary_lines(s: AuditSummary) -> list[str]:
    return [*_flow_summary_lines(s), *invalid_lines(s.invalid_objects)]


def invalid_lines(errors: Sequence[InvalidObjectError]) -> list[str]:
    """The skipped invalid policies, one line per offending field (nothing when there are none)."""
    if not errors:
        return []
    objects = len({e.ref for e in errors})
    return [f"invalid objects skipped: {objects} (the API server or Cilium would reject them; their rules "
            "are not in force here)", *(f"  {e}" for e in errors)]


def _flow_summary_lines(s: AuditSummary) -> list[str]:
    if not s.flow_files:
        return [f"static lint of {s.objects} manifest objects and {s.cluster_events} cluster events: "
                "no flow files given, so no flow statistics"]
    verdicts = ", ".join(f"{k} {v}" for k, v in s.by_verdict.items()) or "none"
    window = f"{time_text(s.window_from_ns)} .. {time_text(s.window_to_ns)}" if s.window_from_ns else "no flows"
    lines = [
        f"flows: {s.flows} ({verdicts})",
        f"window: {window}",
        f"judged: {s.judged}, unresolved: {s.unresolved}, deduplicated drops: {s.deduplicated}",
        f"skipped lines: {s.skipped_lines}, ignored events: {s.ignored_events}, lost events: {s.lost_events}",
    ]
    if s.overflow:
        lines.append(f"findings not kept (finding key limit reached): {s.overflow} flows")
    return lines
