"""Conversion of real Hubble flows (JSON and protobuf wire form) into the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import json_format

from auditor._proto.observer import observer_pb2
from auditor.hubble.convert import event_from_response, flow_from_proto, response_from_json
from auditor.hubble.jsonpb import JsonShapeError, parse_timestamp
from auditor.model.events import LostEvents, LostEventSource, NodeState, NodeStatus
from auditor.model.flows import (
    Direction,
    DNSInfo,
    Flow,
    FlowType,
    HTTPInfo,
    L7Type,
    PolicyRef,
    Protocol,
    Verdict,
    Workload,
)

FIXTURES = Path(__file__).parent / "fixtures" / "real-flows"


def real_line(name: str, number: int) -> str:
    """Line `number` (1-based) of a real-flow fixture."""
    return (FIXTURES / name).read_text(encoding="utf-8").splitlines()[number - 1]


def convert(line: str) -> Flow:
    event = event_from_response(response_from_json(line))
    assert isinstance(event, Flow)
    return event


class TestRealFlows:
    def test_icmp_health_probe_from_host(self) -> None:
        """A cilium-health ICMP probe keeps time, node, endpoints, reserved identities and ICMP type."""
        flow = convert(real_line("hubble-otel-basic-sample-400-icmpv4-flows.jsonl", 1))
        assert flow.time_ns == 1636540886095336300
        assert flow.node_name == "kind-control-plane"
        assert flow.verdict is Verdict.FORWARDED
        assert (flow.source.ip, flow.source.identity) == ("10.244.0.148", 1)
        assert flow.source.labels == ("reserved:host",)
        assert flow.source.reserved == frozenset({"host"})
        assert (flow.destination.ip, flow.destination.endpoint_id) == ("10.244.0.160", 132)
        assert flow.destination.reserved == frozenset({"health"})
        assert (flow.protocol, flow.icmp_type, flow.icmp_code, flow.ip_version) == (Protocol.ICMPV4, 8, 0, 4)
        assert (flow.source.port, flow.destination.port) == (0, 0)
        assert (flow.event_type, flow.flow_type, flow.direction) == (4, FlowType.L3_L4, Direction.INGRESS)
        assert flow.trace_observation_point == "TO_ENDPOINT"
        assert flow.is_reply is False
        assert flow.summary == "ICMPv4 EchoRequest"
        assert flow.l7 is None
        assert flow.drop_reason == ""

    def test_dns_nxdomain_response(self) -> None:
        """An L7 DNS response carries query, rcode 3, qtypes, observation source and the reply flag."""
        flow = convert(real_line("hubble-otel-basic-sample-330-dns-flows.jsonl", 2))
        assert flow.flow_type is FlowType.L7
        assert flow.event_type == 129
        assert flow.l7 is not None
        assert flow.l7.type is L7Type.RESPONSE
        assert flow.l7.dns == DNSInfo(
            query="istiod-istio-1611.istio-system.svc.istio-system.svc.cluster.local.",
            rcode=3,
            qtypes=("A",),
            ips=(),
            observation_source="proxy",
            ttl=4294967295,
        )
        assert flow.l7.http is None
        assert (flow.source.namespace, flow.source.pod_name) == ("kube-system", "kube-dns-b4f5c58c7-vnx5s")
        assert flow.source.k8s_labels == {"k8s-app": "kube-dns"}
        assert (flow.protocol, flow.source.port, flow.destination.port) == (Protocol.TCP, 53, 59102)
        assert flow.is_reply is True
        assert flow.direction is Direction.EGRESS

    def test_http_request_to_world(self) -> None:
        """An L7 HTTP request keeps method, url and protocol; the world peer is a reserved identity."""
        flow = convert(real_line("hubble-otel-basic-sample-348-http-flows.jsonl", 1))
        assert flow.l7 is not None
        assert flow.l7.type is L7Type.REQUEST
        assert flow.l7.http == HTTPInfo(method="GET", url="http://10.128.0.4:9990/metrics", protocol="HTTP/1.1")
        assert flow.destination.reserved == frozenset({"world"})
        assert flow.destination.port == 9990

    def test_policy_verdict_redirected_with_match_type(self) -> None:
        """A type-5 policy verdict keeps REDIRECTED, policy_match_type and UDP ports per side."""
        flow = convert(real_line("hubble-otel-basic-sample-400-l7-redirected-flows.jsonl", 1))
        assert (flow.verdict, flow.event_type, flow.policy_match_type) == (Verdict.REDIRECTED, 5, 2)
        assert (flow.protocol, flow.source.port, flow.destination.port) == (Protocol.UDP, 54314, 53)
        assert (flow.destination.namespace, flow.destination.identity) == ("kube-system", 48342)
        assert flow.source.endpoint_id == 2078
        assert flow.destination.endpoint_id == 0
        assert flow.is_reply is False

    def test_exporter_policy_denied_with_masked_fields(self) -> None:
        """A field-masked exporter drop keeps POLICY_DENIED, pods, SYN and unknown-as-absent fields."""
        flow = convert(real_line("cilium-docs-hubble-exporter.jsonl", 2))
        assert (flow.verdict, flow.drop_reason) == (Verdict.DROPPED, "POLICY_DENIED")
        assert (flow.source.namespace, flow.source.pod_name) == ("default", "xwing")
        assert flow.destination.pod_name == "deathstar-7848d6c4d5-th9v2"
        assert (flow.protocol, flow.destination.port, flow.tcp_flags) == (Protocol.TCP, 80, frozenset({"SYN"}))
        assert flow.node_name == "kind-kind/kind-worker"
        assert (flow.source.identity, flow.source.labels, flow.event_type) == (0, (), 0)
        assert flow.is_reply is None
        assert flow.direction is Direction.UNKNOWN

    def test_microsoft_flow_without_wrapper_keeps_workloads(self) -> None:
        """A W- line ({"flow":…} only) takes node from the flow and keeps workloads, cluster, uuid."""
        flow = convert(real_line("microsoft-docker-provider-network-flow-logs-test.jsonl", 1))
        assert flow.node_name == "longtestnetworkflowcni/aks-nodepool1-27013129-vmss000000"
        assert flow.uuid == "60e8fedd-6d98-49d8-b7f6-cb84455757ab"
        assert flow.source.workloads == (Workload("kapinger-good", "Deployment"),)
        assert flow.source.cluster_name == "longtestnetworkflowcni"
        assert flow.trace_reason == "REPLY"
        assert flow.tcp_flags == frozenset({"PSH", "ACK"})
        assert flow.time_ns == 1744829399450463857

    def test_deprecated_reply_used_when_is_reply_absent(self) -> None:
        """An old flow with only the deprecated `reply: true` reads as a reply."""
        flow = convert(real_line("hubble-otel-basic-sample-10-flows.jsonl", 1))
        assert flow.is_reply is True
        assert flow.destination.reserved == frozenset({"host"})
        assert (flow.event_type, flow.event_sub_type) == (4, 3)


class TestJsonShapes:
    def test_bare_legacy_flow_is_wrapped(self) -> None:
        """A legacy bare Flow line converts like the same flow inside {"flow":…}."""
        wrapped = real_line("hubble-otel-basic-sample-400-icmpv4-flows.jsonl", 1)
        bare = json.dumps(json.loads(wrapped)["flow"])
        response = response_from_json(bare)
        assert response.node_name == "kind-control-plane"
        assert convert(bare) == convert(wrapped)

    def test_matches_json_format_on_every_fixture_line(self) -> None:
        """The fast reader builds exactly the message google.protobuf.json_format builds."""
        for path in sorted(FIXTURES.glob("*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                expected = json_format.Parse(line, observer_pb2.GetFlowsResponse(), ignore_unknown_fields=True)
                assert response_from_json(line) == expected, f"{path.name}: {line[:80]}"

    def test_policies_with_string_revision(self) -> None:
        """*_allowed_by / *_denied_by become PolicyRefs; the uint64 revision arrives as a JSON string."""
        line = json.dumps({"flow": {
            "verdict": "DROPPED", "drop_reason_desc": "POLICY_DENY",
            "ingress_denied_by": [{"name": "deny-all", "namespace": "shop", "kind": "CiliumNetworkPolicy",
                                   "revision": "18446744073709551615"}],
            "egress_allowed_by": [{"name": "allow-dns", "namespace": "shop", "revision": "2"}],
        }})
        flow = convert(line)
        assert flow.ingress_denied_by == (
            PolicyRef("deny-all", "shop", "CiliumNetworkPolicy", 18446744073709551615),
        )
        assert flow.egress_allowed_by == (PolicyRef("allow-dns", "shop", "", 2),)
        assert flow.drop_reason == "POLICY_DENY"

    def test_unknown_enum_name_is_noted_and_left_unset(self) -> None:
        """An enum name our protos do not know leaves the field at zero and is described in notes."""
        notes: list[str] = []
        response = response_from_json('{"flow":{"verdict":"FUTURE_VERDICT","node_name":"n1"}}', notes)
        assert response.flow.verdict == 0
        assert response.flow.node_name == "n1"
        assert notes == ["flow.verdict: unknown flow.Verdict name 'FUTURE_VERDICT' (left unset)"]

    def test_unknown_keys_are_ignored(self) -> None:
        """Keys a newer Cilium adds do not fail the line."""
        response = response_from_json('{"flow":{"verdict":"DROPPED","brand_new":{"x":1}},"extra":1}')
        assert response.flow.verdict == observer_pb2.DROPPED

    def test_wrong_type_names_the_field(self) -> None:
        """A value of the wrong JSON type raises an error naming the field path."""
        with pytest.raises(JsonShapeError, match=r"flow\.l4\.TCP\.destination_port: expected an integer"):
            response_from_json('{"flow":{"l4":{"TCP":{"destination_port":"eighty"}}}}')

    def test_list_where_object_expected(self) -> None:
        """A non-object JSON line is refused with what was found."""
        with pytest.raises(JsonShapeError, match="expected a JSON object, got a list"):
            response_from_json("[1, 2]")

    def test_object_without_flow_fields_refused(self) -> None:
        """A JSON object with no Hubble key at all (some other log) is refused, not read as an empty flow."""
        with pytest.raises(JsonShapeError, match="no Hubble flow fields in this object"):
            response_from_json('{"level":"info","msg":"started"}')

    def test_out_of_range_number_refused(self) -> None:
        """A number too large for its protobuf field is refused, not wrapped around."""
        with pytest.raises(ValueError, match="does not fit"):
            response_from_json('{"flow":{"l4":{"UDP":{"source_port":99999999999}}}}')

    def test_timestamp_with_offset(self) -> None:
        """RFC 3339 timestamps with an offset and short fractions convert to UTC seconds and nanos."""
        assert parse_timestamp("2021-11-10T11:41:26.5+01:00") == (1636540886, 500_000_000)


class TestResponses:
    def test_lost_events(self) -> None:
        """A lost_events response becomes LostEvents with source, count, cpu and node."""
        line = ('{"lost_events":{"source":"HUBBLE_RING_BUFFER","num_events_lost":"42","cpu":3},'
                '"node_name":"kind-worker","time":"2023-08-21T12:12:18Z"}')
        event = event_from_response(response_from_json(line))
        assert event == LostEvents(
            source=LostEventSource.HUBBLE_RING_BUFFER, count=42, node_name="kind-worker",
            time_ns=1692619938_000_000_000, cpu=3,
        )

    def test_node_status(self) -> None:
        """A node_status response becomes NodeStatus with state and node names."""
        line = '{"node_status":{"state_change":"NODE_UNAVAILABLE","node_names":["a","b"],"message":"gone"}}'
        event = event_from_response(response_from_json(line))
        assert event == NodeStatus(NodeState.UNAVAILABLE, ("a", "b"), "gone", 0)

    def test_empty_response_is_none(self) -> None:
        """A response carrying no event we model (e.g. an exporter agent_event) converts to None."""
        assert event_from_response(response_from_json('{"agent_event":{"type":"AGENT_STARTED"}}')) is None

    def test_flow_time_falls_back_to_response_time(self) -> None:
        """A flow without its own time takes the response's time and node name."""
        flow = convert('{"flow":{"verdict":"FORWARDED"},"node_name":"n","time":"1970-01-01T00:00:01Z"}')
        assert (flow.time_ns, flow.node_name) == (1_000_000_000, "n")


class TestWireForm:
    def test_binary_round_trip_equals_json(self) -> None:
        """Serialized to protobuf bytes and parsed back, every fixture flow converts identically."""
        for path in sorted(FIXTURES.glob("*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                response = response_from_json(line)
                again = observer_pb2.GetFlowsResponse.FromString(response.SerializeToString())
                assert event_from_response(again) == event_from_response(response)

    def test_unknown_fields_pass_through(self) -> None:
        """Fields our protos do not declare survive parse and re-serialization as unknown fields."""
        response = response_from_json(real_line("cilium-docs-hubble-exporter.jsonl", 2))
        extra = b"\xba\xa4\x01\x03abc"  # field 21063 (not declared), length-delimited "abc"
        flow_bytes = response.flow.SerializeToString() + extra
        reparsed = observer_pb2.Flow.FromString(flow_bytes)
        assert reparsed.SerializeToString().endswith(extra)
        assert flow_from_proto(reparsed).drop_reason == "POLICY_DENIED"

    def test_unknown_enum_number_maps_to_unknown(self) -> None:
        """Enum numbers from a newer Cilium map to UNKNOWN, drop reasons keep their number."""
        flow = flow_from_proto(observer_pb2.Flow(verdict=77, drop_reason_desc=250, traffic_direction=9))
        assert (flow.verdict, flow.direction, flow.drop_reason) == (
            Verdict.UNKNOWN, Direction.UNKNOWN, "DROP_REASON_250",
        )

    def test_numeric_drop_reason_fallback(self) -> None:
        """Without drop_reason_desc the deprecated numeric drop_reason is named."""
        assert flow_from_proto(observer_pb2.Flow(verdict=2, drop_reason=181)).drop_reason == "POLICY_DENY"


class TestEndpointFacts:
    def test_same_pod_different_ports_keep_their_own(self) -> None:
        """Two flows from one pod on different ports and addresses keep each flow's own port and IP."""
        line = real_line("hubble-otel-basic-sample-400-l7-redirected-flows.jsonl", 1)
        first = response_from_json(line)
        second = observer_pb2.GetFlowsResponse()
        second.CopyFrom(first)
        second.flow.l4.UDP.source_port = 40000
        second.flow.IP.source = "10.244.0.207"
        a, b = event_from_response(first), event_from_response(second)
        assert isinstance(a, Flow)
        assert isinstance(b, Flow)
        assert (a.source.port, a.source.ip) == (54314, "10.244.0.206")
        assert (b.source.port, b.source.ip) == (40000, "10.244.0.207")
        assert a.source.labels is b.source.labels  # label tuples are shared, not rebuilt

    def test_service_is_namespace_slash_name(self) -> None:
        """A Hubble-attributed Service reads as namespace/name on its side only."""
        flow = convert('{"flow":{"destination_service":{"name":"kube-dns","namespace":"kube-system"}}}')
        assert (flow.source.service, flow.destination.service) == ("", "kube-system/kube-dns")
