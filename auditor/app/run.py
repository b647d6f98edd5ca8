"""Entry of `auditor run`: resolve settings, configure logging, build and run the daemon."""

from __future__ import annotations

import argparse

from auditor.app import settings as settings_mod
from auditor.log import configure


def run_daemon(args: argparse.Namespace) -> int:
    """Resolve settings (flag > env > file > default), then run until signalled."""
    from auditor.app.daemon import build_daemon

    settings = settings_mod.resolve(args)
    configure(fmt=settings["log_format"], level=settings["log_level"])
    return build_daemon(settings).run()
