"""`auditor recommend` output: the manifests (YAML), headed by the summary as comments.

The summary is also what the CLI prints on stderr, so `auditor recommend ... > policies.yaml`
leaves an apply-able file and a readable terminal.
"""

from __future__ import annotations

from auditor.app.recommend import RecommendResult
from auditor.app.recommend_verify import yaml_documents
from auditor.report.fmt import plural, time_text


def summary_lines(result: RecommendResult) -> list[str]:
    v, s = result.verification, result.stats
    objects = len(result.generated)
    lines = [
        f"auditor recommend: {objects} objects for namespaces {', '.join(result.namespaces) or '(none)'} "
        f"from {result.source}",
        f"evidence: {s.flows} flows {time_text(s.first_ns)} .. {time_text(s.last_ns)}; learned "
        f"{result.learned} connections ({result.learned_flows} flows); not learned {result.not_learned} "
        f"connections ({result.not_learned_flows} flows) that the dataplane or the current policies deny; "
        f"{s.unresolved} flows unresolved",
        f"check: API validation {'passed' if not v.invalid else f'FAILED ({len(v.invalid)} errors)'} "
        f"on {objects} objects; YAML reads back {'the same' if not v.unreadable else 'DIFFERENTLY'}",
        f"check: audit lint {len(v.lint)} findings on the recommendation"
        + (f" ({v.preexisting_lint} about policies already there, not counted)" if v.preexisting_lint else ""),
        f"check: whatif current -> recommended over the same connections: {len(v.newly_denied)} of "
        f"{result.learned} learned connections newly denied ({v.judged} judged)"
        + (f"; {plural(v.dropped_newly_denied, 'connection')} not learned (denied at its time or now) that "
           "the recommendation denies too"
           if v.dropped_newly_denied else ""),
        "verified: yes" if v.ok else "verified: NO (see the checks above)",
    ]
    lines += [f"invalid: {error}" for error in v.invalid]
    lines += [f"lint: [{f.kind.value}] {f.message}" for f in v.lint]
    lines += [f"newly denied: {o.key}" for o in v.newly_denied]
    lines += [f"note: {note}" for note in result.notes]
    return lines


def render(result: RecommendResult) -> str:
    header = "".join(f"# {line}\n" for line in summary_lines(result))
    body = yaml_documents(result.generated) if result.generated else ""
    return header + ("---\n" + body if body else "")
