"""`auditor report`: a compliance report from recorded data (store) or files, in one of four formats."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from auditor.app.report import EXIT_FAIL_ON, ReportOptions, run_report
from auditor.app.settings import add_analysis_arguments, parse_duration
from auditor.errors import ConfigError
from auditor.model.findings import Severity
from auditor.model.times import parse_rfc3339_ns
from auditor.report.render import FORMATS


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="write a compliance report (HTML, Markdown, JSON, CSV) from the store or from files",
        description="Combine the NetworkPolicy posture with evidence from real traffic into a report. "
        f"Exit codes: 0 written, 1 unusable input, 2 bad arguments, {EXIT_FAIL_ON} --fail-on threshold met.",
    )
    source = parser.add_argument_group("data (use --store, or --manifests with --flows)")
    source.add_argument("--store", metavar="URL", help="findings store the daemon writes (sqlite:///path)")
    source.add_argument("--manifests", nargs="+", default=[], metavar="PATH",
                        help="manifests: the posture; with --flows also the state the flows are judged against")
    source.add_argument("--cluster-events", metavar="FILE", help="timestamped inventory changes (JSON lines)")
    source.add_argument("--flows", nargs="+", default=[], metavar="FILE", help="flow files (jsonpb, gzip ok)")
    source.add_argument("--allow-empty", action="store_true",
                        help="no error when the flow files hold no usable flow or the manifests no object")
    source.add_argument("--no-live-cluster", action="store_true",
                        help="with --store and no --manifests: do not list the live cluster for the posture")
    source.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig for the live posture (default: "
                        "in-cluster service account, else KUBECONFIG or ~/.kube/config)")
    source.add_argument("--context", help="kubeconfig context for the live posture")
    span = parser.add_argument_group("window (default: everything the data covers)")
    span.add_argument("--since", metavar="DURATION", help="the last DURATION before now (e.g. 24h, 7d)")
    span.add_argument("--from", dest="from_time", metavar="TIME", help="start, RFC 3339")
    span.add_argument("--to", dest="to_time", metavar="TIME", help="end (exclusive), RFC 3339")
    parser.add_argument("--namespace", action="append", metavar="NS", help="only this namespace (repeatable)")
    parser.add_argument("--format", choices=FORMATS, required=True, help="output format")
    parser.add_argument("--output", required=True, metavar="FILE", help="file to write ('-' for stdout)")
    parser.add_argument("--fail-on", choices=[s.value for s in Severity], metavar="SEVERITY",
                        help=f"exit {EXIT_FAIL_ON} when findings of this severity or worse exist "
                        "(info, low, medium, high, critical)")
    parser.add_argument("--title", help="report title")
    parser.add_argument("--generated-at", metavar="TIME",
                        help="RFC 3339 time to print as the generation time (default: now)")
    parser.add_argument("--reproducible", action="store_true",
                        help="leave out the generation time (unless --generated-at) and auditor's version, so "
                        "the same inputs give byte-identical output (golden files)")
    parser.add_argument("--enforce-node-traffic", action="store_true",
                        help="judge node <-> pod traffic by the policies (Cilium host firewall)")
    add_analysis_arguments(parser)
    parser.add_argument("--whatif-proposed", nargs="+", default=[], metavar="PATH",
                        help="add an `auditor whatif` section: these proposed policies judged over the same "
                        "traffic (html, markdown, json)")
    parser.add_argument("--whatif-replace-policies", action="store_true",
                        help="--whatif-proposed holds the whole policy set "
                        "(see auditor whatif --replace-policies)")
    parser.set_defaults(func=run)


def _time(text: str | None, flag: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_rfc3339_ns(text)
    except Exception as exc:
        raise ConfigError(f"{flag}: not an RFC 3339 time: {text!r}") from exc


def window(args: argparse.Namespace) -> tuple[int | None, int | None]:
    """[from, to) in ns from --since or --from/--to (None where open); ConfigError for an unusable window."""
    if args.since and (args.from_time or args.to_time):
        raise ConfigError("use either --since or --from/--to")
    if args.since:
        try:
            seconds = parse_duration(args.since)
        except ValueError as exc:
            raise ConfigError(f"--since: {exc}") from exc
        now = time.time_ns()
        return now - int(seconds * 1e9), now
    from_ns, to_ns = _time(args.from_time, "--from"), _time(args.to_time, "--to")
    if from_ns is not None and to_ns is not None and from_ns >= to_ns:
        raise ConfigError(f"--from {args.from_time} is not before --to {args.to_time}: the window is empty")
    return from_ns, to_ns


def run(args: argparse.Namespace) -> int:
    from_ns, to_ns = window(args)
    to_stdout = args.output == "-"
    options = ReportOptions(
        format=args.format,
        output=None if to_stdout else args.output,
        store=args.store,
        manifests=tuple(args.manifests),
        cluster_events=args.cluster_events,
        flows=tuple(args.flows),
        from_ns=from_ns,
        to_ns=to_ns,
        namespaces=tuple(args.namespace) if args.namespace else None,
        fail_on=Severity(args.fail_on) if args.fail_on else None,
        title=args.title,
        generated_at_ns=_time(args.generated_at, "--generated-at") or 0,
        reproducible=args.reproducible,
        live_cluster=not args.no_live_cluster,
        kubeconfig=args.kubeconfig,
        context=args.context,
        enforce_node_traffic=args.enforce_node_traffic,
        policy_enforcement=args.policy_enforcement,
        cidr_match_nodes=args.cidr_match_nodes,
        whatif_proposed=tuple(args.whatif_proposed),
        whatif_replace_policies=args.whatif_replace_policies,
        allow_empty=args.allow_empty,
    )
    outcome = run_report(options)
    for warning in outcome.warnings:
        print(f"auditor report: warning: {warning}", file=sys.stderr)
    if to_stdout:
        sys.stdout.write(outcome.text)
    if outcome.failing:
        print(f"auditor report: {outcome.failing} findings at or above {args.fail_on}", file=sys.stderr)
    return outcome.exit_code
