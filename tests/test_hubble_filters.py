"""FlowFilter predicates: one dimension at a time, then allow/deny composition."""

from __future__ import annotations

from typing import Any

import pytest

from auditor._proto.flow import flow_pb2
from auditor.errors import ConfigError
from auditor.hubble.filters import compile_filter, compile_filters, parse_filter_json
from tests.hubble_support import flow_response


def flow(**kwargs: Any) -> Any:
    return flow_response(1, **kwargs).flow


def matches(filter_json: str, candidate: Any) -> bool:
    return compile_filter(parse_filter_json(filter_json))(candidate)


class TestVerdictAndEventType:
    def test_verdict_values_are_ored(self) -> None:
        """A verdict filter matches any of its listed verdicts and nothing else."""
        assert matches('{"verdict":["DROPPED","AUDIT"]}', flow(verdict=flow_pb2.DROPPED))
        assert not matches('{"verdict":["DROPPED","AUDIT"]}', flow(verdict=flow_pb2.FORWARDED))

    def test_event_type_without_sub_type_matches_any_sub_type(self) -> None:
        """event_type {type:1} matches every drop sub type."""
        assert matches('{"event_type":[{"type":1}]}', flow(event_type=(1, 133)))
        assert not matches('{"event_type":[{"type":1}]}', flow(event_type=(4, 0)))

    def test_event_type_with_match_sub_type(self) -> None:
        """With match_sub_type the sub type must be equal too."""
        spec = '{"event_type":[{"type":1,"match_sub_type":true,"sub_type":181}]}'
        assert matches(spec, flow(event_type=(1, 181)))
        assert not matches(spec, flow(event_type=(1, 133)))


class TestPodFilters:
    def test_namespace_and_prefix(self) -> None:
        """`ns/prefix` needs the exact namespace and a pod-name prefix."""
        assert matches('{"source_pod":["shop/web"]}', flow(src=("shop", "web-1")))
        assert not matches('{"source_pod":["shop/web"]}', flow(src=("other", "web-1")))
        assert not matches('{"source_pod":["shop/web"]}', flow(src=("shop", "api-1")))

    def test_namespace_only(self) -> None:
        """`ns/` matches every pod of the namespace."""
        assert matches('{"destination_pod":["shop/"]}', flow(dst=("shop", "anything")))
        assert not matches('{"destination_pod":["shop/"]}', flow(dst=("shopping", "x")))

    def test_bare_prefix_is_the_default_namespace(self) -> None:
        """A bare value is a pod-name prefix in namespace `default` (Hubble's ParseNamespaceName)."""
        assert matches('{"source_pod":["web"]}', flow(src=("default", "web-9")))
        assert not matches('{"source_pod":["web"]}', flow(src=("b", "web-1")))

    def test_leading_slash_any_namespace(self) -> None:
        """`/prefix` is a pod-name prefix in any namespace."""
        assert matches('{"source_pod":["/web"]}', flow(src=("a", "web-9")))
        assert not matches('{"source_pod":["/web"]}', flow(src=("a", "api")))

    def test_endpoint_without_pod_or_namespace_never_matches(self) -> None:
        """World/host endpoints (no namespace, no pod) match no pod filter."""
        assert not matches('{"source_pod":["web"]}', flow(src=("", "")))


class TestNodeName:
    def test_glob(self) -> None:
        """`kind-*` matches node names by glob."""
        assert matches('{"node_name":["kind-*"]}', flow(node="kind-worker"))
        assert not matches('{"node_name":["kind-*"]}', flow(node="gke-1"))

    def test_cluster_prefix(self) -> None:
        """`cluster/` matches every node of that cluster; a bare name matches in any cluster."""
        assert matches('{"node_name":["east/"]}', flow(node="east/node-1"))
        assert not matches('{"node_name":["east/"]}', flow(node="west/node-1"))
        assert matches('{"node_name":["node-1"]}', flow(node="west/node-1"))


def labelled(*labels: str) -> Any:
    candidate = flow()
    candidate.source.labels.extend(labels)
    return candidate


class TestLabels:
    def test_equality_with_and_without_source_prefix(self) -> None:
        """`app=web` matches k8s:app=web; `k8s:app=web` needs that source; other values do not match."""
        assert matches('{"source_label":["app=web"]}', labelled("k8s:app=web"))
        assert matches('{"source_label":["k8s:app=web"]}', labelled("k8s:app=web"))
        assert not matches('{"source_label":["app=web"]}', labelled("k8s:app=api"))

    def test_requirements_are_anded_and_sets_work(self) -> None:
        """Comma-separated requirements all hold; `in (...)` and `!key` are understood."""
        spec = '{"source_label":["app in (web, api),!canary,tier!=db"]}'
        assert matches(spec, labelled("k8s:app=api", "k8s:tier=front"))
        assert not matches(spec, labelled("k8s:app=api", "k8s:canary=true"))
        assert not matches(spec, labelled("k8s:app=api", "k8s:tier=db"))

    def test_reserved_label_by_key(self) -> None:
        """`reserved:host` is matched by the bare key selector `reserved:host`."""
        assert matches('{"source_label":["reserved:host"]}', labelled("reserved:host"))
        assert not matches('{"source_label":["reserved:world"]}', labelled("reserved:host"))

    def test_unparsable_selector(self) -> None:
        """A selector that is not Kubernetes selector syntax is refused naming the requirement."""
        with pytest.raises(ConfigError, match="cannot parse requirement"):
            compile_filter(parse_filter_json('{"destination_label":["app=(x"]}'))


class TestComposition:
    def test_fields_in_one_filter_are_anded(self) -> None:
        """Two fields in one filter must both match."""
        spec = '{"verdict":["DROPPED"],"source_pod":["shop/"]}'
        assert matches(spec, flow(verdict=flow_pb2.DROPPED, src=("shop", "a")))
        assert not matches(spec, flow(verdict=flow_pb2.FORWARDED, src=("shop", "a")))

    def test_allow_filters_are_ored_and_deny_excludes(self) -> None:
        """allow = OR of filters; a deny match removes the flow even if allowed."""
        allow = [parse_filter_json('{"verdict":["DROPPED"]}'), parse_filter_json('{"node_name":["kind-cp"]}')]
        deny = [parse_filter_json('{"source_pod":["kube-system/"]}')]
        predicate = compile_filters(allow, deny)
        assert predicate is not None
        assert predicate(flow(verdict=flow_pb2.DROPPED))
        assert predicate(flow(node="kind-cp"))
        assert not predicate(flow(verdict=flow_pb2.FORWARDED))
        assert not predicate(flow(verdict=flow_pb2.DROPPED, src=("kube-system", "coredns")))

    def test_deny_only(self) -> None:
        """With only a deny list everything not denied passes."""
        predicate = compile_filters([], [parse_filter_json('{"verdict":["DROPPED"]}')])
        assert predicate is not None
        assert predicate(flow(verdict=flow_pb2.FORWARDED))
        assert not predicate(flow(verdict=flow_pb2.DROPPED))

    def test_no_filters_is_none(self) -> None:
        """No allow and no deny compiles to None (the fast path: send everything)."""
        assert compile_filters([], []) is None


class TestErrors:
    def test_invalid_value_is_refused(self) -> None:
        """An invalid value (here an unknown protocol) is a ConfigError quoting it, never ignored."""
        with pytest.raises(ConfigError, match="unknown protocol"):
            compile_filter(parse_filter_json('{"protocol":["tcpx"]}'))

    def test_bad_json_names_the_text(self) -> None:
        """Malformed filter JSON is a ConfigError quoting the input."""
        with pytest.raises(ConfigError, match="invalid FlowFilter JSON"):
            parse_filter_json('{"verdict":')

    def test_unknown_enum_name_is_refused(self) -> None:
        """An unknown verdict name is refused with a clear error."""
        with pytest.raises(ConfigError, match="NOPE"):
            parse_filter_json('{"verdict":["NOPE"]}')
