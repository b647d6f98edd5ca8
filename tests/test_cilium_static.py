"""Coverage and static findings with CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy (synthetic)."""

from __future__ import annotations

from typing import Any

import pytest

from auditor.findings.static import static_findings
from auditor.kube.convert import object_from_dict
from auditor.model.findings import Finding, FindingKind
from auditor.model.k8s import KubeObject, Namespace, Node, Pod, PolicyDirection
from auditor.policy.coverage import (
    ENFORCEMENT_ALWAYS,
    allows_port,
    cilium_rule_admits_everyone,
    default_deny_policies,
    isolation,
    selected_pods,
)
from auditor.policy.state import ClusterState
from tests.findings_support import API, DNS_LABELLED, NODE, PROBED_API, WEB, pod

INGRESS, EGRESS = PolicyDirection.INGRESS, PolicyDirection.EGRESS
BATCH = pod("batch-1", "10.0.2.1", ns="legacy")
AGENT = Pod("shop", "agent-1", labels={"app": "agent"}, host_network=True, node_name="node-1")
TO_KUBE_DNS = {"toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system",
                                                "k8s-app": "kube-dns"}}]}
UDP_53 = {"ports": [{"port": "53", "protocol": "UDP"}]}


def cnp(name: str, spec: dict[str, Any], ns: str = "shop") -> KubeObject:
    return object_from_dict({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                             "metadata": {"name": name, "namespace": ns, "resourceVersion": "1"}, "spec": spec})


def ccnp(name: str, spec: dict[str, Any]) -> KubeObject:
    return object_from_dict({"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
                             "metadata": {"name": name, "resourceVersion": "1"}, "spec": spec})


def app(name: str) -> dict[str, Any]:
    return {"matchLabels": {"app": name}}


def build(*objects: KubeObject) -> ClusterState:
    cluster = ClusterState.build([Namespace("shop"), Namespace("legacy"), Namespace("kube-system"), *objects])
    assert cluster.invalid == []
    return cluster


def found(kind: FindingKind, *objects: KubeObject, **options: Any) -> list[Finding]:
    return [f for f in static_findings(build(*objects), **options) if f.kind is kind]


DENY_ALL = cnp("deny-all", {"endpointSelector": {}, "ingress": [{}], "egress": [{}]})
DENY_IN = cnp("deny-in", {"endpointSelector": {}, "ingress": [{}]})
LOCK_EGRESS = cnp("lock", {"endpointSelector": app("web"), "egress": [{}]})


def only_rule(cluster: ClusterState) -> Any:
    (compiled,) = cluster.cilium_policies
    (spec,) = compiled.specs
    (rule,) = spec.rules
    return rule


class TestIsolation:
    def test_cnp_default_deny_isolates_its_direction(self) -> None:
        """A CNP `endpointSelector: {}` with `ingress: [{}]` isolates the namespace's pods for ingress only."""
        assert isolation(build(WEB, DENY_IN), WEB) == (True, False)

    def test_enable_default_deny_false_does_not_isolate(self) -> None:
        """A CNP with enableDefaultDeny.ingress false selects the pod but leaves it unisolated."""
        spec = {"endpointSelector": {}, "enableDefaultDeny": {"ingress": False}, "ingress": [{}]}
        assert isolation(build(WEB, cnp("soft", spec)), WEB) == (False, False)

    def test_ccnp_isolates_pods_of_every_namespace(self) -> None:
        """A CCNP with `endpointSelector: {}` and egress rules isolates pods in any namespace for egress."""
        cluster = build(WEB, BATCH, ccnp("lock-all", {"endpointSelector": {}, "egress": [{}]}))
        assert (isolation(cluster, WEB), isolation(cluster, BATCH)) == ((False, True), (False, True))

    def test_enforcement_always_isolates_every_pod(self) -> None:
        """policy-enforcement `always` isolates a pod no policy selects, both ways."""
        assert isolation(build(WEB), WEB, "always") == (True, True)

    def test_enforcement_never_isolates_nothing(self) -> None:
        """policy-enforcement `never` leaves a pod a deny-all selects unisolated."""
        assert isolation(build(WEB, DENY_ALL), WEB, "never") == (False, False)


class TestSelectedPods:
    def test_cnp_selects_only_its_namespace(self) -> None:
        """A CNP's endpointSelector matches pods of its own namespace, not same-labelled pods elsewhere."""
        cluster = build(WEB, API, pod("web-2", "10.0.2.2", ns="legacy", app="web"),
                        cnp("web", {"endpointSelector": app("web"), "ingress": [{}]}))
        assert [p.key for p in selected_pods(cluster, cluster.cilium_policies[0])] == ["shop/web-1"]

    def test_ccnp_selects_in_a_given_namespace(self) -> None:
        """selected_pods(namespace=...) keeps a CCNP's selected pods of that namespace; hostNetwork excluded."""
        cluster = build(WEB, BATCH, AGENT, ccnp("all", {"endpointSelector": {}, "ingress": [{}]}))
        assert [p.key for p in selected_pods(cluster, cluster.cilium_policies[0], "shop")] == ["shop/web-1"]


class TestDefaultDeny:
    def test_cnp_with_empty_endpoint_selector(self) -> None:
        """A CNP `endpointSelector: {}` isolating ingress is the ingress default deny, named by kind and key."""
        cluster = build(WEB, DENY_IN)
        denies = [default_deny_policies(cluster, "shop", d) for d in (INGRESS, EGRESS)]
        assert denies == [("CiliumNetworkPolicy shop/deny-in",), ()]

    def test_ccnp_selecting_a_namespace_by_name(self) -> None:
        """A CCNP selecting `k8s:io.kubernetes.pod.namespace: shop` is shop's default deny and not legacy's."""
        shop = {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "shop"}}
        spec = {"endpointSelector": shop, "egress": [{}]}
        cluster = build(WEB, BATCH, ccnp("shop-egress", spec))
        assert default_deny_policies(cluster, "shop", EGRESS) == ("CiliumClusterwideNetworkPolicy shop-egress",)
        assert default_deny_policies(cluster, "legacy", EGRESS) == ()

    def test_ccnp_selecting_namespaces_by_label(self) -> None:
        """A CCNP selecting namespace label team=a is the default deny of the namespaces that carry it."""
        spec = {"endpointSelector": {"matchLabels": {"k8s:io.cilium.k8s.namespace.labels.team": "a"}},
                "ingress": [{}]}
        cluster = ClusterState.build([Namespace("shop", labels={"team": "a"}), Namespace("legacy"), WEB, BATCH,
                                      ccnp("team-a", spec)])
        denies = [default_deny_policies(cluster, ns, INGRESS) for ns in ("shop", "legacy")]
        assert denies == [("CiliumClusterwideNetworkPolicy team-a",), ()]

    def test_selector_on_pod_labels_is_not_a_default_deny(self) -> None:
        """A CNP selecting app=web isolates web but is no default deny of its namespace."""
        assert default_deny_policies(build(WEB, LOCK_EGRESS), "shop", EGRESS) == ()

    def test_enforcement_always_is_a_default_deny(self) -> None:
        """Under policy-enforcement `always` the setting itself is listed as the default deny."""
        assert default_deny_policies(build(WEB), "shop", INGRESS, "always") == (ENFORCEMENT_ALWAYS,)


class TestAllowsPort:
    def test_cilium_rule_port(self) -> None:
        """Without a peer, a CNP ingress rule on 8080 opens 8080 and nothing else."""
        rule = {"fromEndpoints": [app("web")], "toPorts": [{"ports": [{"port": "8080", "protocol": "TCP"}]}]}
        cluster = build(API, cnp("api", {"endpointSelector": app("api"), "ingress": [rule]}))
        assert [allows_port(cluster, API, INGRESS, port) for port in (8080, 9090)] == [True, False]

    def test_deny_of_every_peer_wins(self) -> None:
        """An ingressDeny from entity all on a port closes it although an allow rule admits it."""
        spec = {"endpointSelector": app("api"), "ingress": [{"fromEntities": ["all"]}],
                "ingressDeny": [{"fromEntities": ["all"], "toPorts": [{"ports": [{"port": "8080"}]}]}]}
        assert not allows_port(build(API, cnp("api", spec)), API, INGRESS, 8080)


class TestCiliumAllowAllRule:
    @pytest.mark.parametrize(("rule", "peer"), [
        ({"fromEntities": ["all"]}, "entity all"),
        ({"fromEntities": ["world"]}, "entity world"),
        ({"fromEntities": ["cluster"]}, "entity cluster"),
        ({"fromCIDR": ["0.0.0.0/0"]}, "CIDR 0.0.0.0/0"),
        ({"fromCIDRSet": [{"cidr": "::/0"}]}, "CIDR ::/0"),
        ({"fromEndpoints": [{"matchExpressions": [{"key": "k8s:io.kubernetes.pod.namespace",
                                                   "operator": "Exists"}]}]}, "endpoints"),
        ({"toPorts": [{"ports": [{"port": "0", "protocol": "ANY"}]}]}, "any peer"),
        ({"fromEndpoints": [app("web")], "toPorts": [{"ports": [{"port": "80"}]}]}, ""),
        ({"fromEndpoints": [{}]}, ""),
        ({"toPorts": [{"ports": [{"port": "80"}]}]}, ""),
        ({"fromCIDRSet": [{"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}]}, ""),
        ({"fromEntities": ["host"]}, ""),
        ({"fromEntities": ["all"], "icmps": [{"fields": [{"type": 8}]}]}, ""),
    ], ids=["all", "world", "cluster", "v4-cidr", "v6-cidr-set", "every-namespace", "ports-wildcard",
            "some-peer", "own-namespace", "ports-only-80", "cidr-except", "host", "icmp-only"])
    def test_cnp_rule_admits_everyone(self, rule: dict[str, Any], peer: str) -> None:
        """A CNP rule is allow-all when its peers cover everyone (its peer text returned) on every port."""
        cluster = build(cnp("p", {"endpointSelector": {}, "ingress": [rule]}))
        assert cilium_rule_admits_everyone(cluster, only_rule(cluster)).startswith(peer)
        assert bool(cilium_rule_admits_everyone(cluster, only_rule(cluster))) is bool(peer)

    def test_ccnp_empty_endpoints_admit_every_pod(self) -> None:
        """A CCNP's `toEndpoints: [{}]` admits every pod of every namespace: allow-all."""
        cluster = build(ccnp("p", {"endpointSelector": {}, "egress": [{"toEndpoints": [{}]}]}))
        assert cilium_rule_admits_everyone(cluster, only_rule(cluster)) == "endpoints <all>"

    def test_deny_rule_is_not_allow_all(self) -> None:
        """An ingressDeny from entity all denies; it is not an allow-all rule."""
        cluster = build(cnp("p", {"endpointSelector": {}, "ingressDeny": [{"fromEntities": ["all"]}]}))
        assert cilium_rule_admits_everyone(cluster, only_rule(cluster)) == ""

    def test_finding_names_the_rule_path_and_kind(self) -> None:
        """An allow-all CNP rule is reported under ciliumnetworkpolicy/<name> with its rule path and peer."""
        egress = [{"toEndpoints": [app("db")]}, {"toEntities": ["world"]}]
        spec = {"endpointSelector": app("api"), "egress": egress}
        (f,) = found(FindingKind.ALLOW_ALL_RULE, API, cnp("out", spec))
        assert (f.namespace, f.workload, f.direction, f.policies, f.details) == (
            "shop", "ciliumnetworkpolicy/out", "egress", ("CiliumNetworkPolicy shop/out@1",),
            (("rule", "egress[1]"), ("peer", "entity world")))

    def test_ccnp_finding_has_no_namespace(self) -> None:
        """An allow-all CCNP rule of its second spec is keyed cluster-wide with the specs[] path."""
        specs = [{"endpointSelector": app("web"), "ingress": [{}]},
                 {"endpointSelector": app("api"), "ingress": [{"fromEntities": ["all"]}]}]
        obj = object_from_dict({"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
                                "metadata": {"name": "open", "resourceVersion": "3"}, "specs": specs})
        (f,) = found(FindingKind.ALLOW_ALL_RULE, API, obj)
        assert (f.namespace, f.workload, f.detail("rule")) == (
            "", "ciliumclusterwidenetworkpolicy/open", "specs[1].ingress[0]")


class TestNoDefaultDeny:
    def test_cnp_default_deny_clears_the_namespace(self) -> None:
        """A CNP default deny both ways leaves no no-default-deny finding in its namespace."""
        assert [f.namespace for f in found(FindingKind.NO_DEFAULT_DENY, WEB, API, DENY_ALL)] == []

    def test_ccnp_default_deny_clears_every_namespace(self) -> None:
        """A CCNP `endpointSelector: {}` isolating both ways leaves no no-default-deny anywhere."""
        deny = ccnp("deny-all", {"endpointSelector": {}, "ingress": [{}], "egress": [{}]})
        assert found(FindingKind.NO_DEFAULT_DENY, WEB, BATCH, AGENT, deny) == []

    def test_message_names_both_kinds(self) -> None:
        """With Cilium policies in the cluster, the advice names the CNP default deny too."""
        (f,) = found(FindingKind.NO_DEFAULT_DENY, WEB, DENY_IN)
        assert (f.direction, "CiliumNetworkPolicy with endpointSelector: {}" in f.message) == ("egress", True)

    def test_enforcement_always_has_no_open_pods(self) -> None:
        """Under policy-enforcement `always` no namespace lacks a default deny."""
        assert found(FindingKind.NO_DEFAULT_DENY, WEB, BATCH, policy_enforcement="always") == []


class TestMissingDnsEgress:
    def test_cnp_egress_lock_without_dns(self) -> None:
        """A CNP egress lock without a DNS rule is missing-dns-egress naming the CNP with its kind."""
        (f,) = found(FindingKind.MISSING_DNS_EGRESS, WEB, DNS_LABELLED, LOCK_EGRESS)
        assert (f.workload, f.policies) == ("web", ("CiliumNetworkPolicy shop/lock@1",))

    @pytest.mark.parametrize("rule", [
        {**TO_KUBE_DNS, "toPorts": [UDP_53]},
        {"toEntities": ["cluster"]},
        {"toEntities": ["all"]},
        {**TO_KUBE_DNS, "toPorts": [{"ports": [{"port": "53", "protocol": "ANY"}],
                                     "rules": {"dns": [{"matchPattern": "*"}]}}]},
        {"toPorts": [UDP_53]},
    ], ids=["to-kube-dns", "cluster", "all", "dns-proxy", "ports-only"])
    def test_rule_admitting_kube_dns_satisfies(self, rule: dict[str, Any]) -> None:
        """An egress rule admitting the kube-dns pods on UDP 53 removes the finding."""
        dns = cnp("dns", {"endpointSelector": {}, "egress": [rule]})
        assert found(FindingKind.MISSING_DNS_EGRESS, WEB, DNS_LABELLED, LOCK_EGRESS, dns) == []

    def test_rule_to_other_pods_does_not(self) -> None:
        """An egress rule on UDP 53 to pods other than kube-dns does not satisfy DNS."""
        rule = {"toEndpoints": [app("api")], "toPorts": [UDP_53]}
        dns = cnp("dns", {"endpointSelector": {}, "egress": [rule]})
        assert len(found(FindingKind.MISSING_DNS_EGRESS, WEB, DNS_LABELLED, LOCK_EGRESS, dns)) == 1


class TestProbePorts:
    def test_cnp_ingress_without_host_rule(self) -> None:
        """A CNP isolating a probed pod for ingress without a host rule yields probe-port-not-allowed."""
        lock = cnp("api", {"endpointSelector": app("api"), "ingress": [{"fromEndpoints": [app("web")]}]})
        (f,) = found(FindingKind.PROBE_PORT_NOT_ALLOWED, PROBED_API, NODE, lock)
        assert (f.port, f.policies) == (8080, ("CiliumNetworkPolicy shop/api@1",))
        assert "fromEntities: [host]" in f.message

    @pytest.mark.parametrize("rule", [
        {"fromEntities": ["host"]},
        {"fromEntities": ["cluster"]},
        {"toPorts": [{"ports": [{"port": "8080", "protocol": "TCP"}]}]},
    ], ids=["host", "cluster", "ports-only"])
    def test_rule_admitting_the_host_satisfies(self, rule: dict[str, Any]) -> None:
        """A rule admitting the host entity (or any peer) on the probe port removes the finding."""
        lock = cnp("api", {"endpointSelector": app("api"), "ingress": [rule]})
        assert found(FindingKind.PROBE_PORT_NOT_ALLOWED, PROBED_API, NODE, lock) == []


class TestUnusedPolicy:
    def test_cnp_selecting_nothing(self) -> None:
        """A CNP whose endpointSelector matches no pod of its namespace is unused, keyed by its kind."""
        (f,) = found(FindingKind.UNUSED_POLICY, WEB, cnp("ghost", {"endpointSelector": app("gone"),
                                                                  "ingress": [{}]}))
        assert (f.namespace, f.workload, f.policies) == (
            "shop", "ciliumnetworkpolicy/ghost", ("CiliumNetworkPolicy shop/ghost@1",))

    def test_ccnp_selecting_nothing(self) -> None:
        """A CCNP selecting no pod anywhere is unused, with namespace ""."""
        (f,) = found(FindingKind.UNUSED_POLICY, WEB, ccnp("ghost", {"endpointSelector": app("gone"),
                                                                   "ingress": [{}]}))
        assert (f.namespace, f.workload) == ("", "ciliumclusterwidenetworkpolicy/ghost")

    def test_host_policy_selecting_a_node_is_used(self) -> None:
        """A host policy (nodeSelector) selecting an inventory node is not unused."""
        host = ccnp("host", {"nodeSelector": {}, "ingress": [{"fromEntities": ["cluster"]}]})
        assert found(FindingKind.UNUSED_POLICY, WEB, Node("node-1", labels={"role": "worker"}), host) == []

    def test_host_policy_matching_no_node_is_unused(self) -> None:
        """A host policy whose nodeSelector matches none of the inventory's nodes is unused."""
        host = ccnp("host", {"nodeSelector": {"matchLabels": {"role": "edge"}}, "ingress": [{}]})
        assert len(found(FindingKind.UNUSED_POLICY, WEB, NODE, host)) == 1


def test_knp_only_cluster_keeps_its_messages() -> None:
    """Without Cilium policies, no-default-deny keeps the NetworkPolicy-only wording."""
    (f, _) = found(FindingKind.NO_DEFAULT_DENY, WEB)
    assert f.message.endswith("is selected by no NetworkPolicy for ingress; add a default-deny ingress policy"
                              " (podSelector: {}).")
