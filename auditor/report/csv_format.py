"""CSV: one row per finding, for spreadsheets and ticket imports (RFC 4180, CRLF line ends).

Cells that a spreadsheet would take for a formula (starting with =, +, -, @, tab or CR) get a
leading apostrophe: names and DNS queries come from the cluster and the wire.
"""

from __future__ import annotations

import csv
import io

from auditor.report.data import ReportData
from auditor.report.fmt import details_text, port_cell, time_text

COLUMNS = ("id", "severity", "kind", "namespace", "workload", "pod", "direction", "peer", "peer_workload",
           "port", "protocol", "policies", "count", "first_seen", "last_seen", "sample_flow", "message",
           "details")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> str:
    """A safe cell: text as-is unless it could start a formula."""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def render(data: ReportData) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for index, f in enumerate(data.findings):
        row = (data.finding_id(index), f.severity.value, f.kind.value, f.namespace, f.workload, f.pod,
               f.direction, f.peer, f.peer_workload, port_cell(f.port), f.protocol, ";".join(f.policies),
               f.count,
               time_text(f.first_seen_ns) if f.first_seen_ns else "",
               time_text(f.last_seen_ns) if f.last_seen_ns else "", f.sample_flow, f.message, details_text(f))
        writer.writerow([cell(value) for value in row])
    return out.getvalue()
