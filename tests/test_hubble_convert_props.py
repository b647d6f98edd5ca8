"""Property: any flow protojson writes (proto or lowerCamel names) reads back to the same message."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor._proto.flow import flow_pb2
from auditor._proto.observer import observer_pb2
from auditor.hubble.convert import response_from_json

u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
text = st.text(max_size=12)
enum_numbers = lambda enum: st.sampled_from([value.number for value in enum.DESCRIPTOR.values])  # noqa: E731

endpoints = st.fixed_dictionaries({}, optional={
    "ID": u32, "identity": u32, "namespace": text, "pod_name": text, "cluster_name": text,
    "labels": st.lists(text, max_size=4),
    "workloads": st.lists(st.builds(flow_pb2.Workload, name=text, kind=text), max_size=2),
})
policies = st.lists(st.builds(flow_pb2.Policy, name=text, namespace=text, kind=text, revision=u64), max_size=2)
layer4 = st.one_of(
    st.builds(lambda s, d: flow_pb2.Layer4(TCP=flow_pb2.TCP(source_port=s, destination_port=d,
                                                            flags=flow_pb2.TCPFlags(SYN=True))), u32, u32),
    st.builds(lambda s, d: flow_pb2.Layer4(UDP=flow_pb2.UDP(source_port=s, destination_port=d)), u32, u32),
    st.builds(lambda t, c: flow_pb2.Layer4(ICMPv6=flow_pb2.ICMPv6(type=t, code=c)), u32, u32),
)
dns = st.builds(flow_pb2.DNS, query=text, rcode=u32, qtypes=st.lists(text, max_size=2), ttl=u32)


@st.composite
def flows(draw: Any) -> Any:
    flow = flow_pb2.Flow(
        verdict=draw(enum_numbers(flow_pb2.Verdict)),
        drop_reason_desc=draw(enum_numbers(flow_pb2.DropReason)),
        source=flow_pb2.Endpoint(**draw(endpoints)),
        destination=flow_pb2.Endpoint(**draw(endpoints)),
        l4=draw(layer4),
        node_name=draw(text),
        socket_cookie=draw(u64),
        traffic_direction=draw(enum_numbers(flow_pb2.TrafficDirection)),
        egress_allowed_by=draw(policies),
        ingress_denied_by=draw(policies),
    )
    flow.time.FromNanoseconds(draw(st.integers(0, 2**62)))
    reply = draw(st.sampled_from([None, True, False]))
    if reply is not None:
        flow.is_reply.value = reply
    if draw(st.booleans()):
        flow.l7.dns.CopyFrom(draw(dns))
        flow.l7.latency_ns = draw(u64)
    return flow


class TestProtojsonRoundTrip:
    @settings(max_examples=150, deadline=None)
    @given(flow=flows(), proto_names=st.booleans())
    def test_reads_back_what_protojson_writes(self, flow: Any, proto_names: bool) -> None:
        """MessageToJson output (either naming) parses back to an equal GetFlowsResponse."""
        response = observer_pb2.GetFlowsResponse(flow=flow, node_name="n1")
        line = json_format.MessageToJson(response, preserving_proto_field_name=proto_names, indent=None)
        assert response_from_json(line) == response
