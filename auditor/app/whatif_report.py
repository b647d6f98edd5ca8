"""The `auditor whatif` section of `auditor report` (`--whatif-proposed PATH...`).

The report's own data stays as it is; the section is judged from the same inputs (manifests,
cluster events, flow files or the store, window) by `run_whatif` and added to the rendered text:
Markdown gets the pull-request text under `##`, HTML a `<section id="whatif">` before `</body>`,
JSON a top-level `whatif` object (`whatif_format.result_json`'s document).  CSV has no room for it.
"""

from __future__ import annotations

import html
import json
from typing import Protocol

from auditor.app.whatif import WhatifOptions, WhatifResult, run_whatif
from auditor.app.whatif_format import posture_lines, result_json, result_markdown
from auditor.errors import ConfigError
from auditor.findings.whatif import CHANGES_SHOWN, Change
from auditor.report.fmt import plural, time_text

SECTION_FORMATS = ("html", "markdown", "json")


class ReportSource(Protocol):
    """What the section needs of `app.report.ReportOptions`."""

    @property
    def format(self) -> str: ...

    @property
    def manifests(self) -> tuple[str, ...]: ...

    @property
    def cluster_events(self) -> str | None: ...

    @property
    def flows(self) -> tuple[str, ...]: ...

    @property
    def store(self) -> str | None: ...

    @property
    def from_ns(self) -> int | None: ...

    @property
    def to_ns(self) -> int | None: ...

    @property
    def enforce_node_traffic(self) -> bool: ...

    @property
    def policy_enforcement(self) -> str: ...

    @property
    def cidr_match_nodes(self) -> bool: ...

    @property
    def whatif_proposed(self) -> tuple[str, ...]: ...

    @property
    def whatif_replace_policies(self) -> bool: ...


def _html(result: WhatifResult) -> str:
    denied = result.count(Change.NEWLY_DENIED)
    lead = f"<p><strong>{plural(denied, 'recorded connection')} would be newly denied</strong> by: "
    parts = [lead + html.escape("; ".join(str(c) for c in result.proposal) or "no changes") + ".</p>"]
    head = "".join(f"<th>{h}</th>" for h in ("change", "source", "destination", "port", "flows", "first seen",
                                              "last seen", "now", "before", "sample"))
    body = ""
    for r in (r for r in result.rows if r.change in CHANGES_SHOWN):
        cells = (r.change.value, r.key.source, r.key.destination, f"{r.key.port}/{r.key.protocol}",
                 str(r.flows), time_text(r.first_ns), time_text(r.last_ns), r.after, r.before, r.sample)
        body += "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
    parts.append(f'<table id="whatif-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
                 if body else "<p>No recorded connection changes its verdict or attribution.</p>")
    posture = posture_lines(result) or ["unchanged"]
    parts.append("<h3>Posture</h3><ul>" + "".join(f"<li>{html.escape(p)}</li>" for p in posture) + "</ul>")
    parts += [f"<p>Note: {html.escape(n)}</p>" for n in result.notes]
    return '<section id="whatif"><h2>What if: the proposed policies</h2>' + "".join(parts) + "</section>"


def with_whatif_section(text: str, options: ReportSource) -> str:
    """`text` with the whatif section, when `options.whatif_proposed` names a proposal."""
    if not options.whatif_proposed:
        return text
    if options.format not in SECTION_FORMATS:
        raise ConfigError(f"--whatif-proposed: the {options.format} report has no whatif section "
                          f"(use {', '.join(SECTION_FORMATS)})")
    result = run_whatif(WhatifOptions(
        manifests=options.manifests, proposed=options.whatif_proposed,
        replace_policies=options.whatif_replace_policies, flows=options.flows, store=options.store,
        cluster_events=options.cluster_events, from_ns=options.from_ns, to_ns=options.to_ns,
        enforce_node_traffic=options.enforce_node_traffic, policy_enforcement=options.policy_enforcement,
        cidr_match_nodes=options.cidr_match_nodes))
    if options.format == "markdown":
        return text.rstrip("\n") + "\n\n" + result_markdown(result, heading="##")
    if options.format == "json":
        document = json.loads(text)
        document["whatif"] = json.loads(result_json(result))
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if "</body>" not in text:
        return text + _html(result)
    head, tail = text.rsplit("</body>", 1)
    return head + _html(result) + "</body>" + tail
