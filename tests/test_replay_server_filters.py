"""FlowFilter fields with Hubble's semantics (cilium pkg/hubble/filters/*.go), without the hubble CLI.

tests/test_hubble_cli_interop.py checks the same fields against hubble itself when it is installed.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format

from auditor._proto.flow import flow_pb2
from auditor.errors import ConfigError
from auditor.hubble.filters import SUPPORTED_FIELDS, compile_filter


def matches(filter_json: str, **flow: Any) -> bool:
    """Whether the FlowFilter (protojson) matches a Flow built from protojson-shaped keyword fields."""
    message = json_format.ParseDict(flow, flow_pb2.Flow())
    return compile_filter(json_format.Parse(filter_json, flow_pb2.FlowFilter()))(message)


def test_every_flow_filter_field_has_a_builder() -> None:
    """All 41 FlowFilter fields of flow.proto are evaluated, none refused."""
    assert {field.name for field in flow_pb2.FlowFilter.DESCRIPTOR.fields} == SUPPORTED_FIELDS
    assert len(SUPPORTED_FIELDS) == 41


class TestEndpoints:
    def test_label_without_source_matches_any_source(self) -> None:
        """`app=web` matches `k8s:app=web`; `k8s:app=web` does not match `any:app=web` of another source."""
        assert matches('{"source_label":["app=web"]}', source={"labels": ["k8s:app=web"]})
        assert not matches('{"source_label":["container:app=web"]}', source={"labels": ["k8s:app=web"]})

    def test_label_cidr_prefix_containment(self) -> None:
        """A cidr: selector matches labels of narrower prefixes inside it."""
        flow = {"destination": {"labels": ["cidr:10.1.2.0/24"]}}
        assert matches('{"destination_label":["cidr:10.0.0.0/8"]}', **flow)
        assert not matches('{"destination_label":["cidr:10.1.2.0/25"]}', **flow)

    def test_label_notin_matches_absent_key(self) -> None:
        """`k notin (a)` and `!k` hold when the key is absent (Kubernetes selector semantics)."""
        assert matches('{"source_label":["tier notin (db)"]}', source={"labels": ["k8s:app=web"]})
        assert matches('{"source_label":["!tier"]}', source={"labels": ["k8s:app=web"]})

    def test_service_bare_name_is_default_namespace(self) -> None:
        """Service filters parse names like pods: a bare name is in namespace default."""
        flow = {"destination_service": {"name": "api", "namespace": "default"}}
        assert matches('{"destination_service":["ap"]}', **flow)
        assert not matches('{"destination_service":["shop/ap"]}', **flow)

    def test_fqdn_pattern(self) -> None:
        """FQDN patterns are lower-cased, drop one trailing dot, and `*` spans labels."""
        flow = {"destination_names": ["api.v1.example.com"]}
        assert matches('{"destination_fqdn":["*.EXAMPLE.com."]}', **flow)
        assert not matches('{"destination_fqdn":["example.com"]}', **flow)

    def test_workload_kind_only(self) -> None:
        """A workload filter with only a kind matches any workload of that kind."""
        flow = {"source": {"workloads": [{"name": "web", "kind": "Deployment"}]}}
        assert matches('{"source_workload":[{"kind":"Deployment"}]}', **flow)
        assert not matches('{"source_workload":[{"kind":"StatefulSet"}]}', **flow)

    def test_empty_cluster_name_is_refused(self) -> None:
        """An empty cluster name is a ConfigError, as in Hubble."""
        with pytest.raises(ConfigError, match="must not be empty"):
            matches('{"source_cluster_name":[""]}')


class TestFlowFields:
    def test_reply_treats_dropped_without_is_reply_as_request(self) -> None:
        """reply=[false] matches a DROPPED flow without is_reply, not a FORWARDED one."""
        assert matches('{"reply":[false]}', verdict="DROPPED")
        assert not matches('{"reply":[false]}', verdict="FORWARDED")
        assert matches('{"reply":[true]}', verdict="FORWARDED", is_reply=True)

    def test_tcp_flags_subset(self) -> None:
        """A TCPFlags value matches flows that have at least those flags."""
        flow = {"l4": {"TCP": {"flags": {"SYN": True, "ACK": True}}}}
        assert matches('{"tcp_flags":[{"SYN":true}]}', **flow)
        assert not matches('{"tcp_flags":[{"SYN":true,"FIN":true}]}', **flow)

    def test_node_name_without_cluster_is_default_cluster(self) -> None:
        """A node name without a cluster counts as `default/<name>`."""
        assert matches('{"node_name":["default/kind-*"]}', node_name="kind-worker")
        assert not matches('{"node_name":["prod/"]}', node_name="kind-worker")
        assert matches('{"node_name":["prod/"]}', node_name="prod/node-1")

    def test_ip_exact_and_prefix(self) -> None:
        """An IP filter is an exact address or a CIDR; a bad one is refused."""
        assert matches('{"source_ip":["10.0.0.0/8"]}', IP={"source": "10.1.2.3"})
        assert not matches('{"source_ip":["10.1.2.4"]}', IP={"source": "10.1.2.3"})
        with pytest.raises(ConfigError, match="invalid IP"):
            matches('{"source_ip":["10.0.0.1/8"]}')

    def test_event_type_zero_is_any(self) -> None:
        """An event-type filter with type 0 and a sub-type matches that sub-type of any type."""
        assert matches('{"event_type":[{"type":0,"match_sub_type":true,"sub_type":3}]}',
                       event_type={"type": 4, "sub_type": 3})

    def test_interface_and_ip_trace_id(self) -> None:
        """interface matches set index/name; ip_trace_id the trace id."""
        flow = {"interface": {"index": 7, "name": "eth0"}, "ip_trace_id": {"trace_id": "9"}}
        assert matches('{"interface":[{"name":"eth0"}],"ip_trace_id":["9"]}', **flow)
        assert not matches('{"interface":[{"index":8}]}', **flow)


class TestL7:
    def test_http_status_prefix_only_responses(self) -> None:
        """`4+` matches 404; requests (code 0) never match a status filter."""
        assert matches('{"http_status_code":["4+"]}', l7={"http": {"code": 404}})
        assert not matches('{"http_status_code":["4+"]}', l7={"http": {"method": "GET"}})

    def test_http_needs_l7_event_type(self) -> None:
        """An HTTP field with an event-type filter that excludes L7 is refused."""
        with pytest.raises(ConfigError, match="'l7' events"):
            matches('{"http_method":["GET"],"event_type":[{"type":4}]}')

    def test_http_path_and_method(self) -> None:
        """The path regex is searched in the URL's path; methods compare case-insensitively."""
        flow = {"l7": {"http": {"method": "GET", "url": "http://api:80/v1/users?x=1"}}}
        assert matches('{"http_path":["^/v1/"],"http_method":["get"]}', **flow)
        assert not matches('{"http_path":["users\\\\?"]}', **flow)

    def test_dns_query_regex(self) -> None:
        """dns_query regexes are searched in the DNS query."""
        dns = {"dns": {"query": "a.svc.cluster.local."}}
        assert matches('{"dns_query":["cluster\\\\.local\\\\.$"]}', l7=dns)
        assert not matches('{"dns_query":["example"]}', l7={"http": {"url": "http://example"}})


class TestCEL:
    def test_cilium_test_cases(self) -> None:
        """The expressions of cilium's cel_expression_test.go give its answers."""
        expression = '{"experimental":{"cel_expression":["_flow.verdict == Verdict.FORWARDED || ' \
                     '_flow.verdict == Verdict.TRANSLATED"]}}'
        verdicts = ("FORWARDED", "DROPPED", "TRANSLATED")
        assert [matches(expression, verdict=v) for v in verdicts] == [True, False, True]
        ports = '{"experimental":{"cel_expression":["has(_flow.l4.TCP) && ' \
                '(_flow.l4.TCP.destination_port == uint(80) || _flow.l4.TCP.destination_port == uint(443))"]}}'
        assert matches(ports, l4={"TCP": {"destination_port": 443}})
        assert not matches(ports, l4={"UDP": {"destination_port": 53}})

    @pytest.mark.parametrize("expression", ["something-invalid", "_flow", ""])
    def test_invalid_expressions_are_refused(self, expression: str) -> None:
        """Unknown names, non-bool results and empty expressions are refused like cel-go's checker."""
        with pytest.raises(ConfigError, match="CEL expression"):
            compile_filter(flow_pb2.FlowFilter(experimental=flow_pb2.FlowFilter.Experimental(
                cel_expression=[expression])))


def test_request_filters_and_the_node_into_every_allow_filter() -> None:
    """run's node mode narrows each user allow filter to the node (or is the only filter)."""
    from auditor.hubble.cli_filters import request_filters

    dropped = flow_pb2.FlowFilter(verdict=[flow_pb2.DROPPED])
    allow, deny = request_filters([dropped], [], node_name="kind-worker")
    assert [json_format.Parse(text, flow_pb2.FlowFilter()) for text in allow] == [
        flow_pb2.FlowFilter(verdict=[flow_pb2.DROPPED], node_name=["kind-worker"])]
    assert deny == ()
    assert request_filters([], [], node_name="n1")[0] == ('{"node_name": ["n1"]}',)
