"""Serve recorded flows over real gRPC as `observer.Observer` (GetFlows, ServerStatus, GetNodes).

Every response is serialized once at start-up; GetFlows hands the stored bytes to grpc (no
per-message serializer), so the feeder costs one generator step per message.  Filters and
since/until are applied per request from parsed copies kept alongside the bytes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import structlog

from auditor import __version__
from auditor._proto.observer import observer_pb2
from auditor._proto.relay import relay_pb2
from auditor.errors import ConfigError, FlowSourceError
from auditor.hubble.convert import timestamp_ns
from auditor.hubble.files import iter_responses
from auditor.hubble.filters import Predicate, compile_filters
from auditor.hubble.tls import ServerTLS

SERVICE = "observer.Observer"
VERSION_KEY = "hubble-server-version"
"""Response metadata a Hubble server sends with its version; sent at once so clients see the stream open."""
_IDLE_POLL = 0.2
log = structlog.get_logger(component="hubble.replay")  # auditor.log.get_logger raises on the logger= key


@dataclass(frozen=True, slots=True)
class Record:
    """One recorded GetFlowsResponse: wire bytes for sending, the message for filtering."""

    payload: bytes
    message: Any
    time_ns: int
    is_flow: bool


def load_responses(paths: Sequence[str | Path]) -> tuple[list[Any], list[str]]:
    """Every decodable response of every file, in order, and the `path:line: problem` of each bad line."""
    responses: list[Any] = []
    problems: list[str] = []
    for path in paths:
        responses.extend(response for _line, response in iter_responses(path, problems.append))
    return responses, problems


def make_record(response: Any) -> Record:
    """Pre-serialize one GetFlowsResponse; time is the flow's, else the response's."""
    is_flow = response.WhichOneof("response_types") == "flow"
    time_ns = (timestamp_ns(response.flow.time) if is_flow else 0) or timestamp_ns(response.time)
    return Record(response.SerializeToString(), response, time_ns, is_flow)


@dataclass(frozen=True, slots=True)
class Selection:
    """What one GetFlows request asks for, compiled."""

    predicate: Predicate | None
    since_ns: int
    until_ns: int

    @classmethod
    def from_request(cls, request: Any) -> Selection:
        predicate = compile_filters(request.whitelist, request.blacklist)
        since = timestamp_ns(request.since) if request.HasField("since") else 0
        until = timestamp_ns(request.until) if request.HasField("until") else 0
        return cls(predicate, since, until)

    def wants(self, record: Record) -> bool:
        if self.since_ns and record.time_ns < self.since_ns:
            return False
        if self.until_ns and record.time_ns > self.until_ns:
            return False
        predicate = self.predicate
        return predicate is None or not record.is_flow or predicate(record.message.flow)


def select_payloads(records: Sequence[Record], request: Any) -> list[bytes]:
    """The payloads a GetFlows request gets before any follow: filtered, then first/last `number`."""
    selection = Selection.from_request(request)
    if selection.predicate is None and not selection.since_ns and not selection.until_ns:
        chosen = [record.payload for record in records]
    else:
        chosen = [record.payload for record in records if selection.wants(record)]
    number = request.number
    if not number:
        return chosen
    return chosen[:number] if request.first else chosen[-number:]


def paced(payloads: Sequence[bytes], rate: float | None, stop: threading.Event) -> Iterator[bytes]:
    """Yield payloads, at most `rate` per second when a rate is set (checked in small batches)."""
    if not rate:
        yield from payloads
        return
    batch = max(1, int(rate // 200))
    start = time.monotonic()
    for index in range(0, len(payloads), batch):
        ahead = start + index / rate - time.monotonic()
        if ahead > 0 and stop.wait(ahead):
            return
        yield from payloads[index:index + batch]


class ReplayServer:
    """A real gRPC Observer serving recorded responses; `start()` returns the bound address."""

    def __init__(
        self,
        paths: Sequence[str | Path] = (),
        listen: str = "127.0.0.1:0",
        rate: float | None = None,
        loop: bool = False,
        tls: ServerTLS | None = None,
        *,
        responses: Sequence[Any] = (),
        max_streams: int = 16,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ConfigError(f"replay-server: --rate must be positive, got {rate}")
        loaded, self.problems = load_responses(paths)
        for problem in self.problems[:20]:
            log.warning("replay_line_problem", problem=problem)
        loaded[:0] = responses
        self.records: tuple[Record, ...] = tuple(make_record(response) for response in loaded)
        self.listen, self.rate, self.loop, self.tls = listen, rate, loop, tls
        self._max_streams = max_streams
        self._server: grpc.Server | None = None
        self._stopping = threading.Event()
        self._started_ns = 0
        self.address = ""
        self.served = 0

    def start(self) -> str:
        """Bind and start serving; returns `host:port` actually bound."""
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self._max_streams),
            options=[("grpc.so_reuseport", 0)],  # a second server on a busy port fails instead of sharing it
        )
        server.add_generic_rpc_handlers((self._handlers(),))
        try:
            if self.tls is not None:
                port = server.add_secure_port(self.listen, self.tls.credentials())
            else:
                port = server.add_insecure_port(self.listen)
        except RuntimeError as exc:
            raise FlowSourceError(f"replay-server: cannot listen on {self.listen}: {exc}") from exc
        server.start()
        self._server, self._started_ns = server, time.time_ns()
        host = self.listen.rsplit(":", 1)[0] if not self.listen.startswith("unix:") else self.listen
        self.address = host if host.startswith("unix:") else f"{host}:{port}"
        log.info("replay_server_started", address=self.address, records=len(self.records),
                 tls=self.tls is not None)
        return self.address

    def stop(self, grace: float | None = None) -> None:
        """Stop serving; open streams are cancelled (after `grace` seconds if given)."""
        self._stopping.set()
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None

    def wait(self) -> None:
        """Block until the server stops."""
        if self._server is not None:
            self._server.wait_for_termination()

    def __enter__(self) -> ReplayServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop(0)

    def _handlers(self) -> grpc.GenericRpcHandler[Any, Any]:
        return grpc.method_handlers_generic_handler(SERVICE, {
            "GetFlows": grpc.unary_stream_rpc_method_handler(
                self._get_flows, request_deserializer=observer_pb2.GetFlowsRequest.FromString
            ),
            "ServerStatus": grpc.unary_unary_rpc_method_handler(
                self._server_status,
                request_deserializer=observer_pb2.ServerStatusRequest.FromString,
                response_serializer=observer_pb2.ServerStatusResponse.SerializeToString,
            ),
            "GetNodes": grpc.unary_unary_rpc_method_handler(
                self._get_nodes,
                request_deserializer=observer_pb2.GetNodesRequest.FromString,
                response_serializer=observer_pb2.GetNodesResponse.SerializeToString,
            ),
        })

    def _get_flows(self, request: Any, context: grpc.ServicerContext) -> Iterator[bytes]:
        if request.first and request.follow:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "first cannot be combined with follow")
        try:
            payloads = select_payloads(self.records, request)
        except ConfigError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        context.send_initial_metadata(((VERSION_KEY, f"auditor-replay/{__version__}"),))
        done = threading.Event()
        context.add_callback(done.set)
        while True:
            for payload in paced(payloads, self.rate, self._stopping):
                self.served += 1
                yield payload
            if not (request.follow and self.loop and payloads) or done.is_set() or self._stopping.is_set():
                break
        if request.follow and not request.HasField("until"):
            while not done.wait(_IDLE_POLL) and not self._stopping.is_set():
                pass  # like Hubble: a follow stream stays open until the client goes away (or `until`)

    def _nodes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.records:
            if record.is_flow:
                name = record.message.flow.node_name or record.message.node_name
                counts[name] = counts.get(name, 0) + 1
        return counts

    def _server_status(self, _request: Any, _context: grpc.ServicerContext) -> Any:
        flows = sum(1 for record in self.records if record.is_flow)
        response = observer_pb2.ServerStatusResponse(
            num_flows=flows, max_flows=flows, seen_flows=flows,
            uptime_ns=time.time_ns() - self._started_ns, version=f"auditor-replay/{__version__}",
        )
        response.num_connected_nodes.value = len(self._nodes())
        response.num_unavailable_nodes.value = 0
        return response

    def _get_nodes(self, _request: Any, _context: grpc.ServicerContext) -> Any:
        nodes = [
            observer_pb2.Node(
                name=name, version=f"auditor-replay/{__version__}", address=self.address,
                state=relay_pb2.NODE_CONNECTED, num_flows=count, max_flows=count, seen_flows=count,
                tls=observer_pb2.TLS(enabled=self.tls is not None),
            )
            for name, count in sorted(self._nodes().items())
        ]
        return observer_pb2.GetNodesResponse(nodes=nodes)
