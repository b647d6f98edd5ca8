"""`auditor demo`: see auditor work in one command, no cluster needed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline on a bundled synthetic capture and write report.html",
        description=(
            "Starts the replay server on a bundled demo capture (a synthetic small shop), runs the daemon "
            "against it with bundled manifests over real gRPC, serves /metrics, writes report.html and "
            "prints what it found. Stops when done, or keeps serving with --serve."
        ),
    )
    parser.add_argument("--out", default=".", help="Directory for report.html and the demo store (default: .).")
    parser.add_argument("--metrics-address", default="127.0.0.1:9967",
                        help="Where to serve /metrics (default 127.0.0.1:9967; use :0 for any free port).")
    parser.add_argument("--serve", action="store_true", help="Keep serving /metrics until Ctrl-C.")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from auditor.app.demo import DemoOptions, run_demo

    address = args.metrics_address
    if address.startswith(":"):
        address = "127.0.0.1" + address
    return run_demo(DemoOptions(out=Path(args.out), metrics_address=address, serve=args.serve), sys.stdout)
