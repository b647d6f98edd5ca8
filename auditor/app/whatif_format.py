"""`auditor whatif` output: a terminal table, JSON, and Markdown for a pull-request comment.

Rows are per connection key and change (findings.whatif.Row), most harmful first; unchanged
connections are counted in the summary, not listed.  Times are RFC 3339 (report.fmt).
"""

from __future__ import annotations

import json
from typing import Any

from auditor.app.whatif import WhatifResult
from auditor.findings.whatif import CHANGES_SHOWN, Change, Row
from auditor.report.fmt import plural, time_or_none, time_text

FORMATS = ("table", "json", "markdown")
MARKDOWN_ROWS = 50
"""Rows per change in Markdown (a PR comment has a size limit); the rest are counted."""


def render(result: WhatifResult, fmt: str) -> str:
    if fmt == "json":
        return result_json(result)
    if fmt == "markdown":
        return result_markdown(result)
    return result_table(result)


def row_json(row: Row) -> dict[str, Any]:
    return {
        "change": row.change.value, "source": row.key.source, "destination": row.key.destination,
        "port": row.key.port, "protocol": row.key.protocol, "flows": row.flows,
        "first_seen": time_or_none(row.first_ns), "last_seen": time_or_none(row.last_ns),
        "sample_flow": row.sample, "sample_source": row.source, "sample_destination": row.destination,
        "observed": list(row.observed), "before": row.before, "after": row.after,
    }


def summary_json(result: WhatifResult) -> dict[str, Any]:
    s, p = result.stats, result.posture
    return {
        "source": result.source,
        "proposal": [str(c) for c in result.proposal],
        "invalid_proposed": list(result.invalid),
        "flows": s.flows, "judged_flows": s.judged, "unresolved_flows": s.unresolved,
        "deduplicated_flows": s.deduplicated, "skipped_flows": dict(sorted(s.skipped.items())),
        "window": {"from": time_or_none(s.first_ns), "to": time_or_none(s.last_ns)},
        "judged_connections": len(result.judged),
        "connection_keys": {c.value: result.count(c) for c in Change},
        "flows_by_change": {c.value: result.flows_by_change.get(c.value, 0) for c in Change},
        "posture": {
            "newly_covered": [{"pod": pod, "direction": d} for pod, d in p.newly_covered],
            "newly_uncovered": [{"pod": pod, "direction": d} for pod, d in p.newly_uncovered],
            "default_deny_gained": [{"namespace": ns, "direction": d} for ns, d in p.default_deny_gained],
            "default_deny_lost": [{"namespace": ns, "direction": d} for ns, d in p.default_deny_lost],
        },
        "notes": list(result.notes),
    }


def result_json(result: WhatifResult) -> str:
    shown = [row_json(r) for r in result.rows if r.change in CHANGES_SHOWN]
    return json.dumps({"connections": shown, "summary": summary_json(result)}, indent=2)


def _counts_line(result: WhatifResult) -> str:
    return ", ".join(f"{result.count(c)} {c.value} ({result.flows_by_change.get(c.value, 0)} flows)"
                     for c in Change)


def result_table(result: WhatifResult) -> str:
    lines = []
    for change in CHANGES_SHOWN:
        shown = [r for r in result.rows if r.change is change]
        if not shown:
            continue
        lines.append(f"{change.value.upper()} ({plural(len(shown), 'connection')})")
        for r in shown:
            lines.append(f"  {r.key}  flows {r.flows}  {time_text(r.first_ns)} .. {time_text(r.last_ns)}")
            lines.append(f"    now:    {r.after}")
            lines.append(f"    before: {r.before}")
            lines.append(f"    sample: {r.sample} ({r.source} -> {r.destination})")
        lines.append("")
    if not lines:
        lines.append("No recorded connection changes its verdict or attribution.\n")
    lines.extend(_summary_lines(result))
    return "\n".join(lines)


def _summary_lines(result: WhatifResult) -> list[str]:
    s, p = result.stats, result.posture
    lines = [
        "proposal: " + ("; ".join(str(c) for c in result.proposal) or "no changes"),
        f"connections: {_counts_line(result)}",
        f"flows: {s.flows}, judged {s.judged} as {result.distinct} distinct connections, "
        f"unresolved {s.unresolved}, deduplicated {s.deduplicated}",
        f"window: {time_text(s.first_ns)} .. {time_text(s.last_ns)}",
    ]
    lines += [f"posture: {line}" for line in posture_lines(result)]
    lines += [f"invalid proposed object: {error}" for error in result.invalid]
    lines += [f"note: {note}" for note in result.notes]
    if p.empty:
        lines.append("posture: unchanged")
    return lines


def posture_lines(result: WhatifResult) -> list[str]:
    p = result.posture
    lines = []
    for label, pairs in (("newly covered", p.newly_covered), ("newly uncovered", p.newly_uncovered),
                         ("default deny gained", p.default_deny_gained),
                         ("default deny lost", p.default_deny_lost)):
        if pairs:
            lines.append(f"{label}: " + ", ".join(f"{name} ({direction})" for name, direction in pairs))
    return lines


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def result_markdown(result: WhatifResult, heading: str = "##") -> str:
    """A pull-request comment: verdict first, then a table per change, then the posture delta."""
    denied = result.count(Change.NEWLY_DENIED)
    verdict = (f"**{plural(denied, 'recorded connection')} would be newly denied.**" if denied
               else "**No recorded connection would be newly denied.**")
    lines = [f"{heading} auditor whatif", "", verdict, "", "Proposal: "
             + ("; ".join(f"`{c}`" for c in result.proposal) or "no changes"), "",
             f"Connections: {_counts_line(result)}.", ""]
    for change in CHANGES_SHOWN:
        shown = [r for r in result.rows if r.change is change]
        if not shown:
            continue
        lines += [f"{heading}# {change.value} ({len(shown)})", "",
                  "| source | destination | port | flows | first seen | last seen | now | before | sample |",
                  "|---|---|---|---:|---|---|---|---|---|"]
        for r in shown[:MARKDOWN_ROWS]:
            cells = (r.key.source, r.key.destination, f"{r.key.port}/{r.key.protocol}", str(r.flows),
                     time_text(r.first_ns), time_text(r.last_ns), r.after, r.before, r.sample)
            lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
        if len(shown) > MARKDOWN_ROWS:
            lines.append(f"\n... and {len(shown) - MARKDOWN_ROWS} more (see `--output json`).")
        lines.append("")
    posture = posture_lines(result)
    lines += [f"{heading}# Posture", ""] + ([f"- {line}" for line in posture] or ["- unchanged"]) + [""]
    s = result.stats
    lines.append(f"<sub>{s.flows} flows ({time_text(s.first_ns)} .. {time_text(s.last_ns)}), {s.judged} judged "
                 f"as {result.distinct} distinct connections, {s.unresolved} unresolved.</sub>")
    lines += [f"\n> invalid proposed object: {_md_cell(e)}" for e in result.invalid]
    lines += [f"\n> note: {_md_cell(n)}" for n in result.notes]
    return "\n".join(lines) + "\n"
