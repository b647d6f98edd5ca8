"""`auditor record`: capture a live cluster's inventory as a manifests snapshot plus cluster events."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from auditor.app.record import RecordOptions, record
from auditor.app.settings import HUBBLE_OPTIONS, HubbleSettings, add_arguments, parse_duration
from auditor.errors import ConfigError
from auditor.log import configure as configure_logging


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "record",
        help="record the live cluster and Hubble flows so an incident can be replayed",
        description="List+watch Namespaces, Pods, Nodes and NetworkPolicies; write the state once every "
        "list is in, then every later change, and (with --out) the Hubble flow stream, until --duration "
        "or Ctrl-C. --out DIR writes DIR/cluster.yaml, DIR/cluster-events.jsonl and DIR/flows.jsonl; "
        "replay them with audit/report (--manifests, --cluster-events, --flows) or replay-server.",
    )
    parser.add_argument("--out", metavar="DIR",
                        help="write cluster.yaml, cluster-events.jsonl and flows.jsonl into DIR")
    parser.add_argument("--no-flows", action="store_true", help="with --out: record the inventory only")
    parser.add_argument("--snapshot", metavar="FILE",
                        help="inventory only: the state at the start, a kind: List (JSON if .json, else YAML)")
    parser.add_argument("--events", metavar="FILE",
                        help="inventory only: changes after the snapshot (JSON lines)")
    parser.add_argument("--duration", metavar="DURATION",
                        help="stop after this long (30s, 10m, 1h); default: until Ctrl-C")
    parser.add_argument("--sync-timeout", default="60s", metavar="DURATION",
                        help="give up when the initial lists are not in after this long (default %(default)s)")
    parser.add_argument("--kubeconfig", metavar="FILE",
                        help="kubeconfig (default: in-cluster, then ~/.kube/config)")
    parser.add_argument("--context", metavar="NAME", help="kubeconfig context")
    parser.add_argument("--in-cluster", action="store_true", default=None,
                        help="use the pod's service account even when a kubeconfig exists")
    hubble = parser.add_argument_group("Hubble connection (the same flags, env and defaults as auditor run)")
    add_arguments(hubble, HUBBLE_OPTIONS, config=False)
    hubble.add_argument("--allowlist", action="append", default=[], metavar="JSON",
                        help='FlowFilter as JSON, e.g. \'{"verdict":["DROPPED"]}\' (repeat: OR)')
    hubble.add_argument("--denylist", action="append", default=[], metavar="JSON",
                        help="FlowFilter as JSON whose matches are excluded (repeat: OR)")
    parser.set_defaults(func=run)


def _duration(text: str | None, flag: str) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from exc


def _paths(args: argparse.Namespace) -> tuple[str, str, str | None]:
    """(snapshot, events, flows) from --out DIR, or from --snapshot and --events."""
    if args.out:
        if args.snapshot or args.events:
            raise ConfigError("use either --out DIR or --snapshot/--events, not both")
        out = Path(args.out)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--out {args.out}: cannot create the directory: {exc.strerror or exc}") from exc
        flows = None if args.no_flows else str(out / "flows.jsonl")
        return str(out / "cluster.yaml"), str(out / "cluster-events.jsonl"), flows
    if not (args.snapshot and args.events):
        raise ConfigError("give --out DIR, or both --snapshot FILE and --events FILE")
    return args.snapshot, args.events, None


def run(args: argparse.Namespace) -> int:
    configure_logging()
    snapshot, events, flows = _paths(args)
    options = RecordOptions(
        snapshot=snapshot,
        events=events,
        flows=flows,
        hubble=HubbleSettings.from_args(args).config(args.allowlist, args.denylist) if flows else None,
        duration_seconds=_duration(args.duration, "--duration"),
        sync_timeout_seconds=_duration(args.sync_timeout, "--sync-timeout") or 60.0,
        kubeconfig=args.kubeconfig,
        context=args.context,
        in_cluster=args.in_cluster,
    )

    def snapshot_written(objects: int) -> None:
        also = f" and flows to {options.flows}" if options.flows else ""
        print(f"snapshot: {objects} objects in {options.snapshot}; recording changes to {options.events}{also}",
              file=sys.stderr, flush=True)

    outcome = record(options, on_snapshot=snapshot_written)
    recorded = f"recorded {outcome.objects} objects and {outcome.changes} changes"
    if outcome.flows is not None:
        recorded += f", {outcome.flows.flows} flows ({outcome.flows.lost_events} lost upstream)"
    invalid: Counter[str] = Counter()
    for resource in outcome.status.resources.values():
        invalid.update(resource.invalid_objects)
    if invalid:
        total = sum(invalid.values())
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(invalid.items()))
        recorded += f"; {total} invalid object{'' if total == 1 else 's'} skipped ({kinds})"
    print(recorded, file=sys.stderr)
    return 0
