"""The replay server behaves like a real Hubble server: follow from the newest entry, merge, envelope."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import grpc
import pytest

from auditor._proto.flow import flow_pb2
from auditor._proto.observer import observer_pb2
from auditor._proto.relay import relay_pb2
from auditor.errors import ConfigError
from auditor.hubble.playback import Playback, make_record
from auditor.hubble.replay_server import ReplayServer
from tests.hubble_support import BASE_NS, flow_response, observer_stub, raw_flows

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "real-flows"


def request(**kwargs: Any) -> Any:
    return observer_pb2.GetFlowsRequest(**kwargs)


def uuids(responses: list[Any]) -> list[str]:
    return [response.flow.uuid for response in responses]


class TestFollow:
    def test_first_follower_sees_the_whole_recording(self) -> None:
        """The first follow stream (no number/since) sees every record arrive."""
        with ReplayServer(responses=[flow_response(i) for i in range(3)]) as server, \
                observer_stub(server.address) as stub:
            assert uuids(raw_flows(stub, request(follow=True), count=3)) == ["uuid-0", "uuid-1", "uuid-2"]

    def test_later_follower_starts_at_the_newest_entry(self) -> None:
        """A later follow stream without number/since gets nothing already in the buffer."""
        with ReplayServer(responses=[flow_response(i) for i in range(3)]) as server, \
                observer_stub(server.address) as stub:
            raw_flows(stub, request(number=1))
            with pytest.raises(grpc.RpcError) as caught:
                list(stub.GetFlows(request(follow=True), timeout=0.5))
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    def test_follow_with_number_starts_with_the_last_entries(self) -> None:
        """follow with number N sends the newest N buffered entries first."""
        with ReplayServer(responses=[flow_response(i) for i in range(5)]) as server, \
                observer_stub(server.address) as stub:
            raw_flows(stub, request(number=1))
            assert uuids(raw_flows(stub, request(follow=True, number=2), count=2)) == ["uuid-3", "uuid-4"]


class TestEnvelope:
    def test_files_are_merged_by_time(self, tmp_path: Path) -> None:
        """Two files are served as one stream in time order, so `number=1` is the newest flow overall."""
        from google.protobuf import json_format

        early, late = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
        def lines(numbers: tuple[int, ...]) -> str:
            return "".join(json_format.MessageToJson(flow_response(i), indent=None) + "\n" for i in numbers)

        late.write_text(lines((1, 3)))
        early.write_text(lines((0, 2)))
        with ReplayServer([late, early]) as server, observer_stub(server.address) as stub:
            assert uuids(raw_flows(stub, request())) == ["uuid-0", "uuid-1", "uuid-2", "uuid-3"]
            assert uuids(raw_flows(stub, request(number=1))) == ["uuid-3"]

    def test_time_and_node_name_are_filled(self) -> None:
        """A flow response without top-level time/node_name gets both from the flow."""
        bare = flow_response(0)
        bare.ClearField("time")
        bare.node_name = ""
        with ReplayServer(responses=[bare]) as server, observer_stub(server.address) as stub:
            (got,) = raw_flows(stub, request())
        assert (got.time, got.node_name) == (bare.flow.time, "kind-worker")

    def test_node_status_once_per_node_first(self) -> None:
        """Each stream starts with one NODE_CONNECTED event per recorded node, before the flows."""
        responses = [flow_response(0, node="a"), flow_response(1, node="b"), flow_response(2, node="a")]
        with ReplayServer(responses=responses) as server, observer_stub(server.address) as stub:
            got = raw_flows(stub, request(), node_status=True)
        kinds = [r.WhichOneof("response_types") for r in got]
        assert kinds == ["node_status", "node_status", "flow", "flow", "flow"]
        assert [(r.node_status.state_change, list(r.node_status.node_names)) for r in got[:2]] == [
            (relay_pb2.NODE_CONNECTED, ["a"]), (relay_pb2.NODE_CONNECTED, ["b"])]

    def test_bad_field_mask_is_invalid_argument(self) -> None:
        """A field-mask path that names no Flow field is refused with INVALID_ARGUMENT."""
        bad = request()
        bad.field_mask.paths.append("source.no_such_field")
        with ReplayServer(responses=[flow_response(0)]) as server, observer_stub(server.address) as stub, \
                pytest.raises(grpc.RpcError) as caught:
            raw_flows(stub, bad)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


class TestOtherServices:
    def test_health_check_serving(self) -> None:
        """grpc.health.v1.Health/Check answers SERVING (status 1) for hubble.server.Observer."""
        with ReplayServer(responses=[]) as server, grpc.insecure_channel(server.address) as channel:
            check = channel.unary_unary("/grpc.health.v1.Health/Check")
            assert check(b"\n\x16hubble.server.Observer", timeout=5) == b"\x08\x01"

    def test_namespaces(self) -> None:
        """GetNamespaces lists the namespaces of both sides of the recorded flows."""
        with ReplayServer(responses=[flow_response(0, src=("shop", "a"), dst=("db", "b"))]) as server, \
                observer_stub(server.address) as stub:
            got = stub.GetNamespaces(observer_pb2.GetNamespacesRequest(), timeout=5)
        assert [n.namespace for n in got.namespaces] == ["db", "shop"]

    def test_agent_events_stream_is_empty(self) -> None:
        """GetAgentEvents without follow ends at once with no events (not UNIMPLEMENTED)."""
        with ReplayServer(responses=[]) as server, grpc.insecure_channel(server.address) as channel:
            stream = channel.unary_stream("/observer.Observer/GetAgentEvents")
            assert list(stream(b"", timeout=5)) == []


class TestPlayback:
    def test_rate_makes_entries_arrive_over_time(self) -> None:
        """With rate N, N entries have arrived per second of the (injected) clock."""
        now = [0.0]
        records = [make_record(flow_response(i)) for i in range(10)]
        playback = Playback(records, rate=4, clock=lambda: now[0])
        assert playback.available() == 0
        playback.start()
        now[0] = 1.0
        assert playback.available() == 4
        now[0] = 100.0
        assert list(playback.window()) == list(range(10))

    def test_loop_keeps_one_pass_in_the_buffer(self) -> None:
        """Looping, the buffer holds the newest recording's worth of entries."""
        now = [0.0]
        playback = Playback([make_record(flow_response(i)) for i in range(3)], rate=1, loop=True,
                            clock=lambda: now[0])
        playback.start()
        now[0] = 7.0
        assert list(playback.window()) == [4, 5, 6]
        assert playback.entry(5).message.flow.uuid == "uuid-2"
        assert playback.wait_for(6, threading.Event())


def test_drop_reason_filter_needs_dropped() -> None:
    """drop_reason_desc matches only DROPPED flows (Hubble's drop_reason_desc.go)."""
    from auditor.hubble.filters import compile_filter

    match = compile_filter(flow_pb2.FlowFilter(drop_reason_desc=[flow_pb2.POLICY_DENIED]))
    assert match(flow_pb2.Flow(verdict=flow_pb2.DROPPED, drop_reason_desc=flow_pb2.POLICY_DENIED))
    assert not match(flow_pb2.Flow(verdict=flow_pb2.FORWARDED, drop_reason_desc=flow_pb2.POLICY_DENIED))


def test_speed_follows_the_recorded_pace() -> None:
    """With speed S, a record arrives when S x the elapsed time reaches its recorded offset."""
    now = [0.0]
    records = [make_record(flow_response(i, time_ns=BASE_NS + 10**9 * i)) for i in range(4)]  # 1 s apart
    playback = Playback(records, speed=2.0, clock=lambda: now[0])
    playback.start()
    assert playback.available() == 1  # the first record is due at once
    now[0] = 1.0  # 2 s of recorded time
    assert playback.available() == 3
    now[0] = 10.0
    assert playback.available() == 4


class TestLiveStream:
    def test_a_pipe_is_served_as_its_lines_arrive(self) -> None:
        """A pipe input is served live: a follower gets each flow as it is written, the pipe still open."""
        from google.protobuf import json_format

        read_fd, write_fd = os.pipe()
        try:
            with ReplayServer([f"/dev/fd/{read_fd}"]) as server, observer_stub(server.address) as stub:
                os.write(write_fd, (json_format.MessageToJson(flow_response(0), indent=None) + "\n").encode())
                call = stub.GetFlows(request(follow=True), timeout=20)
                flows = (r for r in call if r.WhichOneof("response_types") == "flow")
                assert next(flows).flow.uuid == "uuid-0"
                os.write(write_fd, (json_format.MessageToJson(flow_response(1), indent=None) + "\n").encode())
                assert next(flows).flow.uuid == "uuid-1"
                assert len(server.records) == 2
                call.cancel()
        finally:
            os.close(write_fd)
            os.close(read_fd)

    def test_live_stream_refuses_pacing(self) -> None:
        """--rate/--speed/--loop need files: with a live stream they are a clear error."""
        read_fd, write_fd = os.pipe()
        try:
            with pytest.raises(ConfigError, match="live stream"):
                ReplayServer([f"/dev/fd/{read_fd}"], rate=10)
        finally:
            os.close(write_fd)
            os.close(read_fd)
