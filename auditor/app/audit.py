"""`auditor audit`: manifests (+ cluster events) and flow files -> findings, offline.

The same pipeline as the daemon: `FileFlowSource` -> `Correlator` (state at flow time from a
`ClusterHistory`) -> `FindingAggregator`, plus the static findings of the state at the end of
the capture.  The manifests are the state before the first event; `--cluster-events` changes
apply at their own times.
"""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from auditor.errors import InputError
from auditor.findings.aggregate import FindingAggregator
from auditor.findings.correlate import Correlator, CorrelatorStats
from auditor.findings.static import static_findings
from auditor.hubble.files import FileFlowSource
from auditor.kube.events import load_cluster_events
from auditor.kube.manifests import load_manifests
from auditor.model.events import LostEvents
from auditor.model.findings import Finding
from auditor.policy.engine import PolicyEngine
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


@dataclass(frozen=True, slots=True)
class AuditResult:
    findings: tuple[Finding, ...]
    summary: AuditSummary


def build_history(manifests: Sequence[str], cluster_events: str | None) -> tuple[ClusterHistory, int, int]:
    """The history: manifests as the initial state, then every cluster event at its time."""
    if not manifests:
        raise InputError("at least one --manifests path is required")
    objects = load_manifests(list(manifests))
    history = ClusterHistory(window_ns=HISTORY_WINDOW_NS, initial=ClusterState.build(objects))
    changes = load_cluster_events(cluster_events) if cluster_events else []
    for change in sorted(changes, key=lambda c: c.time_ns):
        history.apply(change)
    return history, len(objects), len(changes)


def run_audit(options: AuditOptions) -> AuditResult:
    """Run the whole offline pipeline.  Unusable input raises an AuditorError naming the file.

    Without flow files only the static findings of the manifests are produced (a lint).
    """
    history, objects, changes = build_history(options.manifests, options.cluster_events)
    source = FileFlowSource(options.flows, light=True)  # its flows go to the correlator only
    correlator = Correlator(history, PolicyEngine(enforce_node_traffic=options.enforce_node_traffic))
    aggregator = FindingAggregator(max_keys=options.max_findings)
    lost = 0
    for event in source.events():
        if isinstance(event, LostEvents):
            lost += event.count
            continue
        for finding in correlator.process(event):
            aggregator.add(finding)
    for finding in static_findings(history.latest(), enforce_node_traffic=options.enforce_node_traffic):
        aggregator.add(finding)
    stats = correlator.stats
    summary = AuditSummary(
        flows=source.stats.flows,
        by_verdict=flows_by_verdict(stats),
        skipped_lines=source.stats.bad_lines,
        lost_events=lost,
        window_from_ns=stats.first_ns,
        window_to_ns=stats.last_ns,
        judged=stats.judged,
        unresolved=stats.unresolved,
        deduplicated=stats.deduplicated,
        skipped=dict(stats.skipped),
        other_drops=dict(stats.other_drops),
        overflow=aggregator.overflow,
        objects=objects,
        cluster_events=changes,
        errors=tuple(source.stats.errors),
        ignored_events=source.stats.ignored_events,
    )
    return AuditResult(findings=tuple(aggregator.all()), summary=summary)


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
    }
    document = {"findings": [finding_json(f) for f in result.findings], "summary": summary}
    return json.dumps(document, indent=2, sort_keys=False)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def _row(cells: Iterable[tuple[str, int]]) -> str:
    return " ".join(_cut(text, width).ljust(width) for text, width in cells).rstrip()


_COLUMNS = (("SEVERITY", 8), ("KIND", 22), ("NAMESPACE/WORKLOAD", 29), ("PEER", 20), ("PORT", 9))


def result_table(result: AuditResult, width: int = TABLE_WIDTH) -> str:
    """Plain text for a terminal: one header row, two lines per finding, then the summary."""
    indent = sum(w + 1 for _, w in _COLUMNS)
    lines = [_row(_COLUMNS).ljust(indent) + "COUNT".rjust(7)]
    for f in result.findings:
        where = "/".join(part for part in (f.namespace, f.workload) if part)
        port = f"{f.port}/{f.protocol}" if f.port else f.protocol
        cells = (f.severity.value, f.kind.value, where, f.peer_workload or f.peer, port)
        row = _row(zip(cells, (w for _, w in _COLUMNS), strict=True))
        lines.append(f"{row.ljust(indent)}{f.count:>7}")
        lines.extend(textwrap.wrap(f.message, width=width, initial_indent="    ", subsequent_indent="    "))
    if not result.findings:
        lines.append("(no findings)")
    lines.append("")
    lines.extend(_summary_lines(result.summary))
    return "\n".join(lines)


def _summary_lines(s: AuditSummary) -> list[str]:
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
