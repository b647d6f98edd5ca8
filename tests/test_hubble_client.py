"""The live client against the replay server over real gRPC: round trip, resume, lost events, stalls."""

from __future__ import annotations

import heapq
import socket
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from auditor._proto.flow import flow_pb2
from auditor._proto.relay import relay_pb2
from auditor.errors import FlowSourceError
from auditor.hubble.client import HubbleClient
from auditor.hubble.convert import event_from_response, timestamp_ns
from auditor.hubble.files import iter_responses
from auditor.hubble.replay_server import ReplayServer
from auditor.model.events import FlowEvent, NodeStatus
from auditor.model.flows import Flow
from tests.hubble_support import (
    BASE_NS,
    fast_config,
    flow_response,
    lost_response,
    node_status_response,
    take,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "real-flows"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TestRoundTrip:
    def test_real_fixtures_equal_the_files_field_by_field(self) -> None:
        """The fixtures replayed over gRPC (merged by time) and converted equal the files converted."""
        paths = sorted(FIXTURES.glob("*.jsonl"))
        per_file = [[r for _line, r in iter_responses(path, lambda _problem: None)] for path in paths]
        merged = heapq.merge(*per_file, key=lambda r: timestamp_ns(r.flow.time) or timestamp_ns(r.time))
        expected = [event_from_response(r) for r in merged]
        with ReplayServer(paths) as server:
            client = HubbleClient(fast_config(server.address))
            got = take(client, len(expected))
        assert len(got) == len(expected) > 1000
        assert got == expected
        assert client.stats.flows == len(expected)

    def test_unix_socket(self, tmp_path: Path) -> None:
        """A unix:///path server (a node's hubble.sock) is dialled like host:port."""
        address = f"unix://{tmp_path}/hubble.sock"
        with ReplayServer(responses=[flow_response(i) for i in range(3)], listen=address) as server:
            assert server.address == address
            got = take(HubbleClient(fast_config(address)), 3)
        assert [event.uuid for event in got if isinstance(event, Flow)] == ["uuid-0", "uuid-1", "uuid-2"]

    def test_request_carries_filters_and_follow(self) -> None:
        """The GetFlows request follows and carries the configured allow and deny filters."""
        client = HubbleClient(fast_config("127.0.0.1:1", allow_filters=('{"verdict":["DROPPED"]}',),
                                          deny_filters=('{"source_pod":["kube-system/"]}',)))
        request = client.request()
        assert request.follow
        assert not request.HasField("since")
        assert list(request.whitelist[0].verdict) == [flow_pb2.DROPPED]
        assert list(request.blacklist[0].source_pod) == ["kube-system/"]

    def test_server_side_filters_apply(self) -> None:
        """Allow filters sent by the client are applied by the server."""
        responses = [flow_response(i, verdict=flow_pb2.DROPPED if i % 3 == 0 else flow_pb2.FORWARDED)
                     for i in range(9)]
        with ReplayServer(responses=responses) as server:
            client = HubbleClient(fast_config(server.address, allow_filters=('{"verdict":["DROPPED"]}',)))
            got = take(client, 3)
        assert [event.uuid for event in got if isinstance(event, Flow)] == ["uuid-0", "uuid-3", "uuid-6"]


def resume_records() -> list[Any]:
    """600 flows, three per timestamp; every third flow has no uuid (dedup falls back to bytes)."""
    return [
        flow_response(i, time_ns=BASE_NS + (i // 3) * 1000, uuid="" if i % 3 == 2 else None)
        for i in range(600)
    ]


def flow_identity(event: FlowEvent) -> tuple[int, int]:
    assert isinstance(event, Flow)
    return event.time_ns, event.source.port


class TestResume:
    def test_server_killed_and_restarted_loses_and_duplicates_nothing(self) -> None:
        """Kill the server mid-stream, restart it on the same port: the client resumes exactly."""
        records = resume_records()
        port = free_port()
        servers = [ReplayServer(responses=records, listen=f"127.0.0.1:{port}", rate=4000)]
        servers[0].start()

        def restart(count: int, _event: FlowEvent) -> None:
            if count == 200:
                servers[0].stop(0)
                servers[0] = ReplayServer(responses=records, listen=f"127.0.0.1:{port}", rate=4000)
                servers[0].start()

        try:
            client = HubbleClient(fast_config(f"127.0.0.1:{port}"))
            got = take(client, len(records), each=restart)
        finally:
            servers[0].stop(0)
        expected = [flow_identity(e) for r in records if isinstance(e := event_from_response(r), Flow)]
        assert [flow_identity(event) for event in got] == expected
        assert client.stats.reconnects >= 1
        assert client.stats.duplicates_dropped >= 1
        assert client.stats.gaps, "the disconnection window is recorded as a gap"

    def test_resume_request_uses_last_flow_time(self) -> None:
        """After flows were received the next request asks for since = the last flow time."""
        with ReplayServer(responses=resume_records()[:9]) as server:
            client = HubbleClient(fast_config(server.address))
            take(client, 9)
        request = client.request()
        assert request.since.ToNanoseconds() == BASE_NS + 2000


class TestOtherResponses:
    def test_lost_events_counted_by_source_and_kept_as_gaps(self) -> None:
        """lost_events responses add up per source and each becomes a gap."""
        responses = [
            flow_response(0),
            lost_response(flow_pb2.PERF_EVENT_RING_BUFFER, 5, BASE_NS + 10),
            lost_response(flow_pb2.HUBBLE_RING_BUFFER, 2, BASE_NS + 20),
            lost_response(flow_pb2.PERF_EVENT_RING_BUFFER, 3, BASE_NS + 30),
            flow_response(1),
        ]
        with ReplayServer(responses=responses) as server:
            client = HubbleClient(fast_config(server.address))
            take(client, 5)
        assert client.stats.lost_events == {"perf_event_ring_buffer": 8, "hubble_ring_buffer": 2}
        assert (BASE_NS + 20, BASE_NS + 20) in client.stats.gaps
        assert client.stats.flows == 2

    def test_node_status_tracked(self) -> None:
        """node_status events keep the latest state per node."""
        responses = [
            node_status_response(relay_pb2.NODE_CONNECTED, ["a", "b"], BASE_NS),
            node_status_response(relay_pb2.NODE_UNAVAILABLE, ["b"], BASE_NS + 1),
        ]
        with ReplayServer(responses=responses) as server:
            client = HubbleClient(fast_config(server.address))
            take(client, 2)
        assert client.stats.node_states == {"a": "connected", "b": "unavailable"}


class TestFailures:
    def test_stall_is_reported_and_redialled(self) -> None:
        """A stream that sends nothing for stall_timeout is flagged, counted and re-dialled."""
        attempts: list[int] = []
        with ReplayServer(responses=[]) as server:
            def attempt(number: int) -> None:
                attempts.append(number)
                if len(attempts) > 1:
                    client.close()

            client = HubbleClient(fast_config(server.address, stall_timeout=0.2), on_attempt=attempt)
            assert take(client, 1, limit=10) == []
        assert client.stats.stalls == 1
        assert client.stats.stalled
        assert len(attempts) == 2

    def test_silent_server_is_cancelled_by_the_watchdog(self) -> None:
        """A server that accepts the call but never sends headers or data is detected as stalled."""
        released = threading.Event()

        def silent(_request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
            context.add_callback(released.set)
            released.wait(10)
            yield from ()

        handler = grpc.method_handlers_generic_handler(
            "observer.Observer", {"GetFlows": grpc.unary_stream_rpc_method_handler(silent)})
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            client = HubbleClient(fast_config(f"127.0.0.1:{port}", stall_timeout=0.2),
                                  on_attempt=lambda n: n >= 1 and client.close())
            assert take(client, 1, limit=10) == []
        finally:
            released.set()
            server.stop(0)
        assert client.stats.stalls == 1
        assert not client.stats.connected

    def test_unreachable_server_backs_off_exponentially(self) -> None:
        """Refused connections are retried with growing delays until closed."""
        delays: list[float] = []
        client = HubbleClient(fast_config(f"127.0.0.1:{free_port()}"), sleep=delays.append,
                              rand=lambda: 0.0, on_attempt=lambda n: n >= 4 and client.close())
        assert take(client, 1, limit=10) == []
        assert delays == [0.005, 0.01, 0.02, 0.04]
        assert client.stats.reconnects == 4
        assert "UNAVAILABLE" in client.stats.last_error

    def test_unimplemented_service_is_fatal(self) -> None:
        """A server without the Observer service is a FlowSourceError, not an endless retry."""
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            client = HubbleClient(fast_config(f"127.0.0.1:{port}"))
            with pytest.raises(FlowSourceError, match="UNIMPLEMENTED"):
                take(client, 1, limit=10)
        finally:
            server.stop(0)

    def test_close_from_another_thread_ends_events(self) -> None:
        """close() while the stream is idle makes events() return."""
        with ReplayServer(responses=[flow_response(0)]) as server:
            client = HubbleClient(fast_config(server.address))
            iterator: Iterator[FlowEvent] = client.events()
            assert isinstance(next(e for e in iterator if not isinstance(e, NodeStatus)), Flow)
            threading.Timer(0.2, client.close).start()
            assert list(iterator) == []
