"""Hostile Hubble servers on real gRPC: undecodable and oversized messages, resends, plaintext to TLS."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from auditor._proto.observer import observer_pb2
from auditor.hubble import client as client_module
from auditor.hubble.client import HubbleClient
from auditor.hubble.convert import timestamp_ns
from auditor.hubble.replay_server import ReplayServer
from auditor.hubble.tls import ServerTLS
from auditor.model.flows import Flow
from tests.certs import make_pki
from tests.hubble_support import BASE_NS, fast_config, flow_response, take

GARBAGE = b"\x0a\xff\xff\xff\xff\x0f"
"""Field 1 (flow) with a length far past the end: protobuf cannot parse it."""


class RawServer:
    """GetFlows from a list of (time_ns, bytes) honouring `since`, then an optional abort or a wait."""

    def __init__(self, messages: list[tuple[int, bytes]], *, abort: bool = False) -> None:
        self.messages, self.abort = messages, abort
        self.requests: list[Any] = []
        self.released = threading.Event()
        handler = grpc.method_handlers_generic_handler(
            "observer.Observer", {"GetFlows": grpc.unary_stream_rpc_method_handler(
                self._get_flows, request_deserializer=observer_pb2.GetFlowsRequest.FromString)})
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                                  options=[("grpc.max_send_message_length", -1)])
        self.server.add_generic_rpc_handlers((handler,))
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"

    def _get_flows(self, request: Any, context: grpc.ServicerContext) -> Iterator[bytes]:
        self.requests.append(request)
        since = timestamp_ns(request.since) if request.HasField("since") else 0
        yield from (data for time_ns, data in self.messages if time_ns >= since)
        if self.abort:
            context.abort(grpc.StatusCode.UNAVAILABLE, "relay restarting")
        self.released.wait(10)

    def __enter__(self) -> RawServer:
        self.server.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.released.set()
        self.server.stop(0)


def flow_bytes(index: int, *, time_ns: int | None = None, padding: int = 0) -> tuple[int, bytes]:
    response = flow_response(index, time_ns=time_ns)
    if padding:
        response.flow.Summary = "x" * padding
    return timestamp_ns(response.time), response.SerializeToString()


def close_after(attempts: int, client: Callable[[], HubbleClient]) -> Callable[[int], None]:
    """An on_attempt hook that closes the client at the given attempt."""
    def hook(number: int) -> None:
        if number >= attempts:
            client().close()
    return hook


def uuids(events: list[Any]) -> list[str]:
    return [event.uuid for event in events if isinstance(event, Flow)]


class TestPoisonMessages:
    def test_undecodable_message_is_skipped_and_the_stream_goes_on(self) -> None:
        """A message that does not decode is skipped on the same stream; the flows after it arrive."""
        messages = [flow_bytes(1), (BASE_NS + 1500, GARBAGE), flow_bytes(2), flow_bytes(3)]
        with RawServer(messages) as server:
            client = HubbleClient(fast_config(server.address))
            events = take(client, 3, limit=5)
        assert uuids(events) == ["uuid-1", "uuid-2", "uuid-3"]
        assert client.stats.bad_lines == 1
        assert "cannot decode" in client.stats.errors[0]
        assert client.stats.reconnects == 0

    def test_undecodable_message_leaves_a_gap_with_both_ends(self) -> None:
        """The window between the last flow before the bad message and the first after it is a gap."""
        messages = [flow_bytes(1), (BASE_NS + 1500, GARBAGE), flow_bytes(2)]
        with RawServer(messages) as server:
            client = HubbleClient(fast_config(server.address))
            take(client, 2, limit=5)
        assert (BASE_NS + 1000, BASE_NS + 2000) in client.stats.gaps

    def test_message_over_the_receive_limit_is_re_requested_with_a_larger_limit(self) -> None:
        """An oversized message makes the client reconnect once with a limit that fits, losing nothing."""
        messages = [flow_bytes(1), flow_bytes(2, padding=200_000), flow_bytes(3)]
        with RawServer(messages) as server:
            client = HubbleClient(fast_config(server.address, max_message_bytes=100_000))
            events = take(client, 3, limit=5)
        assert uuids(events) == ["uuid-1", "uuid-2", "uuid-3"]
        assert client.stats.reconnects == 1
        assert client.stats.bad_lines == 0

    def test_message_over_the_ceiling_is_skipped_counted_and_resumed_after(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Past the ceiling the message is skipped once: counted, a gap, and the stream resumes after it."""
        monkeypatch.setattr(client_module, "RECEIVE_LIMIT_CEILING", 150_000)
        now = time.time_ns()
        messages = [flow_bytes(1, time_ns=now - 2_000_000_000),
                    flow_bytes(2, time_ns=now - 1_000_000_000, padding=200_000),
                    flow_bytes(3, time_ns=now + 60_000_000_000)]
        with RawServer(messages) as server:
            client = HubbleClient(fast_config(server.address, max_message_bytes=100_000))
            events = take(client, 2, limit=5)
        assert uuids(events) == ["uuid-1", "uuid-3"]
        assert client.stats.bad_lines == 1
        assert "over the receive limit" in client.stats.errors[0]
        assert any(start == now - 2_000_000_000 and end > now for start, end in client.stats.gaps)
        assert len(server.requests) <= 4

    def test_backoff_grows_when_a_reconnect_brings_no_new_flow(self) -> None:
        """A server that resends the same flow and fails is retried with growing delays, not every 5 ms."""
        delays: list[float] = []
        with RawServer([flow_bytes(1)], abort=True) as server:
            client = HubbleClient(fast_config(server.address), sleep=delays.append, rand=lambda: 0.0,
                                  on_attempt=close_after(4, lambda: client))
            take(client, 10, limit=10)
        assert delays == [0.005, 0.01, 0.02, 0.04]


class TestPlaintextToTLS:
    def test_plaintext_client_to_a_tls_server_is_told_to_use_tls(self, tmp_path: Path) -> None:
        """A plaintext client whose TLS server closes every connection gets the hint to use --tls."""
        pki = make_pki(tmp_path)
        tls = ServerTLS(pki.server.cert, pki.server.key)
        with ReplayServer(responses=[flow_response(0)], tls=tls) as server:
            client = HubbleClient(fast_config(server.address), on_attempt=close_after(4, lambda: client))
            assert take(client, 1, limit=10) == []
        assert "Socket closed" in client.stats.last_error
        assert "use tls://host:port or --tls" in client.stats.last_error

    def test_refused_connection_gets_no_tls_hint(self) -> None:
        """Nothing listening is not a TLS problem: no plaintext hint."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            address = f"127.0.0.1:{sock.getsockname()[1]}"
        client = HubbleClient(fast_config(address), on_attempt=close_after(2, lambda: client))
        take(client, 1, limit=10)
        assert "Connection refused" in client.stats.last_error
        assert "--tls" not in client.stats.last_error
