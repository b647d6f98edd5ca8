"""`auditor run`: the daemon."""

from __future__ import annotations

import argparse
from typing import Any

from auditor.app import settings
from auditor.hubble.cli_filters import add_filter_arguments


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="run the daemon: Hubble flows x NetworkPolicies in force -> findings, metrics, store",
        description=(
            "Stream flows from Hubble (or --flows files), watch the cluster (or read --manifests), "
            "judge every flow against the NetworkPolicies in force at its time, keep findings in the "
            "store and serve /metrics, /healthz and /readyz. Every flag can also be set as "
            "AUDITOR_<FLAG> or as a key of the --config YAML file (flag > env > file > default), "
            "except the hubble-style flow filters (--namespace, --verdict, ...: command line only)."
        ),
    )
    settings.add_arguments(parser)
    add_filter_arguments(parser, exclude=("node-name",))  # run's --node-name is its node mode
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from auditor.app.run import run_daemon

    return run_daemon(args)
