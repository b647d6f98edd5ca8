"""`auditor explain`: why is A -> B:port allowed or denied, and by which NetworkPolicies."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from auditor.app.explain import (
    PROTOCOLS,
    Query,
    explain,
    explanation_json,
    load_state,
    read_queries,
    run_batch,
    state_header,
)
from auditor.app.explain_text import explanation_text
from auditor.errors import ConfigError
from auditor.policy.engine import PolicyEngine


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "explain",
        help="explain one connection (or a file of them) against the NetworkPolicies in force",
        description="Decide A -> B:port under the NetworkPolicies of the manifests (at --at, after "
        "--cluster-events) and say which policies and rules decided it.",
    )
    parser.add_argument("--manifests", nargs="+", required=True, metavar="PATH",
                        help="YAML/JSON manifests or directories: the cluster state before the first event")
    parser.add_argument("--cluster-events", metavar="FILE", help="timestamped inventory changes (JSON lines)")
    parser.add_argument("--at", metavar="TIME", help="RFC 3339 instant whose state to use (default: latest)")
    parser.add_argument("--from", dest="source", metavar="NS/POD|IP", help="the client")
    parser.add_argument("--to", dest="destination", metavar="NS/POD|IP", help="the server")
    parser.add_argument("--port", type=int, metavar="P", help="destination port")
    parser.add_argument("--protocol", type=str.upper, choices=PROTOCOLS, default="TCP")
    parser.add_argument("--queries", metavar="FILE",
                        help='one JSON query per line: {"from": "NS/POD" | {"ip": "A.B.C.D"}, "to": ..., '
                        '"port": 80, "protocol": "TCP"}')
    parser.add_argument("--output", choices=("text", "json"),
                        help="text (default for one query) or json (default with --queries: "
                        "one object per line)")
    parser.add_argument("--enforce-node-traffic", action="store_true",
                        help="judge node <-> own-pod traffic by the policies (Cilium host firewall)")
    parser.add_argument("--cidr-match-nodes", action="store_true",
                        help="let ipBlock peers match node IPs (Cilium policy-cidr-match-mode=nodes)")
    parser.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    single = (args.source, args.destination, args.port)
    if args.queries:
        if any(v is not None for v in single):
            raise ConfigError("--queries cannot be combined with --from/--to/--port")
    elif any(v is None for v in single):
        raise ConfigError("--from, --to and --port are required (or --queries FILE)")


def run(args: argparse.Namespace) -> int:
    _check(args)
    loaded = load_state(args.manifests, args.cluster_events, args.at)
    engine = PolicyEngine(enforce_node_traffic=args.enforce_node_traffic,
                          cidr_match_nodes=args.cidr_match_nodes)
    if not args.queries:
        item = explain(loaded.state, engine, Query(args.source, args.destination, args.port, args.protocol))
        if args.output == "json":
            sys.stdout.write(json.dumps(explanation_json(item), sort_keys=True) + "\n")
        else:
            sys.stdout.write(explanation_text(loaded.state, item, state_header(loaded)))
        return 0
    failed = 0
    for index, line in enumerate(run_batch(loaded.state, engine, read_queries(args.queries))):
        failed += line.result is None
        if args.output == "text":
            if index:
                sys.stdout.write("\n")
            body = (explanation_text(loaded.state, line.result) if line.result is not None
                    else f"line {line.line}: error: {line.error}\n")
            sys.stdout.write(body)
        else:
            sys.stdout.write(json.dumps(line.to_json(), sort_keys=True) + "\n")
    if failed:
        print(f"auditor explain: error: {args.queries}: {failed} queries could not be answered (see the lines "
              "marked error above)", file=sys.stderr)
        return 1
    return 0
