"""GetFlows throughput over loopback gRPC: feeders alone, then the live client with conversion.

    .venv/bin/python bench/bench_grpc.py [--count 200000] [--profile]

Each server runs in its own process pinned to one core, the client in this process pinned to the
other.  Flows are the real fixtures (tests/fixtures/real-flows), repeated.  Stages:

  0. in-process parse and conversion rates, no gRPC (calibrates how loaded the machine is)
  1. grpcio ReplayServer -> raw client (bytes only)           the product's server alone
  2. h2 feeder           -> raw client (bytes only)           bench feeder alone (bench/h2feeder.py)
  3. h2 feeder           -> raw client + GetFlowsResponse parse
  4. h2 feeder           -> HubbleClient (parse + convert to model Flow + resume bookkeeping)
  4b the same with light=True (as `auditor run`: flows the correlator only counts come back light)
  5. grpcio ReplayServer -> HubbleClient                       what `auditor replay-server` gives
"""

from __future__ import annotations

import argparse
import cProfile
import io
import multiprocessing as mp
import os
import pstats
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from auditor._proto.observer import observer_pb2  # noqa: E402
from auditor.hubble.client import FAST_STREAM_OPTION, GET_FLOWS, HubbleClient  # noqa: E402
from auditor.hubble.config import HubbleConfig  # noqa: E402
from auditor.hubble.files import iter_responses  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "real-flows"


def load_messages() -> list[bytes]:
    """Serialized GetFlowsResponses (flows only) of every fixture file."""
    out = []
    for path in sorted(FIXTURES.glob("*.jsonl")):
        for _line, response in iter_responses(path, lambda _problem: None):
            if response.WhichOneof("response_types") == "flow":
                out.append(response.SerializeToString())
    return out


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


def run_replay_server(queue: Any, cpu: int) -> None:
    pin(cpu)
    from auditor.hubble.replay_server import ReplayServer

    responses = [observer_pb2.GetFlowsResponse.FromString(m) for m in load_messages()]
    server = ReplayServer(responses=responses, loop=True)
    queue.put(server.start())
    server.wait()


def run_h2_feeder(queue: Any, cpu: int, repeat: int) -> None:
    pin(cpu)
    import h2feeder

    listener = socket.create_server(("127.0.0.1", 0))
    queue.put(f"127.0.0.1:{listener.getsockname()[1]}")
    h2feeder.serve(listener, load_messages(), repeat)


def start(target: Callable[..., None], *args: Any) -> tuple[mp.Process, str]:
    queue: Any = mp.Queue()
    process = mp.Process(target=target, args=(queue, *args), daemon=True)
    process.start()
    return process, queue.get(timeout=60)


def raw_client(address: str, count: int, parse: bool) -> int:
    """Read `count` responses as bytes (optionally parsed) from a follow GetFlows stream."""
    channel = grpc.insecure_channel(address, options=[FAST_STREAM_OPTION])
    deserializer = observer_pb2.GetFlowsResponse.FromString if parse else None
    method = channel.unary_stream(GET_FLOWS, request_serializer=None, response_deserializer=deserializer)
    call = method(observer_pb2.GetFlowsRequest(follow=True).SerializeToString())
    received = 0
    for _message in call:
        received += 1
        if received >= count:
            call.cancel()
            break
    channel.close()
    return received


def hubble_client(address: str, count: int, light: bool = False) -> int:
    client = HubbleClient(HubbleConfig(server=address, stall_timeout=0), light=light)
    received = 0
    for _event in client.events():
        received += 1
        if received >= count:
            client.close()
    return received


def measure(label: str, work: Callable[[], int], profile: bool = False) -> None:
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    received = work()
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - started
    print(f"{label:<58} {received:>8} msgs {elapsed:6.2f} s {received / elapsed:>10,.0f} /s", flush=True)
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(12)
        print("\n".join(line for line in text.getvalue().splitlines()[6:] if line.strip()), flush=True)


def calibrate(messages: list[bytes]) -> None:
    """In-process rates without any gRPC: how fast this machine parses and converts right now."""
    from auditor.hubble.convert import event_from_response

    sample = (messages * (20_000 // len(messages) + 1))[:20_000]
    parse = observer_pb2.GetFlowsResponse.FromString
    started = time.perf_counter()
    parsed = [parse(message) for message in sample]
    middle = time.perf_counter()
    for response in parsed:
        event_from_response(response)
    ended = time.perf_counter()
    print(f"{'0 in-process: upb FromString alone':<58} {len(sample) / (middle - started):>34,.0f} /s")
    print(f"{'0 in-process: event_from_response alone':<58} {len(sample) / (ended - middle):>34,.0f} /s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200_000, help="messages per stage")
    parser.add_argument("--profile", action="store_true", help="cProfile the HubbleClient stage")
    args = parser.parse_args()
    messages = load_messages()
    size = sum(map(len, messages)) / len(messages)
    print(f"{len(messages)} distinct fixture flows, mean {size:.0f} bytes serialized; cpu {os.cpu_count()}")
    pin(0)
    calibrate(messages)
    repeat = args.count // len(messages) + 2
    slow_count = min(args.count, 50_000)
    replay, replay_address = start(run_replay_server, 1)
    measure("1 grpcio ReplayServer -> raw client", lambda: raw_client(replay_address, slow_count, False))
    feeder, feeder_address = start(run_h2_feeder, 1, repeat)
    measure("2 h2 feeder -> raw client (bytes)", lambda: raw_client(feeder_address, args.count, False))
    measure("3 h2 feeder -> raw client + parse", lambda: raw_client(feeder_address, args.count, True))
    measure("4 h2 feeder -> HubbleClient (parse+convert)", lambda: hubble_client(feeder_address, args.count),
            profile=args.profile)
    measure("4b h2 feeder -> HubbleClient(light=True), as the daemon",
            lambda: hubble_client(feeder_address, args.count, light=True))
    measure("5 grpcio ReplayServer -> HubbleClient", lambda: hubble_client(replay_address, slow_count))
    for process in (replay, feeder):
        process.terminate()


if __name__ == "__main__":
    main()
