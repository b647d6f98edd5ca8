"""`auditor whatif`: what would a proposed policy change do to the recorded traffic?"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from auditor.app.settings import add_analysis_arguments
from auditor.app.whatif import EXIT_FAIL_ON, FAIL_ON, WhatifOptions, run_whatif
from auditor.app.whatif_format import FORMATS, render
from auditor.cli.report import window


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "whatif",
        help="re-judge recorded connections under proposed policies: what would the change break?",
        description="Judge every recorded connection under the current and the proposed policies (Kubernetes "
        "NetworkPolicy, CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy) and list what is newly denied, "
        "newly allowed or decided by other rules, plus the posture delta. "
        f"Exit codes: 0 done, 1 unusable input, 2 bad arguments, {EXIT_FAIL_ON} --fail-on met.",
    )
    parser.add_argument("--manifests", nargs="+", required=True, metavar="PATH",
                        help="the current cluster state: YAML/JSON manifests or directories")
    parser.add_argument("--cluster-events", metavar="FILE", help="timestamped inventory changes (JSON lines)")
    change = parser.add_argument_group("the change (one or both)")
    change.add_argument("--proposed", nargs="+", default=[], metavar="PATH",
                        help="changed or added objects (files or directories); each replaces the object of "
                        "the same kind and name")
    change.add_argument("--replace-policies", action="store_true",
                        help="--proposed holds the whole policy set: current policies missing from it are "
                        "deleted")
    change.add_argument("--proposed-events", metavar="FILE",
                        help="a sequence of ADDED/MODIFIED/DELETED changes (--cluster-events format), in order")
    data = parser.add_argument_group("recorded traffic (one of)")
    data.add_argument("--flows", nargs="+", default=[], metavar="FILE", help="flow files (jsonpb, gzip ok)")
    data.add_argument("--store", metavar="URL",
                      help="the daemon's store (sqlite:///path): the distinct connections it judged")
    span = parser.add_argument_group("window (default: everything)")
    span.add_argument("--since", metavar="DURATION", help="the last DURATION before now (e.g. 24h)")
    span.add_argument("--from", dest="from_time", metavar="TIME", help="start, RFC 3339")
    span.add_argument("--to", "--until", dest="to_time", metavar="TIME", help="end (exclusive), RFC 3339")
    parser.add_argument("--output", choices=FORMATS, default="table",
                        help="table, json, or markdown (a pull-request comment)")
    parser.add_argument("--fail-on", choices=FAIL_ON, metavar="CHANGE",
                        help=f"exit {EXIT_FAIL_ON} when a connection is {', '.join(FAIL_ON)}")
    parser.add_argument("--enforce-node-traffic", action="store_true",
                        help="judge node <-> pod traffic by the policies (Cilium host firewall)")
    add_analysis_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from_ns, to_ns = window(args)
    options = WhatifOptions(
        manifests=tuple(args.manifests), proposed=tuple(args.proposed), proposed_events=args.proposed_events,
        replace_policies=args.replace_policies, flows=tuple(args.flows), store=args.store,
        cluster_events=args.cluster_events, from_ns=from_ns, to_ns=to_ns,
        enforce_node_traffic=args.enforce_node_traffic, policy_enforcement=args.policy_enforcement,
        cidr_match_nodes=args.cidr_match_nodes,
        fail_on=args.fail_on,
    )
    result = run_whatif(options)
    text = render(result, args.output)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    failing = result.failing(args.fail_on)
    if failing:
        print(f"auditor whatif: {failing} connection keys are {args.fail_on}", file=sys.stderr)
        return EXIT_FAIL_ON
    return 0
