"""Cilium `toServices` egress peers, end to end: Services and EndpointSlices in a state, decided by the engine.

Truth from pkg/policy/k8s/service.go (processRule, serviceRefMatches, serviceSelectorMatches) and
Documentation/security/policy/layer3.rst "Services based": a Service with a selector admits the
pods it selects in its own namespace (a generated toEndpoints); a selector-less one admits its
EndpointSlices' backend addresses as CIDRs (never pods or nodes); `namespace: ""` matches every
namespace; a missing Service matches nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from auditor.kube.convert import object_from_dict
from auditor.model.decision import Decision, ExternalSubject, NodeSubject, PodSubject, Subject
from auditor.model.k8s import Change, ChangeType, KubeObject, Namespace, Node, Pod
from auditor.policy.engine import PolicyEngine
from auditor.policy.state import ClusterState

CLIENT = Pod("shop", "client", labels={"app": "client"}, ips=("10.0.1.1",), node_name="node-1")
API = Pod("shop", "api", labels={"app": "api"}, ips=("10.0.1.2",), node_name="node-1")
OTHER = Pod("shop", "other", labels={"app": "other"}, ips=("10.0.1.3",), node_name="node-1")
PAY_API = Pod("payments", "api", labels={"app": "api"}, ips=("10.0.2.2",), node_name="node-1")
NODE = Node("node-1", addresses=("192.168.0.1",))
BASE: tuple[KubeObject, ...] = (Namespace("shop"), Namespace("payments"), NODE, CLIENT, API, OTHER, PAY_API)
EXTERNAL_DB = "203.0.113.5"


def service(name: str, ns: str = "shop", selector: dict[str, str] | None = None,
            labels: dict[str, str] | None = None) -> KubeObject:
    spec: dict[str, Any] = {"ports": [{"port": 5432}]}
    if selector is not None:
        spec["selector"] = selector
    return object_from_dict({"apiVersion": "v1", "kind": "Service", "spec": spec,
                             "metadata": {"name": name, "namespace": ns, "labels": labels or {}}})


def endpoints(service_name: str, *addresses: str, ns: str = "shop", name: str = "",
              ready: bool | None = True, address_type: str = "IPv4") -> KubeObject:
    conditions = {} if ready is None else {"ready": ready}
    return object_from_dict({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": address_type,
        "metadata": {"name": name or f"{service_name}-abc", "namespace": ns,
                     "labels": {"kubernetes.io/service-name": service_name}},
        "endpoints": [{"addresses": [a], "conditions": conditions} for a in addresses],
    })


def to_services(*entries: dict[str, Any], ns: str = "shop", extra: dict[str, Any] | None = None) -> KubeObject:
    rule: dict[str, Any] = {"toServices": list(entries), **(extra or {})}
    return object_from_dict({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                             "metadata": {"name": "to-svc", "namespace": ns, "resourceVersion": "1"},
                             "spec": {"endpointSelector": {"matchLabels": {"app": "client"}},
                                      "egress": [rule]}})


def by_name(name: str, ns: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"serviceName": name}
    if ns is not None:
        ref["namespace"] = ns
    return {"k8sService": ref}


def by_labels(labels: dict[str, str], ns: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"selector": {"matchLabels": labels}}
    if ns is not None:
        ref["namespace"] = ns
    return {"k8sServiceSelector": ref}


def build(*objects: KubeObject) -> ClusterState:
    state = ClusterState.build([*BASE, *objects])
    assert state.invalid == []
    return state


def to(state: ClusterState, destination: Subject, port: int = 5432) -> Decision:
    return PolicyEngine().decide(state, PodSubject(CLIENT, CLIENT.ips[0]), destination, port, "TCP")


def pod(target: Pod) -> Subject:
    return PodSubject(target, target.ips[0])


def ip(address: str) -> Subject:
    return ExternalSubject(address)


SELECTED = service("api", selector={"app": "api"})
EXTERNAL = service("db", selector=None, labels={"external": "yes"})
DB_SLICE = endpoints("db", EXTERNAL_DB)


class TestServiceWithSelector:
    def test_admits_the_pods_the_service_selects(self) -> None:
        """k8sService of a Service with a selector allows egress to its backend pods."""
        decision = to(build(SELECTED, to_services(by_name("api", "shop"))), pod(API))
        assert decision.allowed
        assert decision.egress.allowed_by[0].peer == "service shop/api"

    def test_other_pods_stay_denied(self) -> None:
        """A pod the Service does not select is denied by default egress deny."""
        assert not to(build(SELECTED, to_services(by_name("api", "shop"))), pod(OTHER)).allowed

    def test_selected_labels_in_another_namespace_are_not_backends(self) -> None:
        """The generated selector pins the Service's namespace: app=api in payments is not a backend."""
        assert not to(build(SELECTED, to_services(by_name("api", "shop"))), pod(PAY_API)).allowed

    def test_external_address_is_not_a_backend(self) -> None:
        """A Service with a selector admits pods only, not addresses outside the cluster."""
        state = build(SELECTED, endpoints("api", EXTERNAL_DB), to_services(by_name("api", "shop")))
        assert not to(state, ip(EXTERNAL_DB)).allowed

    def test_to_requires_narrows_the_generated_endpoints(self) -> None:
        """toRequires narrows the Service's generated toEndpoints selector like any endpoints peer."""
        state = build(SELECTED, to_services(by_name("api", "shop"),
                                            extra={"toRequires": [{"matchLabels": {"tier": "gold"}}]}))
        assert not to(state, pod(API)).allowed

    def test_ports_still_apply(self) -> None:
        """A toServices rule with toPorts admits its ports only."""
        ports = {"toPorts": [{"ports": [{"port": "5432", "protocol": "TCP"}]}]}
        state = build(SELECTED, to_services(by_name("api", "shop"), extra=ports))
        assert (to(state, pod(API), 5432).allowed, to(state, pod(API), 80).allowed) == (True, False)


class TestSelectorlessService:
    def test_admits_backend_addresses(self) -> None:
        """A selector-less Service admits its EndpointSlices' addresses as CIDR peers."""
        decision = to(build(EXTERNAL, DB_SLICE, to_services(by_name("db", "shop"))), ip(EXTERNAL_DB))
        assert decision.allowed
        assert decision.egress.allowed_by[0].peer == "service shop/db"

    def test_other_addresses_stay_denied(self) -> None:
        """An address that is not a backend of the Service is denied."""
        assert not to(build(EXTERNAL, DB_SLICE, to_services(by_name("db", "shop"))), ip("203.0.113.6")).allowed

    def test_pod_backend_is_never_matched(self) -> None:
        """A pod IP listed as a backend is not admitted: CIDR selectors cannot select pods."""
        state = build(EXTERNAL, endpoints("db", API.ips[0]), to_services(by_name("db", "shop")))
        assert not to(state, pod(API)).allowed

    def test_node_backend_is_not_matched_by_default(self) -> None:
        """A node IP listed as a backend (default/kubernetes style) is not admitted without cidr_match_nodes."""
        state = build(EXTERNAL, endpoints("db", NODE.addresses[0]), to_services(by_name("db", "shop")))
        assert not to(state, NodeSubject("node-1", NODE.addresses[0])).allowed

    def test_node_backend_matches_with_cidr_match_nodes(self) -> None:
        """With policy-cidr-match-mode=nodes the generated CIDRs match node addresses too."""
        state = build(EXTERNAL, endpoints("db", NODE.addresses[0]), to_services(by_name("db", "shop")))
        engine = PolicyEngine(cidr_match_nodes=True)
        decision = engine.decide(state, pod(CLIENT), NodeSubject("node-1", NODE.addresses[0]), 5432, "TCP")
        assert decision.egress.allowed

    def test_service_without_slices_admits_nothing(self) -> None:
        """A selector-less Service with no EndpointSlice has no backends."""
        assert not to(build(EXTERNAL, to_services(by_name("db", "shop"))), ip(EXTERNAL_DB)).allowed

    def test_not_ready_backend_is_left_out(self) -> None:
        """An endpoint with ready=false (and not serving) is not a backend."""
        state = build(EXTERNAL, endpoints("db", EXTERNAL_DB, ready=False), to_services(by_name("db", "shop")))
        assert not to(state, ip(EXTERNAL_DB)).allowed

    def test_unset_ready_counts_as_ready(self) -> None:
        """An endpoint without conditions counts as ready (the EndpointSlice API's rule)."""
        state = build(EXTERNAL, endpoints("db", EXTERNAL_DB, ready=None), to_services(by_name("db", "shop")))
        assert to(state, ip(EXTERNAL_DB)).allowed

    def test_fqdn_slice_is_ignored(self) -> None:
        """Slices of addressType FQDN contribute no backends (Cilium reads IPv4 and IPv6 only)."""
        fqdn = endpoints("db", "db.example.com", address_type="FQDN")
        assert not to(build(EXTERNAL, fqdn, to_services(by_name("db", "shop"))), ip(EXTERNAL_DB)).allowed

    def test_backends_merge_over_slices(self) -> None:
        """Every slice labelled for the Service contributes (IPv4 and IPv6)."""
        v6 = endpoints("db", "2001:db8::5", name="db-v6", address_type="IPv6")
        state = build(EXTERNAL, DB_SLICE, v6, to_services(by_name("db", "shop")))
        assert to(state, ip(EXTERNAL_DB)).allowed
        assert to(state, ip("2001:db8::5")).allowed

    def test_slice_of_another_namespace_is_not_a_backend(self) -> None:
        """A slice labelled with the Service's name in another namespace belongs to another Service."""
        state = build(EXTERNAL, endpoints("db", EXTERNAL_DB, ns="payments"), to_services(by_name("db", "shop")))
        assert not to(state, ip(EXTERNAL_DB)).allowed


class TestServiceReference:
    def test_missing_service_matches_nothing(self) -> None:
        """A k8sService naming a Service that does not exist admits nothing."""
        assert not to(build(DB_SLICE, to_services(by_name("db", "shop"))), ip(EXTERNAL_DB)).allowed

    def test_empty_namespace_matches_every_namespace(self) -> None:
        """k8sService without namespace matches the Service in any namespace, not only the policy's."""
        pay_svc = service("api", ns="payments", selector={"app": "api"})
        assert to(build(pay_svc, to_services(by_name("api"))), pod(PAY_API)).allowed

    def test_explicit_namespace_excludes_others(self) -> None:
        """k8sService with a namespace ignores a same-named Service elsewhere."""
        pay_svc = service("api", ns="payments", selector={"app": "api"})
        assert not to(build(pay_svc, to_services(by_name("api", "shop"))), pod(PAY_API)).allowed

    def test_label_selector_matches_service_labels(self) -> None:
        """k8sServiceSelector selects Services by their labels (not their pods' labels)."""
        state = build(EXTERNAL, DB_SLICE, to_services(by_labels({"external": "yes"})))
        assert to(state, ip(EXTERNAL_DB)).allowed

    def test_label_selector_without_match_admits_nothing(self) -> None:
        """A k8sServiceSelector no Service's labels satisfy admits nothing."""
        state = build(EXTERNAL, DB_SLICE, to_services(by_labels({"external": "no"})))
        assert not to(state, ip(EXTERNAL_DB)).allowed

    def test_label_selector_namespace_limits_services(self) -> None:
        """k8sServiceSelector with a namespace selects only that namespace's Services."""
        state = build(EXTERNAL, DB_SLICE, to_services(by_labels({"external": "yes"}, "payments")))
        assert not to(state, ip(EXTERNAL_DB)).allowed

    def test_selector_wins_over_name(self) -> None:
        """With both k8sService and k8sServiceSelector, Cilium matches by the selector only."""
        both = {**by_name("nope", "shop"), **by_labels({"external": "yes"}, "shop")}
        assert to(build(EXTERNAL, DB_SLICE, to_services(both)), ip(EXTERNAL_DB)).allowed

    def test_deny_rule_with_to_services_denies(self) -> None:
        """toServices in egressDeny denies the Service's backends even when another rule allows them."""
        deny = object_from_dict({
            "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "deny-db", "namespace": "shop", "resourceVersion": "1"},
            "spec": {"endpointSelector": {"matchLabels": {"app": "client"}},
                     "egress": [{"toEntities": ["world"]}],
                     "egressDeny": [{"toServices": [by_name("db", "shop")]}]}})
        decision = to(build(EXTERNAL, DB_SLICE, deny), ip(EXTERNAL_DB))
        assert not decision.allowed
        assert [m.peer for m in decision.egress.denied_by] == ["service shop/db"]


class TestChanges:
    def test_new_backend_is_admitted_after_the_slice_changes(self) -> None:
        """Applying a new EndpointSlice version changes what the rule admits."""
        state = build(EXTERNAL, DB_SLICE, to_services(by_name("db", "shop")))
        moved = state.apply(Change(0, ChangeType.MODIFIED, endpoints("db", "203.0.113.9")))
        assert (to(moved, ip(EXTERNAL_DB)).allowed, to(moved, ip("203.0.113.9")).allowed) == (False, True)

    def test_deleted_service_admits_nothing(self) -> None:
        """Deleting the Service removes what its toServices rule admitted."""
        state = build(SELECTED, to_services(by_name("api", "shop")))
        gone = state.apply(Change(0, ChangeType.DELETED, SELECTED))
        assert to(state, pod(API)).allowed
        assert not to(gone, pod(API)).allowed

    def test_service_gaining_a_selector_switches_to_pods(self) -> None:
        """A Service that gains a selector admits its pods instead of its slices' addresses."""
        state = build(service("db"), DB_SLICE, to_services(by_name("db", "shop")))
        changed = state.apply(Change(0, ChangeType.MODIFIED, service("db", selector={"app": "api"})))
        assert to(state, ip(EXTERNAL_DB)).allowed
        assert not to(changed, ip(EXTERNAL_DB)).allowed
        assert to(changed, pod(API)).allowed


class TestServiceIndex:
    def test_relabelled_slice_moves_to_its_new_service(self) -> None:
        """A slice whose service-name label changes leaves the old Service's backends for the new one's."""
        state = build(EXTERNAL, service("cache"), DB_SLICE)
        moved = state.apply(Change(0, ChangeType.MODIFIED, endpoints("cache", EXTERNAL_DB, name="db-abc")))
        assert moved.service_index.backends("shop", "db") == frozenset()
        assert moved.service_index.backends("shop", "cache") == frozenset({EXTERNAL_DB})

    def test_applying_changes_equals_building(self) -> None:
        """Services and slices applied one by one index as a bulk build does."""
        objects = (EXTERNAL, DB_SLICE, endpoints("db", "203.0.113.6", name="db-2"), SELECTED)
        grown = ClusterState.empty()
        for obj in objects:
            grown = grown.apply(Change(0, ChangeType.ADDED, obj))
        built = ClusterState.build(objects)
        assert grown.services == built.services
        assert grown.service_slices("shop", "db") == built.service_slices("shop", "db")

    def test_deleted_slice_leaves_the_service(self) -> None:
        """Deleting a slice removes its addresses from the Service's backends."""
        state = build(EXTERNAL, DB_SLICE).apply(Change(0, ChangeType.DELETED, DB_SLICE))
        assert state.service_slices("shop", "db") == ()

    def test_terminating_but_serving_backend_counts(self) -> None:
        """A not-ready endpoint still serving (terminating) is a backend, as with Cilium's default."""
        labels = {"kubernetes.io/service-name": "db"}
        raw = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
               "metadata": {"name": "db-t", "namespace": "shop", "labels": labels},
               "endpoints": [{"addresses": ["203.0.113.7"],
                              "conditions": {"ready": False, "serving": True, "terminating": True}}]}
        state = build(EXTERNAL, object_from_dict(raw))
        assert state.service_index.backends("shop", "db") == frozenset({"203.0.113.7"})


# -- Documentation/security/policy/layer3.rst "Services based" (examples/policies/l3/service/) -----------

APP2 = Pod("default", "app2", labels={"id": "app2"}, ips=("10.0.3.1",), node_name="node-1")
STAGING = Pod("another-namespace", "web", labels={"app": "web"}, ips=("10.0.4.1",), node_name="node-1")
DOCS_BASE: tuple[KubeObject, ...] = (Namespace("default"), Namespace("another-namespace"), NODE, APP2, STAGING)


def docs_policy(name: str, entries: list[dict[str, Any]]) -> KubeObject:
    return object_from_dict({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                             "metadata": {"name": name, "namespace": "default"},
                             "spec": {"endpointSelector": {"matchLabels": {"id": "app2"}},
                                      "egress": [{"toServices": entries}]}})


SERVICE_RULE = docs_policy("service-rule", [
    {"k8sService": {"serviceName": "myservice", "namespace": "default"}},
    {"k8sServiceSelector": {"selector": {"matchLabels": {"env": "staging"}}, "namespace": "another-namespace"}},
])
SERVICE_LABELS_RULE = docs_policy("service-labels-rule", [
    {"k8sServiceSelector": {"selector": {"matchLabels": {"head": "none"}}}},
])
DOCS_STATE = ClusterState.build([
    *DOCS_BASE, SERVICE_RULE, SERVICE_LABELS_RULE,
    service("myservice", ns="default"), endpoints("myservice", "198.51.100.7", ns="default"),
    service("web", ns="another-namespace", selector={"app": "web"}, labels={"env": "staging"}),
    service("legacy", ns="another-namespace", labels={"head": "none"}),
    endpoints("legacy", "198.51.100.8", ns="another-namespace"),
    service("prod-web", ns="another-namespace", selector={"app": "other"}, labels={"env": "prod"}),
])


@pytest.mark.parametrize(("destination", "allowed"), [
    (ExternalSubject("198.51.100.7"), True),    # myservice (default), selector-less: its endpoints' IPs
    (PodSubject(STAGING, "10.0.4.1"), True),    # env=staging Service in another-namespace selects app=web
    (ExternalSubject("198.51.100.8"), True),    # head=none Service (service-labels.yaml), any namespace
    (ExternalSubject("198.51.100.9"), False),   # no Service's backend
], ids=["myservice-endpoint", "staging-pod", "head-none-endpoint", "unrelated-address"])
def test_layer3_services_based(destination: Subject, allowed: bool) -> None:
    """layer3.rst "Services based": id=app2 reaches the backends of the Services the examples name."""
    assert DOCS_STATE.invalid == []
    decision = PolicyEngine().decide(DOCS_STATE, PodSubject(APP2, "10.0.3.1"), destination, 80, "TCP")
    assert decision.allowed is allowed
