"""Pick a renderer by format name.  Every renderer is `(ReportData) -> str`."""

from __future__ import annotations

from collections.abc import Callable

from auditor.errors import ConfigError
from auditor.report import csv_format, html, json_format, markdown
from auditor.report.data import ReportData

RENDERERS: dict[str, Callable[[ReportData], str]] = {
    "html": html.render,
    "markdown": markdown.render,
    "json": json_format.render,
    "csv": csv_format.render,
}
FORMATS = tuple(RENDERERS)


def render(data: ReportData, fmt: str) -> str:
    try:
        renderer = RENDERERS[fmt]
    except KeyError:
        raise ConfigError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}") from None
    return renderer(data)
