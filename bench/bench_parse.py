"""Flows per second for file parsing and protobuf -> model conversion, on one core.

    .venv/bin/python bench/bench_parse.py [--flows 100000] [--no-profile]

Measures CPU time (process_time, so other load on the machine counts less), best of three runs:
  (a) JSON line -> GetFlowsResponse (auditor's reader; google.protobuf.json_format for comparison)
  (b) protobuf bytes -> GetFlowsResponse.FromString -> model Flow, split into its two halves; and the
      light conversion `auditor run`/`audit` use (flows the correlator only counts come back light)
  (c) the same for one ~1 KB flow, with every flow from a different pod IP/port (endpoint cache
      misses on both sides) and with the same endpoints repeated (cache hits)
and prints a cProfile top 15 of (b).  Input: the real fixtures in tests/fixtures/real-flows,
repeated to --flows lines.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from auditor._proto.observer import observer_pb2
from auditor.hubble.convert import event_from_response, light_event_from_response, response_from_json

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "real-flows"
ONE_KB_FLOW = "hubble-otel-basic-sample-400-tcp-flows.jsonl"


def fixture_lines(count: int) -> list[str]:
    lines = [line for path in sorted(FIXTURES.glob("*.jsonl")) for line in path.read_text().splitlines()]
    return (lines * (count // len(lines) + 1))[:count]


def best_rate(label: str, items: Sequence[Any], work: Callable[[Sequence[Any]], None], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.process_time()
        work(items)
        best = min(best, time.process_time() - start)
    rate = len(items) / best
    print(f"  {label:58s} {rate:>11,.0f} flows/s  ({best / len(items) * 1e6:6.2f} us/flow)")
    return rate


def parse_json(lines: Sequence[str]) -> None:
    for line in lines:
        response_from_json(line)


def json_loads_only(lines: Sequence[str]) -> None:
    for line in lines:
        json.loads(line)


def parse_json_format(lines: Sequence[str]) -> None:
    for line in lines:
        json_format.Parse(line, observer_pb2.GetFlowsResponse(), ignore_unknown_fields=True)


def from_string(blobs: Sequence[bytes]) -> None:
    parse = observer_pb2.GetFlowsResponse.FromString
    for blob in blobs:
        parse(blob)


def convert_only(messages: Sequence[Any]) -> None:
    for message in messages:
        event_from_response(message)


def from_bytes_to_model(blobs: Sequence[bytes]) -> None:
    parse = observer_pb2.GetFlowsResponse.FromString
    for blob in blobs:
        event_from_response(parse(blob))


def from_bytes_to_light_model(blobs: Sequence[bytes]) -> None:
    parse = observer_pb2.GetFlowsResponse.FromString
    for blob in blobs:
        light_event_from_response(parse(blob))


def one_kb_variants(count: int) -> tuple[list[bytes], list[bytes]]:
    """(distinct endpoints per flow, identical endpoints) serializations of one ~1 KB real flow."""
    line = (FIXTURES / ONE_KB_FLOW).read_text().splitlines()[0]
    template = response_from_json(line)
    same = [template.SerializeToString()] * count
    distinct = []
    for index in range(count):
        message = observer_pb2.GetFlowsResponse()
        message.CopyFrom(template)
        message.flow.IP.source = f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}"
        message.flow.l4.TCP.source_port = 1024 + index % 60000
        message.flow.destination.pod_name = f"pod-{index}"
        distinct.append(message.SerializeToString())
    return distinct, same


def profile(blobs: Sequence[bytes]) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    from_bytes_to_model(blobs)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    print(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=100_000)
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args(argv)

    lines = fixture_lines(args.flows)
    sizes = [len(line) for line in lines]
    print(f"input: {len(lines):,} real fixture lines, mean {sum(sizes) / len(sizes):.0f} bytes of JSON")
    print("(a) JSON line -> GetFlowsResponse")
    best_rate("auditor.hubble.convert.response_from_json", lines, parse_json)
    best_rate("google.protobuf.json_format.Parse (reference)", lines[: max(1, len(lines) // 20)],
              parse_json_format, runs=1)
    best_rate("json.loads only (floor)", lines, json_loads_only)

    messages = [response_from_json(line) for line in lines]
    blobs = [message.SerializeToString() for message in messages]
    print(f"(b) protobuf -> model, mean {sum(map(len, blobs)) / len(blobs):.0f} bytes per message")
    best_rate("FromString only", blobs, from_string)
    best_rate("event_from_response only (message -> model)", messages, convert_only)
    best_rate("FromString + event_from_response", blobs, from_bytes_to_model)
    best_rate("FromString + light_event_from_response (daemon, audit)", blobs, from_bytes_to_light_model)

    distinct, same = one_kb_variants(args.flows)
    print(f"(c) one real flow, {len(same[0])} bytes on the wire")
    best_rate("FromString + convert, same endpoints every time", same, from_bytes_to_model)
    best_rate("FromString + convert, a new source/destination every flow", distinct, from_bytes_to_model)

    if not args.no_profile:
        print("profile of (b) FromString + event_from_response, top 15 by own time:")
        profile(blobs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
