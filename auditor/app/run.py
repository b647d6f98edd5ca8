"""Entry of `auditor run`: resolve settings, configure logging, build and run the daemon."""

from __future__ import annotations

import argparse

from auditor.app import settings as settings_mod
from auditor.log import configure


def run_daemon(args: argparse.Namespace) -> int:
    """Resolve settings (flag > env > file > default), then run until signalled."""
    from auditor.app.daemon import build_daemon
    from auditor.hubble.cli_filters import filters_from_args

    settings = settings_mod.load_settings(args)
    configure(fmt=settings.log_format, level=settings.log_level)
    return build_daemon(settings, flow_filters=filters_from_args(args)).run()
