"""Inline SVG charts (no script, no external reference); every label is escaped here."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

BAR_HEIGHT = 18
GAP = 6
LABEL_WIDTH = 170
BAR_WIDTH = 300
COLORS = {
    "critical": "#7f1d1d", "high": "#b91c1c", "medium": "#d97706", "low": "#2563eb", "info": "#6b7280",
    "DROPPED": "#b91c1c", "FORWARDED": "#15803d", "AUDIT": "#d97706",
}
DEFAULT_COLOR = "#475569"


def bar_chart(title: str, items: Sequence[tuple[str, int]], chart_id: str) -> str:
    """Horizontal bars, one per (label, value), scaled to the largest value."""
    if not items:
        return f'<p class="empty" id="{escape(chart_id)}">No data for {escape(title)}.</p>'
    peak = max(value for _, value in items) or 1
    height = len(items) * (BAR_HEIGHT + GAP) + GAP
    width = LABEL_WIDTH + BAR_WIDTH + 80
    parts = [f'<svg id="{escape(chart_id)}" class="chart" role="img" aria-label="{escape(title)}" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>"]
    for row, (label, value) in enumerate(items):
        y = GAP + row * (BAR_HEIGHT + GAP)
        length = max(1, round(BAR_WIDTH * value / peak)) if value else 0
        color = COLORS.get(label, DEFAULT_COLOR)
        text_y = y + BAR_HEIGHT - 5
        parts.append(f'<text x="{LABEL_WIDTH - 6}" y="{text_y}" text-anchor="end">{escape(label)}</text>')
        parts.append(f'<rect x="{LABEL_WIDTH}" y="{y}" width="{length}" height="{BAR_HEIGHT}" fill="{color}"/>')
        parts.append(f'<text x="{LABEL_WIDTH + length + 6}" y="{text_y}">{value}</text>')
    parts.append("</svg>")
    return "".join(parts)


def share_chart(title: str, items: Sequence[tuple[str, int, int]], chart_id: str) -> str:
    """Stacked 100% bars: (label, part, whole) drawn as part (green) over the rest (red)."""
    if not items:
        return f'<p class="empty" id="{escape(chart_id)}">No data for {escape(title)}.</p>'
    height = len(items) * (BAR_HEIGHT + GAP) + GAP
    width = LABEL_WIDTH + BAR_WIDTH + 80
    parts = [f'<svg id="{escape(chart_id)}" class="chart" role="img" aria-label="{escape(title)}" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>"]
    for row, (label, part, whole) in enumerate(items):
        y = GAP + row * (BAR_HEIGHT + GAP)
        done = round(BAR_WIDTH * part / whole) if whole else 0
        text_y = y + BAR_HEIGHT - 5
        share = f"{100 * part / whole:.0f}%" if whole else "n/a"
        parts.append(f'<text x="{LABEL_WIDTH - 6}" y="{text_y}" text-anchor="end">{escape(label)}</text>')
        parts.append(f'<rect x="{LABEL_WIDTH}" y="{y}" width="{BAR_WIDTH}" height="{BAR_HEIGHT}" '
                     'fill="#fecaca"/>')
        parts.append(f'<rect x="{LABEL_WIDTH}" y="{y}" width="{done}" height="{BAR_HEIGHT}" fill="#15803d"/>')
        parts.append(f'<text x="{LABEL_WIDTH + BAR_WIDTH + 6}" y="{text_y}">{share}</text>')
    parts.append("</svg>")
    return "".join(parts)
