"""Helpers for the Hubble gRPC tests: synthetic responses, a raw Observer stub, bounded consumption."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from auditor._proto.flow import flow_pb2
from auditor._proto.observer import observer_pb2, observer_pb2_grpc
from auditor._proto.relay import relay_pb2
from auditor.hubble.backoff import Backoff
from auditor.hubble.client import HubbleClient
from auditor.hubble.config import HubbleConfig
from auditor.model.events import FlowEvent, NodeStatus

BASE_NS = 1_700_000_000_000_000_000
FAST_BACKOFF = Backoff(initial=0.005, maximum=0.05, multiplier=2.0, jitter=0.5)


def flow_response(
    index: int,
    *,
    time_ns: int | None = None,
    uuid: str | None = None,
    verdict: int = flow_pb2.FORWARDED,
    src: tuple[str, str] = ("shop", "web-1"),
    dst: tuple[str, str] = ("shop", "api-1"),
    node: str = "kind-worker",
    event_type: tuple[int, int] = (4, 0),
) -> Any:
    """A GetFlowsResponse carrying one flow; time defaults to BASE + index microseconds."""
    when = BASE_NS + index * 1000 if time_ns is None else time_ns
    flow = flow_pb2.Flow(
        uuid=f"uuid-{index}" if uuid is None else uuid,
        verdict=verdict,
        node_name=node,
        source=flow_pb2.Endpoint(namespace=src[0], pod_name=src[1], identity=1000 + index % 7),
        destination=flow_pb2.Endpoint(namespace=dst[0], pod_name=dst[1], identity=2000),
        IP=flow_pb2.IP(source="10.0.0.1", destination="10.0.0.2", ipVersion=flow_pb2.IPv4),
        l4=flow_pb2.Layer4(TCP=flow_pb2.TCP(source_port=40000 + index % 1000, destination_port=8080)),
        event_type=flow_pb2.CiliumEventType(type=event_type[0], sub_type=event_type[1]),
        Type=flow_pb2.L3_L4,
    )
    flow.time.FromNanoseconds(when)
    response = observer_pb2.GetFlowsResponse(flow=flow, node_name=node)
    response.time.FromNanoseconds(when)
    return response


def lost_response(source: int, count: int, time_ns: int) -> Any:
    """A GetFlowsResponse reporting `count` lost events at `source`."""
    response = observer_pb2.GetFlowsResponse(
        lost_events=flow_pb2.LostEvent(source=source, num_events_lost=count), node_name="kind-worker"
    )
    response.time.FromNanoseconds(time_ns)
    return response


def node_status_response(state: int, names: list[str], time_ns: int) -> Any:
    """A GetFlowsResponse carrying a relay NodeStatusEvent."""
    response = observer_pb2.GetFlowsResponse(
        node_status=relay_pb2.NodeStatusEvent(state_change=state, node_names=names, message="test")
    )
    response.time.FromNanoseconds(time_ns)
    return response


def fast_config(address: str, **overrides: Any) -> HubbleConfig:
    """A client config with millisecond backoff and no stall watchdog unless asked."""
    settings: dict[str, Any] = {"server": address, "backoff": FAST_BACKOFF, "stall_timeout": 0}
    settings.update(overrides)
    return HubbleConfig(**settings)


def take(client: HubbleClient, count: int, *, limit: float = 20.0,
         each: Callable[[int, FlowEvent], None] | None = None, node_status: bool = False) -> list[FlowEvent]:
    """Consume `count` events (then close the client); a timer closes it after `limit` seconds.

    The node-status events a server sends at the start of each stream are left out unless asked for.
    """
    events: list[FlowEvent] = []
    timer = threading.Timer(limit, client.close)
    timer.start()
    try:
        for event in client.events():
            if not node_status and isinstance(event, NodeStatus):
                continue
            events.append(event)
            if each is not None:
                each(len(events), event)
            if len(events) >= count:
                client.close()
    finally:
        timer.cancel()
    return events


@contextmanager
def observer_stub(address: str) -> Iterator[Any]:
    """A plain generated ObserverStub on an insecure channel (the raw view of the server)."""
    channel = grpc.insecure_channel(address)
    try:
        yield observer_pb2_grpc.ObserverStub(channel)
    finally:
        channel.close()


def raw_flows(stub: Any, request: Any, count: int | None = None, *, node_status: bool = False) -> list[Any]:
    """Read responses from GetFlows; stop after `count` when following (then cancel).

    The node-status events a server sends at the start of a stream are left out unless asked for.
    """
    call = stub.GetFlows(request, timeout=20)
    responses: list[Any] = []
    for response in call:
        if not node_status and response.WhichOneof("response_types") == "node_status":
            continue
        responses.append(response)
        if count is not None and len(responses) >= count:
            call.cancel()
            break
    return responses
