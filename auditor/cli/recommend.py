"""`auditor recommend`: least-privilege policies from recorded traffic, verified before printed."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from auditor.app.recommend import KINDS, RecommendOptions, run_recommend
from auditor.app.recommend_format import render, summary_lines
from auditor.app.settings import add_analysis_arguments
from auditor.cli.report import window
from auditor.errors import InputError

EXIT_UNVERIFIED = 3
"""The recommendation failed one of its own checks (it is still printed, with the reasons)."""


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "recommend",
        help="least-privilege policies (NetworkPolicy or CiliumNetworkPolicy) from recorded traffic",
        description="Write, per workload, the policies that admit exactly the observed legitimate traffic, "
        "plus a default deny per namespace; each object says what evidence produced it. The result is "
        "validated, linted and re-judged (whatif) before it is printed. Exit codes: 0 verified, "
        f"1 unusable input, 2 bad arguments, {EXIT_UNVERIFIED} a check failed.",
    )
    parser.add_argument("--manifests", nargs="+", required=True, metavar="PATH",
                        help="the current cluster state: YAML/JSON manifests or directories")
    parser.add_argument("--cluster-events", metavar="FILE", help="timestamped inventory changes (JSON lines)")
    data = parser.add_argument_group("recorded traffic (one of)")
    data.add_argument("--flows", nargs="+", default=[], metavar="FILE", help="flow files (jsonpb, gzip ok)")
    data.add_argument("--store", metavar="URL", help="the daemon's store: the distinct connections it judged")
    span = parser.add_argument_group("window (default: everything)")
    span.add_argument("--since", metavar="DURATION", help="the last DURATION before now (e.g. 7d)")
    span.add_argument("--from", dest="from_time", metavar="TIME", help="start, RFC 3339")
    span.add_argument("--to", "--until", dest="to_time", metavar="TIME", help="end (exclusive), RFC 3339")
    parser.add_argument("--namespace", action="append", metavar="NS",
                        help="only this namespace (repeatable; default: every namespace with pods but "
                        "kube-system)")
    parser.add_argument("--kind", choices=KINDS, default=KINDS[0],
                        help="networkpolicy (Kubernetes) or cilium (CiliumNetworkPolicy); default %(default)s")
    parser.add_argument("--uncovered", action="store_true",
                        help="only the workloads (and directions) no policy isolates yet")
    parser.add_argument("--include-denied", action="store_true",
                        help="also learn connections the dataplane or the current policies deny")
    parser.add_argument("--min-prefix", type=int, default=24, metavar="BITS",
                        help="external addresses within one /BITS network are merged into their smallest "
                        "common CIDR (IPv6: BITS+96); 32 keeps every address apart (default %(default)s)")
    parser.add_argument("--output", default="-", metavar="FILE", help="file to write ('-' for stdout)")
    parser.add_argument("--enforce-node-traffic", action="store_true",
                        help="judge node <-> pod traffic by the policies (Cilium host firewall)")
    add_analysis_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from_ns, to_ns = window(args)
    options = RecommendOptions(
        manifests=tuple(args.manifests), flows=tuple(args.flows), store=args.store,
        cluster_events=args.cluster_events, namespaces=tuple(args.namespace or ()), kind=args.kind,
        uncovered=args.uncovered, include_denied=args.include_denied, min_prefix=args.min_prefix,
        from_ns=from_ns, to_ns=to_ns, enforce_node_traffic=args.enforce_node_traffic,
        policy_enforcement=args.policy_enforcement, cidr_match_nodes=args.cidr_match_nodes,
    )
    result = run_recommend(options)
    text = render(result)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        try:
            with open(args.output, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            raise InputError(f"cannot write: {exc.strerror}", path=args.output) from exc
        for line in summary_lines(result):
            print(line, file=sys.stderr)
    return 0 if result.verification.ok else EXIT_UNVERIFIED
