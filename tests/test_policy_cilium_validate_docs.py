"""The Cilium documentation's policy examples (examples/policies/ in cilium/cilium, shown on the
policy language, host firewall and DNS pages) validate clean, built as model objects and, for a few,
read from their YAML through the manifest converter."""

from __future__ import annotations

import pytest
import yaml

from auditor.kube.convert import object_from_dict
from auditor.model.cilium import (
    CIDRPeer,
    CiliumCIDRGroup,
    CiliumKind,
    CiliumNetworkPolicy,
    CiliumPolicySpec,
    CiliumPort,
    CiliumRule,
    FQDNPeer,
    ICMPType,
    PortRule,
    ServicePeer,
)
from auditor.model.labels import LabelSelector, LabelSelectorRequirement
from auditor.policy.cilium_validate import validate_cidr_group, validate_cilium_policy

R = CiliumRule
KUBE_DNS = LabelSelector(match_labels={"k8s:io.kubernetes.pod.namespace": "kube-system",
                                       "k8s:k8s-app": "kube-dns"})


def labels(**pairs: str) -> LabelSelector:
    return LabelSelector(match_labels=pairs)


def key(name: str, value: str = "") -> LabelSelector:
    return LabelSelector(match_labels={name: value})


def tcp(*numbers: str, l7: tuple[str, ...] = ()) -> tuple[PortRule, ...]:
    return (PortRule(tuple(CiliumPort(n, protocol="TCP") for n in numbers), l7),)


def udp(*numbers: str) -> tuple[PortRule, ...]:
    return (PortRule(tuple(CiliumPort(n, protocol="UDP") for n in numbers)),)


def spec(selector: LabelSelector | None = None, *, nodes: LabelSelector | None = None,
         ingress: list[CiliumRule] | None = None, ingress_deny: list[CiliumRule] | None = None,
         egress: list[CiliumRule] | None = None, egress_deny: list[CiliumRule] | None = None
         ) -> CiliumPolicySpec:
    def rules(found: list[CiliumRule] | None) -> tuple[CiliumRule, ...] | None:
        return None if found is None else tuple(found)
    return CiliumPolicySpec(selector, nodes, rules(ingress), rules(ingress_deny), rules(egress),
                            rules(egress_deny))


def cnp(name: str, *specs: CiliumPolicySpec, namespace: str = "default", has_spec: bool = True
        ) -> CiliumNetworkPolicy:
    return CiliumNetworkPolicy(CiliumKind.CNP, name, namespace, specs, has_spec=has_spec)


def ccnp(name: str, *specs: CiliumPolicySpec, has_spec: bool = True) -> CiliumNetworkPolicy:
    return CiliumNetworkPolicy(CiliumKind.CCNP, name, "", specs, has_spec=has_spec)


LOCK_DOWN_VMS_CIDR = ("192.168.33.0/24",)
NODE_PORTS = (PortRule((CiliumPort("8472", protocol="UDP"), CiliumPort("2379", protocol="TCP"),
                        CiliumPort("2380", protocol="TCP"), CiliumPort("6443", protocol="TCP"))),)

EXAMPLES = [
    cnp("l3-rule", spec(labels(role="backend"), ingress=[R(endpoints=(labels(role="frontend"),))])),
    cnp("l3-egress-rule", spec(labels(role="frontend"), egress=[R(endpoints=(labels(role="backend"),))])),
    cnp("allow-all-to-victim", spec(labels(role="victim"), ingress=[R(endpoints=(LabelSelector(),))])),
    cnp("allow-all-from-frontend", spec(labels(role="frontend"), egress=[R(endpoints=(LabelSelector(),))])),
    cnp("deny-all-egress", spec(labels(role="restricted"), egress=[R()])),
    cnp("deny-egress-example", spec(labels(role="frontend"), egress=[R(entities=("all",))],
                                    egress_deny=[R(endpoints=(labels(role="backend"),))])),
    cnp("dev-to-kube-apiserver", spec(labels(env="dev"), egress=[R(entities=("kube-apiserver",))])),
    cnp("to-dev-from-worker-nodes", spec(labels(env="dev"), ingress=[R(nodes=(labels(role="worker"),))])),
    cnp("to-prod-from-control-plane-nodes",
        spec(labels(env="prod"), ingress=[R(nodes=(key("node-role.kubernetes.io/control-plane"),))])),
    ccnp("external-lockdown", spec(LabelSelector(), ingress_deny=[R(entities=("world",))],
                                   ingress=[R(entities=("all",))])),
    cnp("dev-to-host", spec(labels(env="dev"), egress=[R(entities=("host",))])),
    cnp("to-dev-from-nodes-in-cluster", spec(labels(env="dev"), ingress=[R(entities=("host", "remote-node"))])),
    cnp("from-world-to-role-public", spec(labels(role="public"), ingress=[R(entities=("world",))])),
    cnp("cidr-rule", spec(labels(app="myService"), egress=[
        R(cidrs=("20.1.1.1/32",)), R(cidr_sets=(CIDRPeer("10.0.0.0/8", ("10.96.0.0/12",)),))])),
    cnp("to-fqdn", spec(labels(app="test-app"), egress=[
        R(endpoints=(KUBE_DNS,)), R(fqdns=(FQDNPeer("my-remote-service.com"),))])),
    ccnp("allow-google-dns-on-udp-53-only", spec(nodes=LabelSelector(), ingress=[R(to_ports=tcp("6443", "22"))],
                                                 egress=[R(to_ports=tcp("4240", "8080")),
                                                         R(cidrs=("8.8.0.0/16",), to_ports=udp("53"))])),
    cnp("requires-rule", spec(labels(env="prod"), ingress=[R(requires=(labels(env="prod"),))]), has_spec=False),
    cnp("l3-rule", spec(labels(env="prod"), ingress=[R(endpoints=(labels(role="frontend"),))]), has_spec=False),
    cnp("service-rule", spec(labels(id="app2"), egress=[R(services=(ServicePeer("myservice", "default"),))])),
    cnp("icmp-rule", spec(labels(app="myService"), egress=[
        R(icmps=(ICMPType(8, "IPv4"), ICMPType("EchoRequest", "IPv6")))])),
    cnp("l4-port-range-rule", spec(labels(app="myService"), egress=[
        R(to_ports=(PortRule((CiliumPort("80", 444, "TCP"),)),))])),
    cnp("cidr-l4-rule", spec(labels(role="crawler"), egress=[R(cidrs=("192.0.2.0/24",), to_ports=tcp("80"))])),
    cnp("l4-rule", spec(labels(role="backend"), ingress=[R(endpoints=(labels(role="frontend"),),
                                                          to_ports=tcp("80"))])),
    cnp("l4-rule", spec(labels(app="myService"), egress=[R(to_ports=tcp("80"))])),
    cnp("l4-rules", spec(labels(role="backend"), ingress=[R(endpoints=(labels(role="frontend"),)),
                                                         R(to_ports=tcp("80"))])),
    cnp("l4-sni-rule", spec(labels(app="myService"), egress=[
        R(to_ports=(PortRule((CiliumPort("443", protocol="TCP"),), server_names=("one.one.one.one",)),))])),
    ccnp("init", spec(key("reserved.init"), ingress=[R(entities=("host",))],
                      egress=[R(entities=("all",), to_ports=udp("53"))]), has_spec=False),
    cnp("from-init", spec(labels(app="myService"), ingress=[R(entities=("init",)), R(to_ports=udp("53"))])),
    ccnp("demo-host-policy", spec(nodes=labels(**{"node-access": "ssh"}), ingress=[
        R(entities=("cluster",)), R(to_ports=tcp("22")), R(icmps=(ICMPType("EchoRequest", "IPv4"),))])),
    ccnp("lock-down-dev-vms", spec(nodes=LabelSelector(), ingress=[
        R(entities=("remote-node", "health")), R(cidrs=LOCK_DOWN_VMS_CIDR),
        R(entities=("world",), to_ports=tcp("22")), R(entities=("remote-node",), to_ports=NODE_PORTS),
        R(cidrs=LOCK_DOWN_VMS_CIDR, to_ports=NODE_PORTS), R(endpoints=(KUBE_DNS,), to_ports=tcp("6443")),
        R(entities=("remote-node", "health"), to_ports=tcp("4240")),
        R(cidrs=LOCK_DOWN_VMS_CIDR, to_ports=tcp("4240")),
    ], egress=[
        R(entities=("remote-node", "health")), R(cidrs=LOCK_DOWN_VMS_CIDR),
        R(endpoints=(KUBE_DNS,), to_ports=(PortRule((CiliumPort("8080", protocol="TCP"),
                                                     CiliumPort("53", protocol="UDP"))),)),
        R(entities=("remote-node",), to_ports=NODE_PORTS), R(cidrs=LOCK_DOWN_VMS_CIDR, to_ports=NODE_PORTS),
        R(entities=("remote-node", "health"), to_ports=tcp("4240")),
        R(cidrs=LOCK_DOWN_VMS_CIDR, to_ports=tcp("4240")),
        R(entities=("world",), to_ports=udp("123")), R(cidrs=("8.8.8.8/32", "8.8.4.4/32"), to_ports=udp("53")),
        R(endpoints=(labels(name="echo-b"),), to_ports=tcp("8080")),
    ])),
    cnp("tofqdn-dns-visibility", spec(key("any:org", "alliance"), egress=[
        R(endpoints=(KUBE_DNS,), to_ports=(PortRule((CiliumPort("53", protocol="ANY"),), ("dns",)),)),
        R(fqdns=(FQDNPeer("cilium.io"), FQDNPeer("sub.cilium.io"), FQDNPeer("service1.api.cilium.io"),
                 FQDNPeer(match_pattern="special*service.api.cilium.io")), to_ports=tcp("80"))])),
    cnp("l7-rule", spec(labels(app="myService"), ingress=[R(to_ports=tcp("80", l7=("http",)))])),
    cnp("rule1", spec(labels(app="kafka"), ingress=[R(endpoints=(labels(app="empire-hq"),),
                                                      to_ports=tcp("9092", l7=("kafka",)))])),
    cnp("allow-to-kubedns", spec(LabelSelector(), egress=[R(endpoints=(KUBE_DNS,), to_ports=udp("53"))]),
        namespace="public"),
    ccnp("wildcard-from-endpoints",
         spec(KUBE_DNS, ingress=[R(endpoints=(LabelSelector(),), to_ports=udp("53"))])),
    ccnp("cilium-health-checks", spec(key("reserved:health"), ingress=[R(entities=("remote-node",))],
                                      egress=[R(entities=("remote-node",))])),
    cnp("k8s-svc-account", spec(labels(**{"io.cilium.k8s.policy.serviceaccount": "leia"}), ingress=[
        R(endpoints=(labels(**{"io.cilium.k8s.policy.serviceaccount": "luke"}),))])),
    cnp("client-egress-to-cidrgroup-deny", spec(labels(kind="client"), egress_deny=[
        R(cidr_sets=(CIDRPeer(group_ref="cilium-test-external-cidr", except_=("1.1.1.1/32",)),))])),
]


@pytest.mark.parametrize("policy", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_documentation_example_is_valid(policy: CiliumNetworkPolicy) -> None:
    """Each documented example policy is one Cilium accepts."""
    assert validate_cilium_policy(policy) == []


def test_documentation_cidr_group_is_valid() -> None:
    """The CiliumCIDRGroup of the connectivity tests is valid."""
    assert validate_cidr_group(CiliumCIDRGroup("cilium-test-external-cidr", ("1.1.0.0/16",))) == []


def test_match_expressions_examples_with_lower_case_in_are_rejected() -> None:
    """The docs' and/or-statement examples write `operator: "in"`, which the CRD's operator enum rejects."""
    selector = LabelSelector(match_expressions=(
        LabelSelectorRequirement("k8s:io.kubernetes.pod.namespace", "in", ("production",)),
        LabelSelectorRequirement("k8s:cilium.example.com/policy", "in", ("strict",))))
    errors = validate_cilium_policy(cnp("and-statement-policy", spec(LabelSelector(), ingress=[
        R(endpoints=(selector,))])))
    assert [e.field for e in errors] == [f"spec.ingress[0].fromEndpoints[0].matchExpressions[{i}].operator"
                                         for i in (0, 1)]


MANIFESTS = [
    """
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: tofqdn-dns-visibility}
spec:
  endpointSelector: {matchLabels: {"any:org": alliance}}
  egress:
  - toEndpoints:
    - matchLabels: {"k8s:io.kubernetes.pod.namespace": kube-system, "k8s:k8s-app": kube-dns}
    toPorts:
    - ports: [{port: "53", protocol: ANY}]
      rules:
        dns: [{matchName: cilium.io}, {matchPattern: "*.cilium.io"}]
  - toFQDNs: [{matchName: cilium.io}, {matchPattern: "special*service.api.cilium.io"}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
""",
    """
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: demo-host-policy}
spec:
  description: ""
  nodeSelector: {matchLabels: {node-access: ssh}}
  ingress:
  - fromEntities: [cluster]
  - toPorts: [{ports: [{port: "22", protocol: TCP}]}]
  - icmps: [{fields: [{type: EchoRequest, family: IPv4}]}]
""",
    """
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: icmp-rule}
spec:
  endpointSelector: {matchLabels: {app: myService}}
  egress:
  - icmps:
    - fields: [{type: 8, family: IPv4}, {type: EchoRequest, family: IPv6}]
""",
    """
apiVersion: cilium.io/v2alpha1
kind: CiliumCIDRGroup
metadata: {name: cilium-test-external-cidr}
spec:
  externalCIDRs: ["1.1.1.0/24", "2001:db8::/32"]
""",
]


@pytest.mark.parametrize("text", MANIFESTS, ids=["dns-visibility", "host-policy", "icmp", "cidr-group"])
def test_documentation_manifest_is_valid(text: str) -> None:
    """A documented manifest, read by the converter, validates clean."""
    obj = object_from_dict(yaml.safe_load(text), where="docs")
    errors = validate_cidr_group(obj) if isinstance(obj, CiliumCIDRGroup) else (
        validate_cilium_policy(obj) if isinstance(obj, CiliumNetworkPolicy) else None)
    assert errors == []


def test_invalid_manifest_field_path_as_written() -> None:
    """A mistake in a manifest read by the converter is reported at its path in the YAML."""
    obj = object_from_dict(yaml.safe_load("""
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {}
  ingress: [{fromEndpoints: [{}]}]
specs:
- endpointSelector: {}
  egressDeny:
  - toEntities: [world]
    icmps: [{fields: [{type: Echo, family: IPv6}]}]
"""), where="test")
    assert isinstance(obj, CiliumNetworkPolicy)
    assert [(e.ref, e.field) for e in validate_cilium_policy(obj)] == [
        ("CiliumNetworkPolicy shop/web", "specs[0].egressDeny[0].icmps[0].fields[0].type")]
