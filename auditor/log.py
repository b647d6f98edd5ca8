"""Logging, configured once: JSON lines to stdout in containers, console output on a TTY."""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

LogFormat = Literal["json", "console", "auto"]

LOG_AT = frozenset(10**n for n in range(19))
"""Counts at which a repeated error is logged (1st, 10th, 100th ...): never once per flow or event."""


def configure(*, fmt: LogFormat = "auto", level: str = "info") -> None:
    """Configure structlog process-wide.  `auto` means console on a TTY, JSON otherwise."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A lazy logger bound with `component=name`.

    It stays a lazy proxy (no `.bind()` here), so module-level loggers pick up the
    configuration `configure()` installs later.  (`logger=` cannot be used as the key: it
    collides with structlog.wrap_logger's own parameter.)
    """
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(component=name)
    return logger
