"""`auditor replay-server`: serve recorded flows over real gRPC as the Hubble Observer service."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from auditor.app.replay_server import ReplayServerOptions, build_server, serve
from auditor.hubble.replay_server import ReplayServer
from auditor.log import configure as configure_logging

SHOWN_PROBLEMS = 5


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "replay-server",
        help="serve recorded flows over gRPC as a Hubble server (the hubble CLI works against it)",
        description="Serve recorded flow files over real gRPC as observer.Observer, so `auditor run`, "
        "the hubble CLI, tests and benchmarks can read them like a live Hubble Relay.",
    )
    parser.add_argument("--flows", nargs="+", required=True, metavar="FILE",
                        help="flow files (hubble observe -o jsonpb, exporter files; gzip accepted; "
                        "'-' reads stdin to its end), merged by time")
    parser.add_argument("--listen", default="127.0.0.1:4245", metavar="HOST:PORT",
                        help="address to listen on (port 0 picks a free port); default %(default)s")
    parser.add_argument("--rate", type=float, default=None, metavar="N",
                        help="the recording arrives N responses per second from the first request on "
                        "(default: all of it is there from the start)")
    parser.add_argument("--speed", type=float, default=None, metavar="X",
                        help="the recording arrives at X times its recorded pace (1 = real time)")
    parser.add_argument("--loop", action="store_true", help="replay the recording again after its end")
    parser.add_argument("--tls-cert-file", default="", metavar="FILE",
                        help="PEM server certificate (enables TLS)")
    parser.add_argument("--tls-key-file", default="", metavar="FILE", help="PEM server private key")
    parser.add_argument("--tls-client-ca-files", nargs="+", default=[], metavar="FILE",
                        help="PEM CAs for client certificates: requires client certificates (mTLS)")
    parser.set_defaults(func=run)


def _ready(address: str, server: ReplayServer) -> None:
    for problem in server.problems[:SHOWN_PROBLEMS]:
        print(f"auditor replay-server: skipped {problem}", file=sys.stderr)
    if len(server.problems) > SHOWN_PROBLEMS:
        print(f"auditor replay-server: ... and {len(server.problems) - SHOWN_PROBLEMS} more bad lines",
              file=sys.stderr)
    print(f"listening on {address} ({len(server.records)} responses)", flush=True)


def run(args: argparse.Namespace) -> int:
    configure_logging()
    options = ReplayServerOptions(
        flows=tuple(args.flows), listen=args.listen, rate=args.rate, loop=args.loop, speed=args.speed,
        tls_cert_file=args.tls_cert_file, tls_key_file=args.tls_key_file,
        tls_client_ca_files=tuple(args.tls_client_ca_files),
    )
    return serve(build_server(options), ready=_ready)
