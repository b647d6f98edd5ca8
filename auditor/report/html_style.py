"""The report's inline stylesheet: screen layout, and print rules (A4, page breaks per section)."""

CSS = """
:root { color-scheme: light; --fg: #0f172a; --muted: #475569; --line: #cbd5e1; --head: #f1f5f9; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       margin: 0 auto; max-width: 1200px; padding: 24px; }
h1 { font-size: 26px; margin: 0 0 8px; }
h2 { font-size: 20px; border-bottom: 2px solid var(--fg); padding-bottom: 4px; margin-top: 32px; }
h3 { font-size: 16px; margin: 20px 0 8px; }
h4 { font-size: 14px; margin: 12px 0 6px; color: var(--muted); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 14px; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 4px 6px; text-align: left; vertical-align: top; }
td { overflow-wrap: break-word; }
thead th { background: var(--head); white-space: nowrap; }
tbody tr:nth-child(even) { background: #f8fafc; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 16px; min-width: 160px;
        color: var(--muted); }
.card .big { display: block; font-size: 28px; font-weight: 700; color: var(--fg); }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; }
figcaption { font-weight: 600; margin-bottom: 4px; }
svg.chart text { font: 12px system-ui, sans-serif; fill: var(--fg); }
.formula, .note, .empty { color: var(--muted); }
.status { font-weight: 700; padding: 0 4px; border-radius: 3px; white-space: nowrap; }
.status-pass { color: #15803d; } .status-fail { color: #b91c1c; }
.status-unknown, .status-not-applicable { color: var(--muted); }
.status-critical, .status-high { color: #b91c1c; } .status-medium { color: #b45309; }
.status-low { color: #1d4ed8; } .status-info { color: var(--muted); }
article.namespace { border-left: 3px solid var(--line); padding-left: 12px; margin-bottom: 18px; }
@media print {
  @page { size: A4; margin: 14mm; }
  body { max-width: none; padding: 0; font-size: 11px; }
  section { break-before: page; page-break-before: always; }
  section#summary { break-before: auto; page-break-before: auto; }
  table, figure, article.namespace { break-inside: auto; }
  tr, .card, svg { break-inside: avoid; page-break-inside: avoid; }
  thead { display: table-header-group; }
  a { color: inherit; text-decoration: none; }
}
"""
