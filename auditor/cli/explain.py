"""`auditor explain`: why is A -> B:port (or ICMP) allowed or denied, and by which policies."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from auditor.app.explain import (
    ICMP_PROTOCOLS,
    Query,
    QueryError,
    explain,
    explanation_json,
    load_state,
    normalize_protocol,
    read_queries,
    run_batch,
    state_header,
)
from auditor.app.explain_endpoints import parse_endpoint_arg
from auditor.app.explain_text import explanation_text
from auditor.errors import ConfigError
from auditor.policy.engine import POLICY_ENFORCEMENT_MODES, PolicyEngine

_ENDPOINT = 'NS/POD | node/NAME | IP | {"ip": IP, "entity": E, "names": [DNS]}'


def _protocol(text: str) -> str:
    try:
        return normalize_protocol(text)
    except QueryError as exc:
        raise argparse.ArgumentTypeError(exc.reason) from exc


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "explain",
        help="explain one connection (or a file of them) against the policies in force",
        description="Decide A -> B:port (or an ICMP message) under the NetworkPolicies and Cilium policies of "
        "the manifests (at --at, after --cluster-events) and say which policies and rules decided it.",
    )
    parser.add_argument("--manifests", nargs="+", required=True, metavar="PATH",
                        help="YAML/JSON manifests or directories: the cluster state before the first event")
    parser.add_argument("--cluster-events", metavar="FILE", help="timestamped inventory changes (JSON lines)")
    parser.add_argument("--at", metavar="TIME", help="RFC 3339 instant whose state to use (default: latest)")
    parser.add_argument("--from", dest="source", metavar="ENDPOINT", help=f"the client: {_ENDPOINT}")
    parser.add_argument("--to", dest="destination", metavar="ENDPOINT", help="the server, as --from")
    parser.add_argument("--port", type=int, metavar="P", help="destination port (not for ICMP)")
    parser.add_argument("--protocol", type=_protocol, default="TCP", metavar="PROTO",
                        help="TCP (default), UDP, SCTP, ICMP (or ICMPv4), ICMPv6")
    parser.add_argument("--icmp-type", metavar="TYPE",
                        help="ICMP/ICMPv6 message type: a number or a name like EchoRequest (default: echo "
                        "request, 8 for ICMP, 128 for ICMPv6)")
    parser.add_argument("--queries", metavar="FILE",
                        help='one JSON query per line: {"from": ENDPOINT, "to": ENDPOINT, "port": 80, '
                        '"protocol": "TCP"} or {"from": ..., "to": ..., "protocol": "ICMP", "icmp_type": 8}')
    parser.add_argument("--output", choices=("text", "json"),
                        help="text (default for one query) or json (default with --queries: "
                        "one object per line)")
    parser.add_argument("--enforce-node-traffic", action="store_true",
                        help="judge node <-> own-pod traffic by the policies (Cilium host firewall)")
    parser.add_argument("--cidr-match-nodes", action="store_true",
                        help="let ipBlock / CIDR peers match node IPs (Cilium policy-cidr-match-mode=nodes)")
    parser.add_argument("--policy-enforcement", choices=POLICY_ENFORCEMENT_MODES, default="default",
                        help="Cilium's agent setting: default (policies isolate what they select), always "
                        "(every endpoint is in default deny), never (nothing is enforced)")
    parser.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    single = (args.source, args.destination, args.port, args.icmp_type)
    if args.queries:
        if any(v is not None for v in single):
            raise ConfigError("--queries cannot be combined with --from/--to/--port/--icmp-type")
        return
    needs_port = args.protocol not in ICMP_PROTOCOLS
    if args.source is None or args.destination is None or (needs_port and args.port is None):
        raise ConfigError("--from, --to and --port are required (no --port for ICMP/ICMPv6), "
                          "or --queries FILE")


def _single(args: argparse.Namespace) -> Query:
    return Query(parse_endpoint_arg(args.source), parse_endpoint_arg(args.destination), args.port,
                 args.protocol, args.icmp_type)


def run(args: argparse.Namespace) -> int:
    _check(args)
    loaded = load_state(args.manifests, args.cluster_events, args.at)
    engine = PolicyEngine(enforce_node_traffic=args.enforce_node_traffic,
                          cidr_match_nodes=args.cidr_match_nodes, policy_enforcement=args.policy_enforcement)
    if not args.queries:
        item = explain(loaded.state, engine, _single(args))
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
