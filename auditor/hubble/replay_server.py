"""Serve recorded flows over real gRPC as a Hubble server the hubble CLI cannot tell from a real one.

observer.Observer (GetFlows, ServerStatus, GetNodes, GetNamespaces, and empty GetAgentEvents /
GetDebugEvents streams) plus the standard grpc.health.v1.Health service.  Several files are
merged by time; every flow response carries top-level `time` and `node_name`.  GetFlows follows
Hubble: `number` is the last N (first N with `first`), `since`/`until` bound times, filters are
auditor.hubble.filters, `field_mask` trims each flow, and a follow request without
`number`/`since` starts at the newest entry (playback begins with the first GetFlows, so its
first follower sees the whole recording arrive; see auditor.hubble.playback).  Each stream starts
with one NODE_CONNECTED node-status event per recorded node, as Relay sends.  Responses without a
field mask are sent as the bytes serialized once at start-up.
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
from google.protobuf import field_mask_pb2

from auditor import __version__
from auditor._proto.flow import flow_pb2
from auditor._proto.observer import observer_pb2
from auditor._proto.relay import relay_pb2
from auditor.errors import ConfigError, FlowSourceError
from auditor.hubble.convert import timestamp_ns
from auditor.hubble.filters import Predicate, compile_filters
from auditor.hubble.live_playback import LivePlayback
from auditor.hubble.playback import Playback, Record, load_records, make_record
from auditor.hubble.replay_services import empty_events, health_handler, namespaces, wait_until_gone
from auditor.hubble.streams import is_stream
from auditor.hubble.tls import ServerTLS

SERVICE = "observer.Observer"
VERSION_KEY = "hubble-server-version"
"""Response metadata a Hubble server sends with its version; sent at once so clients see the stream open."""
log = structlog.get_logger(component="hubble.replay")  # auditor.log.get_logger raises on the logger= key
__all__ = ["Record", "ReplayServer", "make_record"]


def check_mask(paths: Sequence[str]) -> None:
    """Every field-mask path must name fields of flow.Flow (Hubble answers InvalidArgument otherwise)."""
    for path in paths:
        descriptor: Any = flow_pb2.Flow.DESCRIPTOR
        for part in path.split("."):
            field = descriptor.fields_by_name.get(part) if descriptor is not None else None
            if field is None:
                raise ConfigError(f"invalid field mask path {path!r}: no field {part!r} in flow.Flow")
            descriptor = field.message_type


@dataclass(frozen=True, slots=True)
class Selection:
    """What one GetFlows request asks for, compiled."""

    predicate: Predicate | None
    since_ns: int
    until_ns: int
    mask: Any

    @classmethod
    def from_request(cls, request: Any) -> Selection:
        predicate = compile_filters(request.whitelist, request.blacklist)
        since = timestamp_ns(request.since) if request.HasField("since") else 0
        until = timestamp_ns(request.until) if request.HasField("until") else 0
        mask = None
        if request.HasField("field_mask") and request.field_mask.paths:
            check_mask(request.field_mask.paths)
            mask = field_mask_pb2.FieldMask(paths=list(request.field_mask.paths))
        return cls(predicate, since, until, mask)

    def wants(self, record: Record, *, live: bool = False) -> bool:
        """Within since/until (since only for the buffered part) and through the filters."""
        if self.since_ns and not live and record.time_ns < self.since_ns:
            return False
        if self.until_ns and record.time_ns > self.until_ns:
            return False
        predicate = self.predicate
        return predicate is None or not record.is_flow or predicate(record.message.flow)

    def encode(self, record: Record) -> bytes:
        if self.mask is None or not record.is_flow:
            return record.payload
        response = observer_pb2.GetFlowsResponse(node_name=record.message.node_name)
        response.time.CopyFrom(record.message.time)
        self.mask.MergeMessage(record.message.flow, response.flow)
        return bytes(response.SerializeToString())


def select_history(playback: Playback | LivePlayback, request: Any, selection: Selection,
                   began: bool) -> tuple[list[int], int]:
    """(buffered entries the request gets, the first entry to follow after them)."""
    window = playback.window()
    if request.follow and not request.number and not request.HasField("since"):
        return [], (window.start if began else window.stop)
    chosen = [number for number in window if selection.wants(playback.entry(number))]
    count = request.number
    if count:
        chosen = chosen[:count] if request.first else chosen[-count:]
    return chosen, window.stop


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
        node_status: bool = True,
        speed: float | None = None,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ConfigError(f"replay-server: --rate must be positive, got {rate}")
        if speed is not None and speed <= 0:
            raise ConfigError(f"replay-server: --speed must be positive, got {speed}")
        if rate and speed:
            raise ConfigError("replay-server: give --rate or --speed, not both")
        self._stream = str(paths[0]) if len(paths) == 1 and not responses and is_stream(str(paths[0])) else ""
        """A single stdin/FIFO input is served live, as its lines arrive (see auditor.hubble.live_playback)."""
        self.problems: list[str] = []
        self.playback: Playback | LivePlayback
        if self._stream:
            if rate or speed or loop:
                raise ConfigError("replay-server: --rate, --speed and --loop need files, not a live stream")
            self.playback = LivePlayback()
        else:
            records, self.problems = load_records(paths, responses)
            for problem in self.problems[:20]:
                log.warning("replay_line_problem", problem=problem)
            self.playback = Playback(records, rate=rate, loop=loop, speed=speed)
        self.listen, self.rate, self.loop, self.tls = listen, rate, loop, tls
        self.node_status = node_status
        """Send one NODE_CONNECTED node-status event per node at the start of each GetFlows stream."""
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
        server.add_generic_rpc_handlers((self._handlers(), health_handler(self._stopping)))
        try:
            if self.tls is not None:
                port = server.add_secure_port(self.listen, self.tls.credentials())
            else:
                port = server.add_insecure_port(self.listen)
        except RuntimeError as exc:
            raise FlowSourceError(f"replay-server: cannot listen on {self.listen}: {exc}") from exc
        server.start()
        self._server, self._started_ns = server, time.time_ns()
        if self._stream and isinstance(self.playback, LivePlayback):
            self.playback.feed(self._stream, self._problem)
        host = self.listen.rsplit(":", 1)[0] if not self.listen.startswith("unix:") else self.listen
        self.address = host if host.startswith("unix:") else f"{host}:{port}"
        log.info("replay_server_started", address=self.address, records=len(self.records),
                 tls=self.tls is not None)
        return self.address

    @property
    def records(self) -> tuple[Record, ...]:
        """The recorded responses (for a live stream: those in the buffer now)."""
        return self.playback.records

    def _problem(self, problem: str) -> None:
        self.problems.append(problem)
        if len(self.problems) <= 20:
            log.warning("replay_line_problem", problem=problem)

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
        def unary(method: Any, request_type: Any) -> Any:
            return grpc.unary_unary_rpc_method_handler(
                method, request_deserializer=request_type.FromString,
                response_serializer=lambda message: message.SerializeToString())

        return grpc.method_handlers_generic_handler(SERVICE, {
            "GetFlows": grpc.unary_stream_rpc_method_handler(
                self._get_flows, request_deserializer=observer_pb2.GetFlowsRequest.FromString
            ),
            "ServerStatus": unary(self._server_status, observer_pb2.ServerStatusRequest),
            "GetNodes": unary(self._get_nodes, observer_pb2.GetNodesRequest),
            "GetNamespaces": unary(lambda _r, _c: namespaces(self.records), observer_pb2.GetNamespacesRequest),
            "GetAgentEvents": grpc.unary_stream_rpc_method_handler(empty_events(self._stopping)),
            "GetDebugEvents": grpc.unary_stream_rpc_method_handler(empty_events(self._stopping)),
        })

    def _get_flows(self, request: Any, context: grpc.ServicerContext) -> Iterator[bytes]:
        if request.first and request.follow:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "first cannot be combined with follow")
        try:
            selection = Selection.from_request(request)
        except ConfigError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        began = self.playback.start()
        context.send_initial_metadata(((VERSION_KEY, f"auditor-replay/{__version__}"),))
        if self.node_status:
            yield from self._node_status_payloads()
        history, following = select_history(self.playback, request, selection, began)
        for number in history:
            self.served += 1
            yield selection.encode(self.playback.entry(number))
        if request.follow:
            yield from self._follow(request, selection, following, context)

    def _follow(self, request: Any, selection: Selection, number: int,
                context: grpc.ServicerContext) -> Iterator[bytes]:
        """Entries as they arrive; ends after `until`, otherwise stays open until the client goes."""
        done = threading.Event()
        context.add_callback(done.set)
        playback = self.playback
        while not self._stopping.is_set() and playback.wait_for(number, done):
            number = max(number, playback.window().start)  # a follower too slow for a live buffer skips
            record = playback.entry(number)
            number += 1
            if selection.until_ns and record.time_ns > selection.until_ns:
                return
            if selection.wants(record, live=True):
                self.served += 1
                yield selection.encode(record)
        if request.HasField("until"):
            return
        wait_until_gone(context, self._stopping)

    def _node_status_payloads(self) -> Iterator[bytes]:
        for name in sorted(self._nodes()):
            response = observer_pb2.GetFlowsResponse(node_status=relay_pb2.NodeStatusEvent(
                state_change=relay_pb2.NODE_CONNECTED, node_names=[name], message="replay"))
            response.time.FromNanoseconds(time.time_ns())
            yield response.SerializeToString()

    def _nodes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.records:
            if record.is_flow:
                name = record.message.flow.node_name or record.message.node_name
                if name:
                    counts[name] = counts.get(name, 0) + 1
        return counts

    def _server_status(self, _request: Any, _context: grpc.ServicerContext) -> Any:
        buffered, flows, seen = self.playback.flow_counts()
        response = observer_pb2.ServerStatusResponse(
            num_flows=buffered, max_flows=flows, seen_flows=seen,
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
                uptime_ns=time.time_ns() - self._started_ns, tls=observer_pb2.TLS(enabled=self.tls is not None),
            )
            for name, count in sorted(self._nodes().items())
        ]
        return observer_pb2.GetNodesResponse(nodes=nodes)
