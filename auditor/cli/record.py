"""`auditor record`: capture a live cluster's inventory as a manifests snapshot plus cluster events."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from auditor.app.record import RecordOptions, record
from auditor.app.settings import parse_duration
from auditor.errors import ConfigError
from auditor.log import configure as configure_logging


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "record",
        help="record the live inventory as a manifests snapshot and a --cluster-events file",
        description="List+watch Namespaces, Pods, Nodes and NetworkPolicies; write the state once every "
        "list is in (--snapshot), then every later change (--events) until --duration or Ctrl-C. "
        "Use them with --manifests SNAPSHOT --cluster-events EVENTS.",
    )
    parser.add_argument("--snapshot", required=True, metavar="FILE",
                        help="the state at the start, as a kind: List (JSON if FILE ends in .json, else YAML)")
    parser.add_argument("--events", required=True, metavar="FILE",
                        help="changes after the snapshot (JSON lines)")
    parser.add_argument("--duration", metavar="DURATION",
                        help="stop after this long (30s, 10m, 1h); default: until Ctrl-C")
    parser.add_argument("--sync-timeout", default="60s", metavar="DURATION",
                        help="give up when the initial lists are not in after this long (default %(default)s)")
    parser.add_argument("--kubeconfig", metavar="FILE",
                        help="kubeconfig (default: in-cluster, then ~/.kube/config)")
    parser.add_argument("--context", metavar="NAME", help="kubeconfig context")
    parser.add_argument("--in-cluster", action="store_true", default=None,
                        help="use the pod's service account even when a kubeconfig exists")
    parser.set_defaults(func=run)


def _duration(text: str | None, flag: str) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from exc


def run(args: argparse.Namespace) -> int:
    configure_logging()
    options = RecordOptions(
        snapshot=args.snapshot,
        events=args.events,
        duration_seconds=_duration(args.duration, "--duration"),
        sync_timeout_seconds=_duration(args.sync_timeout, "--sync-timeout") or 60.0,
        kubeconfig=args.kubeconfig,
        context=args.context,
        in_cluster=args.in_cluster,
    )

    def snapshot_written(objects: int) -> None:
        print(f"snapshot: {objects} objects in {options.snapshot}; recording changes to {options.events}",
              file=sys.stderr, flush=True)

    outcome = record(options, on_snapshot=snapshot_written)
    print(f"recorded {outcome.objects} objects and {outcome.changes} changes", file=sys.stderr)
    return 0
