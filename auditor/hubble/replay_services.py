"""The replay server's smaller services: gRPC health, GetNamespaces, empty agent and debug event streams.

`hubble status` first calls the standard `grpc.health.v1.Health/Check` (service
`hubble.server.Observer`).  Its two messages are one field each (HealthCheckRequest `service = 1`
string, HealthCheckResponse `status = 1` enum SERVING = 1, SERVICE_UNKNOWN = 3; grpc's
src/proto/grpc/health/v1/health.proto), so they are encoded here by hand instead of pulling in
another generated module.  A recording holds no agent or debug events, so GetAgentEvents and
GetDebugEvents stream none (a follow stream stays open until the client goes away), as a quiet
real server does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc

from auditor._proto.observer import observer_pb2
from auditor.hubble.playback import Record

HEALTH_SERVICE = "grpc.health.v1.Health"
SERVED = ("", "observer.Observer", "hubble.server.Observer", "grpc.health.v1.Health")
"""Health service names answered SERVING; `hubble status` asks for hubble.server.Observer."""
SERVING, SERVICE_UNKNOWN = 1, 3
_IDLE_POLL = 0.2


def _health_response(status: int) -> bytes:
    return bytes((0x08, status))


def health_service_name(request: bytes) -> str:
    """The `service` field of a HealthCheckRequest (field 1, length-delimited)."""
    if len(request) >= 2 and request[0] == 0x0A and request[1] < 0x80:
        return request[2:2 + request[1]].decode("utf-8", "replace")
    return ""


def _status_for(service: str) -> int:
    return SERVING if service in SERVED else SERVICE_UNKNOWN


def _check(request: bytes, context: grpc.ServicerContext) -> bytes:
    service = health_service_name(request)
    status = _status_for(service)
    if status == SERVICE_UNKNOWN:
        context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {service!r}")
    return _health_response(status)


def wait_until_gone(context: grpc.ServicerContext, stopping: threading.Event) -> None:
    """Block until the client cancels or the server stops."""
    done = threading.Event()
    context.add_callback(done.set)
    while not done.wait(_IDLE_POLL) and not stopping.is_set() and context.is_active():
        pass


def health_handler(stopping: threading.Event) -> grpc.GenericRpcHandler[Any, Any]:
    """Check answers SERVING for the SERVED names; Watch sends that once and stays open."""
    def watch(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        yield _health_response(_status_for(health_service_name(request)))
        wait_until_gone(context, stopping)

    return grpc.method_handlers_generic_handler(HEALTH_SERVICE, {
        "Check": grpc.unary_unary_rpc_method_handler(_check),
        "Watch": grpc.unary_stream_rpc_method_handler(watch),
    })


def _follow_flag(request: bytes) -> bool:
    """GetAgentEventsRequest / GetDebugEventsRequest `follow = 2` (bool), read without their stubs."""
    index = 0
    while index < len(request):
        tag = request[index]
        index += 1
        if tag == 0x10:
            return index < len(request) and request[index] != 0
        wire = tag & 0x07
        if wire == 0:
            while index < len(request) and request[index] & 0x80:
                index += 1
            index += 1
        elif wire == 2 and index < len(request):
            index += 1 + request[index]
        else:
            return False
    return False


def empty_events(stopping: threading.Event) -> Callable[[bytes, grpc.ServicerContext], Iterator[bytes]]:
    """A stream with no events: ends at once, or with `follow` stays open like a quiet server."""
    def stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        if _follow_flag(request):
            wait_until_gone(context, stopping)
        yield from ()

    return stream


def namespaces(records: Sequence[Record]) -> Any:
    """GetNamespacesResponse: every (cluster, namespace) seen on either side of a recorded flow."""
    seen: set[tuple[str, str]] = set()
    for record in records:
        if record.is_flow:
            flow = record.message.flow
            for endpoint in (flow.source, flow.destination):
                if endpoint.namespace:
                    seen.add((endpoint.cluster_name, endpoint.namespace))
    return observer_pb2.GetNamespacesResponse(namespaces=[
        observer_pb2.Namespace(cluster=cluster, namespace=namespace) for cluster, namespace in sorted(seen)
    ])
