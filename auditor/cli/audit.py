"""`auditor audit`: judge recorded flows against manifests (and cluster events), offline."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from auditor.app.audit import AuditOptions, finding_line, result_json, result_table, run_audit
from auditor.app.settings import add_analysis_arguments
from auditor.hubble.cli_filters import add_filter_arguments, keep_from_args

SHOWN_ERRORS = 5
"""Bad flow lines listed on stderr (all are counted in skipped_lines)."""


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "audit",
        help="judge recorded Hubble flows against NetworkPolicy manifests, offline",
        description="Judge each recorded Hubble flow against the NetworkPolicies in force at its time "
        "and print findings.",
    )
    parser.add_argument("--manifests", nargs="+", required=True, metavar="PATH",
                        help="YAML/JSON manifests (gzip accepted) or directories: the cluster state before "
                        "the first event")
    parser.add_argument("--cluster-events", metavar="FILE",
                        help="timestamped inventory changes (JSON lines), applied at their times")
    parser.add_argument("--flows", nargs="+", default=[], metavar="FILE",
                        help="flow files (hubble observe -o jsonpb, exporter files; gzip accepted); "
                        "'-' reads stdin (e.g. hubble observe --follow -o jsonpb | auditor audit "
                        "--flows -); without them only the static findings of the manifests are "
                        "reported (a lint)")
    parser.add_argument("--follow", action="store_true",
                        help="print each new finding as soon as it appears (for endless pipes); "
                        "the full result follows at the end of the input or on Ctrl-C")
    parser.add_argument("--output", choices=("table", "json"), default="table", help="output format")
    parser.add_argument("--allow-empty", action="store_true",
                        help="exit 0 even when the flow files hold no usable flow or the manifests no object "
                        "(for pipelines that may have nothing); by default that is an error")
    parser.add_argument("--enforce-node-traffic", action="store_true",
                        help="judge node <-> pod traffic by the policies (Cilium host firewall / "
                        "policy-enforcement=always)")
    add_analysis_arguments(parser)
    add_filter_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    options = AuditOptions(
        manifests=tuple(args.manifests),
        flows=tuple(args.flows),
        cluster_events=args.cluster_events,
        enforce_node_traffic=args.enforce_node_traffic,
        policy_enforcement=args.policy_enforcement,
        cidr_match_nodes=args.cidr_match_nodes,
        keep=keep_from_args(args),
        allow_empty=args.allow_empty,
    )

    def print_new(finding: Any) -> None:
        sys.stdout.write(finding_line(finding, args.output) + "\n")
        sys.stdout.flush()

    result = run_audit(options, on_new=print_new if args.follow else None)
    errors = result.summary.errors
    for message in errors[:SHOWN_ERRORS]:
        print(f"auditor audit: skipped {message}", file=sys.stderr)
    if result.summary.skipped_lines > SHOWN_ERRORS:
        more = result.summary.skipped_lines - SHOWN_ERRORS
        print(f"auditor audit: ... and {more} more bad flow lines", file=sys.stderr)
    text = result_json(result) if args.output == "json" else result_table(result)
    sys.stdout.write(text + "\n")
    return 0
