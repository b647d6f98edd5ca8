"""The replay server over real gRPC on loopback, read with the plain generated stub."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from auditor._proto.flow import flow_pb2
from auditor._proto.observer import observer_pb2
from auditor._proto.relay import relay_pb2
from auditor.errors import ConfigError, FlowSourceError
from auditor.hubble.files import iter_responses
from auditor.hubble.replay_server import ReplayServer
from tests.hubble_support import BASE_NS, flow_response, observer_stub, raw_flows

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "real-flows"
FIXTURE = FIXTURES / "hubble-otel-basic-sample-10-flows.jsonl"


def synthetic() -> list[Any]:
    """Ten flows: even ones DROPPED in shop, odd ones FORWARDED in kube-system, two nodes."""
    return [
        flow_response(
            i,
            verdict=flow_pb2.DROPPED if i % 2 == 0 else flow_pb2.FORWARDED,
            src=("shop", f"web-{i}") if i % 2 == 0 else ("kube-system", f"coredns-{i}"),
            node="kind-worker" if i < 5 else "kind-cp",
            event_type=(1, 133) if i % 2 == 0 else (4, 0),
        )
        for i in range(10)
    ]


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    with ReplayServer(responses=synthetic()) as running:
        yield running


def uuids(responses: list[Any]) -> list[str]:
    return [response.flow.uuid for response in responses]


def request(**kwargs: Any) -> Any:
    return observer_pb2.GetFlowsRequest(**kwargs)


class TestGetFlows:
    def test_file_served_verbatim(self) -> None:
        """A recorded file comes back message for message, byte-identical."""
        expected = [response for _line, response in iter_responses(FIXTURE)]
        with ReplayServer([FIXTURE]) as running, observer_stub(running.address) as stub:
            got = raw_flows(stub, request())
        assert [r.SerializeToString() for r in got] == [r.SerializeToString() for r in expected]

    def test_first_and_last_number(self, server: ReplayServer) -> None:
        """`first` with number gives the first N, number alone the last N."""
        with observer_stub(server.address) as stub:
            assert uuids(raw_flows(stub, request(first=True, number=3))) == ["uuid-0", "uuid-1", "uuid-2"]
            assert uuids(raw_flows(stub, request(number=2))) == ["uuid-8", "uuid-9"]

    def test_since_until(self, server: ReplayServer) -> None:
        """since/until bound flow times inclusively."""
        since, until = request(), request()
        since.since.FromNanoseconds(BASE_NS + 7000)
        until.until.FromNanoseconds(BASE_NS + 1000)
        with observer_stub(server.address) as stub:
            assert uuids(raw_flows(stub, since)) == ["uuid-7", "uuid-8", "uuid-9"]
            assert uuids(raw_flows(stub, until)) == ["uuid-0", "uuid-1"]

    def test_follow_keeps_stream_open_after_the_file(self, server: ReplayServer) -> None:
        """In follow mode the stream stays open after the last record (here until the deadline)."""
        got: list[Any] = []
        with observer_stub(server.address) as stub, pytest.raises(grpc.RpcError) as caught:
            got.extend(stub.GetFlows(request(follow=True), timeout=0.5))
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    def test_follow_sends_every_record_first(self, server: ReplayServer) -> None:
        """A follow stream starts with every recorded flow, in order."""
        with observer_stub(server.address) as stub:
            got = raw_flows(stub, request(follow=True), count=10)
        assert uuids(got) == [f"uuid-{i}" for i in range(10)]

    def test_follow_with_until_ends_after_until(self, server: ReplayServer) -> None:
        """follow with until ends the stream once the records up to `until` are sent."""
        bounded = request(follow=True)
        bounded.until.FromNanoseconds(BASE_NS + 2000)
        with observer_stub(server.address) as stub:
            assert uuids(raw_flows(stub, bounded)) == ["uuid-0", "uuid-1", "uuid-2"]

    def test_first_with_follow_is_invalid(self, server: ReplayServer) -> None:
        """first+follow is refused like Hubble does, with INVALID_ARGUMENT."""
        with observer_stub(server.address) as stub, pytest.raises(grpc.RpcError) as caught:
            raw_flows(stub, request(first=True, follow=True))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    def test_loop_repeats_the_file_in_follow_mode(self) -> None:
        """--loop serves the records again and again while following."""
        server = ReplayServer(responses=synthetic()[:3], loop=True)
        with server as running, observer_stub(running.address) as stub:
            got = raw_flows(stub, request(follow=True), count=7)
        assert uuids(got) == ["uuid-0", "uuid-1", "uuid-2"] * 2 + ["uuid-0"]

    def test_rate_paces_the_feed(self) -> None:
        """--rate N: a follower gets every record, in order, as they arrive."""
        with ReplayServer(responses=synthetic(), rate=200) as running, observer_stub(running.address) as stub:
            got = raw_flows(stub, request(follow=True), count=10)
        assert uuids(got) == [f"uuid-{i}" for i in range(10)]


class TestFilters:
    def test_allow_verdict(self, server: ReplayServer) -> None:
        """A whitelist on verdict returns only those flows."""
        allow = [flow_pb2.FlowFilter(verdict=[flow_pb2.DROPPED])]
        with observer_stub(server.address) as stub:
            got = raw_flows(stub, request(whitelist=allow))
        assert uuids(got) == [f"uuid-{i}" for i in range(0, 10, 2)]

    def test_allow_and_deny(self, server: ReplayServer) -> None:
        """whitelist minus blacklist: shop pods, except on node kind-cp."""
        allow = [flow_pb2.FlowFilter(source_pod=["shop/"])]
        deny = [flow_pb2.FlowFilter(node_name=["kind-cp"])]
        with observer_stub(server.address) as stub:
            got = raw_flows(stub, request(whitelist=allow, blacklist=deny))
        assert uuids(got) == ["uuid-0", "uuid-2", "uuid-4"]

    def test_event_type_and_pod_prefix(self, server: ReplayServer) -> None:
        """event_type and a bare pod prefix combine (AND) inside one filter."""
        allow = [flow_pb2.FlowFilter(event_type=[flow_pb2.EventTypeFilter(type=4)], source_pod=["/coredns-9"])]
        with observer_stub(server.address) as stub:
            got = raw_flows(stub, request(whitelist=allow))
        assert uuids(got) == ["uuid-9"]

    def test_invalid_filter_is_invalid_argument(self, server: ReplayServer) -> None:
        """A filter value the server cannot use is refused with INVALID_ARGUMENT, not ignored."""
        allow = [flow_pb2.FlowFilter(http_status_code=["99"])]
        with observer_stub(server.address) as stub, pytest.raises(grpc.RpcError) as caught:
            raw_flows(stub, request(whitelist=allow))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "status code" in (caught.value.details() or "")


class TestStatusAndNodes:
    def test_server_status(self, server: ReplayServer) -> None:
        """ServerStatus counts the recorded flows and the nodes seen."""
        with observer_stub(server.address) as stub:
            status = stub.ServerStatus(observer_pb2.ServerStatusRequest(), timeout=5)
        assert (status.num_flows, status.num_connected_nodes.value) == (10, 2)
        assert status.version.startswith("auditor-replay/")

    def test_get_nodes(self, server: ReplayServer) -> None:
        """GetNodes lists every node seen in the records, connected, with its flow count."""
        with observer_stub(server.address) as stub:
            nodes = stub.GetNodes(observer_pb2.GetNodesRequest(), timeout=5).nodes
        assert [(n.name, n.num_flows, n.state) for n in nodes] == [
            ("kind-cp", 5, relay_pb2.NODE_CONNECTED), ("kind-worker", 5, relay_pb2.NODE_CONNECTED)
        ]


class TestConstruction:
    def test_busy_port_is_a_clear_error(self, server: ReplayServer) -> None:
        """Listening on a port already in use fails naming the address (no silent port sharing)."""
        with pytest.raises(FlowSourceError, match=f"cannot listen on {server.address}"):
            ReplayServer(listen=server.address).start()

    def test_bad_rate(self) -> None:
        """A non-positive rate is a configuration error."""
        with pytest.raises(ConfigError, match="rate"):
            ReplayServer(responses=synthetic(), rate=0)

    def test_bad_lines_are_reported_not_fatal(self, tmp_path: Path) -> None:
        """A bad line is kept as a `path:line` problem and the other lines are served."""
        path = tmp_path / "flows.jsonl"
        good = FIXTURE.read_text().splitlines()[0]
        path.write_text(f"{good}\n{{not json\n{good}\n")
        server = ReplayServer([path])
        assert len(server.records) == 2
        assert len(server.problems) == 1
        assert server.problems[0].startswith(f"{path}:2:")
