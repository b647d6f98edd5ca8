"""Cilium policy validation: what the CRD schema and the agent reject, and near misses they accept."""

from __future__ import annotations

import pytest

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
from auditor.policy.cilium_validate import (
    KNOWN_ENTITIES,
    icmp_type_number,
    validate_cidr_group,
    validate_cilium_policy,
)

ANY_POD = LabelSelector()


def sel(*expressions: LabelSelectorRequirement, **labels: str) -> LabelSelector:
    return LabelSelector(match_labels=dict(labels), match_expressions=tuple(expressions))


def labels(**pairs: str) -> LabelSelector:
    return LabelSelector(match_labels=pairs)


def expr(key: str, operator: str, *values: str) -> LabelSelectorRequirement:
    return LabelSelectorRequirement(key=key, operator=operator, values=values)


def ports(*entries: str | tuple[str, str] | CiliumPort, l7: tuple[str, ...] = (),
          server_names: tuple[str, ...] = ()) -> PortRule:
    """`ports("80", ("53", "UDP"))`: ports as written, TCP unless a protocol is given."""
    found = [e if isinstance(e, CiliumPort) else CiliumPort(e, protocol="TCP") if isinstance(e, str)
             else CiliumPort(e[0], protocol=e[1]) for e in entries]
    return PortRule(tuple(found), l7, server_names)


def icmp(*types: int | str, family: str = "IPv4", entry: int = 0) -> tuple[ICMPType, ...]:
    return tuple(ICMPType(t, family, entry) for t in types)


def spec(*, selector: LabelSelector | None = ANY_POD, nodes: LabelSelector | None = None,
         **sections: list[CiliumRule]) -> CiliumPolicySpec:
    return CiliumPolicySpec(endpoint_selector=selector, node_selector=nodes,
                            ingress=_rules(sections.get("ingress")),
                            ingress_deny=_rules(sections.get("ingress_deny")),
                            egress=_rules(sections.get("egress")),
                            egress_deny=_rules(sections.get("egress_deny")))


def _rules(rules: list[CiliumRule] | None) -> tuple[CiliumRule, ...] | None:
    return None if rules is None else tuple(rules)


def cnp(*specs: CiliumPolicySpec, name: str = "p", namespace: str = "shop", has_spec: bool = True
        ) -> CiliumNetworkPolicy:
    return CiliumNetworkPolicy(CiliumKind.CNP, name, namespace, specs, has_spec=has_spec)


def ccnp(*specs: CiliumPolicySpec, name: str = "p", has_spec: bool = True) -> CiliumNetworkPolicy:
    return CiliumNetworkPolicy(CiliumKind.CCNP, name, "", specs, has_spec=has_spec)


def ing(*rules: CiliumRule) -> CiliumNetworkPolicy:
    """A CNP whose spec selects every pod and has these ingress rules."""
    return cnp(spec(ingress=list(rules)))


def eg(*rules: CiliumRule) -> CiliumNetworkPolicy:
    return cnp(spec(egress=list(rules)))


def host(**sections: list[CiliumRule]) -> CiliumNetworkPolicy:
    return ccnp(spec(selector=None, nodes=ANY_POD, **sections))


def to_ports(*rules: PortRule, **peers: object) -> CiliumRule:
    return CiliumRule(to_ports=rules, **peers)  # type: ignore[arg-type]


def fields(policy: CiliumNetworkPolicy) -> list[tuple[str, str]]:
    return [(e.field, e.reason) for e in validate_cilium_policy(policy)]


HTTP = ("http",)
DNS = ("dns",)
FORTY = tuple(str(p) for p in range(1000, 1040))
FORTY_ONE = (*FORTY, "2000")
R = CiliumRule
EG, IG = "spec.egress[0]", "spec.ingress[0]"
EP = f"{EG}.toPorts[0]"


# (case, invalid policy, field, message fragment, nearby policy Cilium accepts)
CASES = [
    ("both selectors", ccnp(spec(nodes=ANY_POD, ingress=[R()])), "spec", "cannot have both",
     cnp(spec(ingress=[R()]))),
    ("no selector", ccnp(spec(selector=None, ingress=[R()])), "spec", "must have one of",
     ccnp(spec(selector=None, nodes=ANY_POD, ingress=[R()]))),
    ("nodeSelector in a CNP", cnp(spec(selector=None, nodes=ANY_POD, ingress=[R()])), "spec.nodeSelector",
     "only allowed in a CiliumClusterwideNetworkPolicy", host(ingress=[R()])),
    ("spec without rules", cnp(spec(ingress=[], egress=[])), "spec", "has no rule", cnp(spec(ingress=[R()]))),
    ("no spec nor specs", cnp(has_spec=False), "spec", "neither `spec` nor `specs`",
     cnp(spec(egress=[R()]), has_spec=False)),
    ("bad name", cnp(spec(ingress=[R()]), name="Bad_Name"), "metadata.name", "RFC 1123 subdomain",
     cnp(spec(ingress=[R()]), name="good-name.v2")),
    ("second spec of specs", cnp(spec(ingress=[R()]), spec(selector=None, ingress=[R()])),
     "specs[0]", "must have one of", cnp(spec(ingress=[R()]), spec(ingress=[R()]))),
    ("endpoints with CIDR", ing(R(endpoints=(ANY_POD,), cidrs=("10.0.0.0/8",))), f"{IG}",
     "combining fromEndpoints and fromCIDR", ing(R(endpoints=(ANY_POD,)), R(cidrs=("10.0.0.0/8",)))),
    ("FQDNs with endpoints", eg(R(endpoints=(ANY_POD,), fqdns=(FQDNPeer("cilium.io"),))), f"{EG}",
     "combining toEndpoints and toFQDNs", eg(R(endpoints=(ANY_POD,)), R(fqdns=(FQDNPeer("cilium.io"),)))),
    ("services with entities", eg(R(entities=("world",), services=(ServicePeer("api", "shop"),))),
     f"{EG}", "combining toEntities and toServices", eg(to_ports(ports("80"), services=(ServicePeer("api"),)))),
    ("nodes with groups", ing(R(nodes=(ANY_POD,), groups=1)), f"{IG}",
     "combining fromNodes and fromGroups", ing(R(nodes=(ANY_POD,)))),
    ("icmps with toPorts", eg(R(to_ports=(ports("80"),), icmps=icmp(8))), f"{EG}.icmps",
     "without toPorts", eg(R(to_ports=(ports("80"),)), R(icmps=icmp(8)))),
    ("L7 in a deny rule", cnp(spec(egress_deny=[to_ports(ports("80", l7=HTTP))])),
     "spec.egressDeny[0].toPorts[0].rules",
     "deny rules cannot have L7", cnp(spec(egress=[to_ports(ports("80", l7=HTTP))]))),
    ("serverNames in a deny rule", cnp(spec(ingress_deny=[to_ports(ports("443", server_names=("a.io",)))])),
     "spec.ingressDeny[0].toPorts[0].serverNames", "deny rules cannot match serverNames",
     cnp(spec(ingress=[to_ports(ports("443", server_names=("a.io",)))]))),
    ("FQDNs in egressDeny", cnp(spec(egress_deny=[R(fqdns=(FQDNPeer("a.io"),))])),
     "spec.egressDeny[0].toFQDNs", "only supported in egress rules", eg(R(fqdns=(FQDNPeer("a.io"),)))),
    ("FQDNs in ingress", ing(R(fqdns=())), f"{IG}.fromFQDNs", "only supported in egress rules",
     eg(R(fqdns=()))),
    ("services in ingress", ing(R(services=(ServicePeer("api"),))), f"{IG}.fromServices",
     "only supported in egress and egressDeny", cnp(spec(egress_deny=[R(services=(ServicePeer("api"),))]))),
    ("L7 on host ingress", host(ingress=[to_ports(ports("80", l7=HTTP))]), f"{IG}.toPorts[0].rules",
     "do not support L7 rules on ingress", host(egress=[to_ports(ports(("53", "UDP"), l7=DNS))])),
    ("HTTP on host egress", host(egress=[to_ports(ports("80", l7=HTTP))]), f"{EP}.rules",
     "support only DNS L7 rules on egress", eg(to_ports(ports("80", l7=HTTP)))),
    ("DNS on ingress", ing(to_ports(ports(("53", "UDP"), l7=DNS))), f"{IG}.toPorts[0].rules.dns",
     "not allowed on ingress", eg(to_ports(ports(("53", "UDP"), l7=DNS)))),
    ("HTTP on UDP", eg(to_ports(ports(("80", "UDP"), l7=HTTP))), f"{EP}.ports[0].protocol",
     "only apply to TCP (not UDP)", eg(to_ports(ports(("53", "ANY"), l7=DNS)))),
    ("HTTP without protocol", eg(to_ports(PortRule((CiliumPort("80"),), HTTP))),
     f"{EP}.ports[0].protocol", "only apply to TCP (not ANY)", eg(to_ports(ports("80", l7=HTTP)))),
    ("L7 on port 0", eg(to_ports(ports("0", l7=HTTP))), f"{EP}.rules", "when a port is 0",
     eg(to_ports(ports("0")))),
    ("DNS without ports", eg(to_ports(PortRule((), DNS))), f"{EP}.ports", "list port 53",
     eg(to_ports(PortRule((), HTTP)))),
    ("DNS port range", eg(to_ports(PortRule((CiliumPort("53", 60, "UDP"),), DNS))),
     f"{EP}.ports[0].endPort", "do not support port ranges",
     eg(to_ports(PortRule((CiliumPort("53", 60, "UDP"),))))),
    ("two L7 kinds", eg(to_ports(ports("80", l7=("http", "kafka")))), f"{EP}.rules",
     "only one L7 protocol", eg(to_ports(ports("80", l7=("kafka",))))),
    ("41 ports", eg(to_ports(ports(*FORTY_ONE))), f"{EP}.ports", "at most 40",
     eg(to_ports(ports(*FORTY)))),
    ("41 deny ports", cnp(spec(ingress_deny=[to_ports(ports(*FORTY_ONE))])),
     "spec.ingressDeny[0].toPorts[0].ports",
     "at most 40", cnp(spec(ingress_deny=[to_ports(ports(*FORTY))]))),
    ("empty port", eg(to_ports(ports(""))), f"{EP}.ports[0].port", "is required",
     eg(to_ports(ports("0")))),
    ("port 65536", eg(to_ports(ports("65536"))), f"{EP}.ports[0].port", "not a port",
     eg(to_ports(ports("65535")))),
    ("port 99999 (passes the CRD pattern)", eg(to_ports(ports("99999"))), f"{EP}.ports[0].port",
     "not a port", eg(to_ports(ports("9999")))),
    ("port name starting with '-'", eg(to_ports(ports("-http"))), f"{EP}.ports[0].port",
     "not a port", eg(to_ports(ports("http-8080"), ports("HTTP")))),
    ("octal port with digit 8", eg(to_ports(ports("08"))), f"{EP}.ports[0].port", "not a port",
     eg(to_ports(ports("017")))),
    ("16-character port name", eg(to_ports(ports("abcdefghijklmnop"))), f"{EP}.ports[0].port",
     "at most 15", eg(to_ports(ports("abcdefghijklmno")))),
    ("lower-case protocol", eg(to_ports(ports(("80", "tcp")))), f"{EP}.ports[0].protocol",
     "unsupported value 'tcp'", eg(to_ports(ports(("80", "SCTP"), ("80", "ANY"))))),
    ("protocol ICMP", eg(to_ports(ports(("8", "ICMP")))), f"{EP}.ports[0].protocol",
     "unsupported value 'ICMP'", eg(R(icmps=icmp(8)))),
    ("endPort 70000", eg(to_ports(PortRule((CiliumPort("80", 70000, "TCP"),)))),
     f"{EP}.ports[0].endPort", "between 0 and 65535",
     eg(to_ports(PortRule((CiliumPort("80", 65535, "TCP"),))))),
    ("ICMP family", eg(R(icmps=icmp(8, family="ipv4"))), f"{EG}.icmps[0].fields[0].family",
     "IPv4 or IPv6", eg(R(icmps=icmp(128, family="IPv6")))),
    ("Echo is IPv4 only", eg(R(icmps=icmp("Echo", family="IPv6"))), f"{EG}.icmps[0].fields[0].type",
     "unknown IPv6 ICMP type 'Echo'", eg(R(icmps=icmp("Echo")))),
    ("ExtendedEchoReply (CRD pattern typo)", eg(R(icmps=icmp("ExtendedEchoReply"))),
     f"{EG}.icmps[0].fields[0].type", "unknown IPv4", eg(R(icmps=icmp("ExtendedEchoRequest")))),
    ("PacketTooBig is IPv6 only", eg(R(icmps=icmp(8, "PacketTooBig"))),
     f"{EG}.icmps[0].fields[1].type", "'PacketTooBig'", eg(R(icmps=icmp("PacketTooBig", family="IPv6")))),
    ("ICMP type 256", cnp(spec(ingress_deny=[R(icmps=icmp(256))])),
     "spec.ingressDeny[0].icmps[0].fields[0].type",
     "0-255", cnp(spec(ingress_deny=[R(icmps=icmp(255, 0))]))),
    ("ICMP type '08'", eg(R(icmps=icmp("08"))), f"{EG}.icmps[0].fields[0].type", "'08'",
     eg(R(icmps=icmp("8")))),
    ("41 ICMP fields", eg(R(icmps=icmp(*range(41)))), f"{EG}.icmps[0].fields", "at most 40",
     eg(R(icmps=icmp(*range(40))))),
    ("41 ICMP fields in the second icmps entry", eg(R(icmps=icmp(8) + icmp(*range(41), entry=1))),
     f"{EG}.icmps[1].fields", "at most 40 per icmps entry",
     eg(R(icmps=icmp(*range(40)) + icmp(*range(40), entry=1)))),
    ("bad type in the second icmps entry", eg(R(icmps=icmp(8, 0) + icmp(128, "Echo", family="IPv6", entry=1))),
     f"{EG}.icmps[1].fields[1].type", "unknown IPv6 ICMP type 'Echo'",
     eg(R(icmps=icmp(8, 0) + icmp(128, "EchoRequest", family="IPv6", entry=1)))),
    ("entity case", ing(R(entities=("World",))), f"{IG}.fromEntities[0]", "unsupported entity",
     ing(R(entities=("world", "kube-apiserver")))),
    ("entity world-ipv4", ing(R(entities=("cluster", "world-ipv4"))), f"{IG}.fromEntities[1]",
     "unsupported entity 'world-ipv4'", ing(R(entities=("cluster", "remote-node")))),
    ("bare IP in toCIDR", eg(R(cidrs=("10.0.0.1",))), f"{EG}.toCIDR[0]", "not a CIDR",
     eg(R(cidrs=("10.0.0.1/32",)))),
    ("empty fromCIDR", ing(R(cidrs=("",))), f"{IG}.fromCIDR[0]", "IP must be specified",
     ing(R(cidrs=("0.0.0.0/0", "::/0")))),
    ("leading zero octet", ing(R(cidrs=("010.0.0.0/8",))), f"{IG}.fromCIDR[0]", "not a CIDR",
     ing(R(cidrs=("10.1.2.3/8",)))),
    ("leading zero prefix", ing(R(cidrs=("10.0.0.0/08",))), f"{IG}.fromCIDR[0]", "not a CIDR",
     ing(R(cidrs=("10.0.0.0/8",)))),
    ("IPv6 zone", eg(R(cidrs=("fe80::1%eth0/64",))), f"{EG}.toCIDR[0]", "not a CIDR",
     eg(R(cidrs=("fe80::1/64", "::ffff:10.0.0.0/104")))),
    ("CIDRSet entry without CIDR", eg(R(cidr_sets=(CIDRPeer(),))), f"{EG}.toCIDRSet[0]",
     "is required", eg(R(cidr_sets=(CIDRPeer(group_ref="office"),)))),
    ("cidr and cidrGroupRef", eg(R(cidr_sets=(CIDRPeer("10.0.0.0/8", group_ref="office"),))),
     f"{EG}.toCIDRSet[0]", "not cidr and cidrGroupRef",
     eg(R(cidr_sets=(CIDRPeer(group_selector=labels(team="a")),)))),
    ("bad cidrGroupRef", eg(R(cidr_sets=(CIDRPeer(group_ref="Office_1"),))),
     f"{EG}.toCIDRSet[0].cidrGroupRef", "CiliumCIDRGroup name",
     eg(R(cidr_sets=(CIDRPeer(group_ref="office-1", except_=("10.0.0.0/24",)),)))),
    ("source prefix in cidrGroupSelector",
     eg(R(cidr_sets=(CIDRPeer(group_selector=labels(**{"k8s:team": "a"})),))),
     f"{EG}.toCIDRSet[0].cidrGroupSelector.matchLabels", "invalid label key",
     eg(R(endpoints=(labels(**{"k8s:team": "a"}),)))),
    ("bad CIDRSet cidr", ing(R(cidr_sets=(CIDRPeer("10.0.0.0"),))), f"{IG}.fromCIDRSet[0].cidr",
     "not a CIDR", ing(R(cidr_sets=(CIDRPeer("10.0.0.0/32"),)))),
    ("except outside cidr", ing(R(cidr_sets=(CIDRPeer("10.0.0.0/16", ("10.1.0.0/24",)),))),
     f"{IG}.fromCIDRSet[0].except[0]", "must lie inside",
     ing(R(cidr_sets=(CIDRPeer("10.0.0.0/16", ("10.0.0.0/8",)),)))),
    ("except of the other family", ing(R(cidr_sets=(CIDRPeer("0.0.0.0/0", ("::/64",)),))),
     f"{IG}.fromCIDRSet[0].except[0]", "must lie inside",
     ing(R(cidr_sets=(CIDRPeer("0.0.0.0/0", ("10.0.0.0/8", "10.0.0.0/8")),)))),
    ("bad except", ing(R(cidr_sets=(CIDRPeer("10.0.0.0/8", ("10.0.0.300/24",)),))),
     f"{IG}.fromCIDRSet[0].except[0]", "not a CIDR",
     ing(R(cidr_sets=(CIDRPeer("10.0.0.0/8", ("10.0.0.200/24",)),)))),
    ("FQDN with both", eg(R(fqdns=(FQDNPeer("a.io", "*.a.io"),))), f"{EG}.toFQDNs[0]",
     "exactly one of matchName and matchPattern", eg(R(fqdns=(FQDNPeer("a.io"), FQDNPeer("", "*.a.io"))))),
    ("FQDN with neither", eg(R(fqdns=(FQDNPeer(),))), f"{EG}.toFQDNs[0]", "exactly one of",
     eg(R(fqdns=(FQDNPeer("", "*"),)))),
    ("wildcard in matchName", eg(R(fqdns=(FQDNPeer("*.a.io"),))), f"{EG}.toFQDNs[0].matchName",
     "invalid DNS name", eg(R(fqdns=(FQDNPeer("my_host.a.io."),)))),
    ("empty DNS label", eg(R(fqdns=(FQDNPeer("", "sub..a.io"),))), f"{EG}.toFQDNs[0].matchPattern",
     "single dots", eg(R(fqdns=(FQDNPeer("", "sub*.a.io"),)))),
    ("256-character name", eg(R(fqdns=(FQDNPeer("a" * 256),))), f"{EG}.toFQDNs[0].matchName",
     "at most 255", eg(R(fqdns=(FQDNPeer("a" * 255),)))),
    ("two source prefixes", ing(R(endpoints=(labels(**{"k8s:a:b": "x"}),))),
     f"{IG}.fromEndpoints[0].matchLabels", "only one ':'",
     ing(R(endpoints=(labels(**{"k8s:app": "x", "any:tier": "y", "reserved:host": ""}),)))),
    ("empty source", cnp(spec(selector=labels(**{":app": "x"}), ingress=[R()])),
     "spec.endpointSelector.matchLabels", "must be alphanumeric",
     cnp(spec(selector=labels(app="x"), ingress=[R()]))),
    ("bad label value", eg(R(endpoints=(labels(app="a b"),))), f"{EG}.toEndpoints[0].matchLabels.app",
     "invalid label value", eg(R(endpoints=(labels(app="a-b"),)))),
    ("lower-case operator", ing(R(endpoints=(sel(expr("k8s:app", "in", "a")),))),
     f"{IG}.fromEndpoints[0].matchExpressions[0].operator", "unsupported value 'in'",
     ing(R(endpoints=(sel(expr("k8s:app", "In", "a")),)))),
    ("In without values", ing(R(requires=(sel(expr("env", "In")),))),
     f"{IG}.fromRequires[0].matchExpressions[0].values", "must be specified",
     ing(R(requires=(sel(expr("env", "Exists")),)))),
    ("Exists with values", eg(R(nodes=(sel(expr("role", "DoesNotExist", "x")),))),
     f"{EG}.toNodes[0].matchExpressions[0].values", "may not be specified",
     eg(R(nodes=(sel(expr("role", "NotIn", "x")),)))),
    ("bad service selector",
     cnp(spec(egress_deny=[R(services=(ServicePeer(selector=labels(**{"-x": "1"})),))])),
     "spec.egressDeny[0].toServices[0].k8sServiceSelector.selector.matchLabels", "invalid label key",
     cnp(spec(egress_deny=[R(services=(ServicePeer(selector=labels(x="1")),))]))),
    ("empty server name", eg(to_ports(ports("443", server_names=("",)))), f"{EP}.serverNames[0]",
     "empty server name", eg(to_ports(ports("443", server_names=("*.a.io", "**.b.io"))))),
    ("server name with a space", eg(to_ports(ports("443", server_names=("a b.io",)))),
     f"{EP}.serverNames[0]", "must be a DNS name", eg(to_ports(ports("443", server_names=("ab.io",))))),
    ("CNP without namespace", cnp(spec(ingress=[R()]), namespace=""), "metadata.namespace", "is required",
     ccnp(spec(ingress=[R()]))),
]


@pytest.mark.parametrize(("policy", "field", "fragment"), [c[1:4] for c in CASES], ids=[c[0] for c in CASES])
def test_rejected_with_one_error_at_the_field(policy: CiliumNetworkPolicy, field: str, fragment: str) -> None:
    """A policy Cilium rejects yields exactly one error, at the offending field, saying what is wrong."""
    found = fields(policy)
    assert len(found) == 1, found
    assert found[0][0] == field
    assert fragment in found[0][1]


@pytest.mark.parametrize("policy", [c[4] for c in CASES], ids=[c[0] for c in CASES])
def test_nearby_policy_accepted(policy: CiliumNetworkPolicy) -> None:
    """The near miss next to each rejection is a policy Cilium accepts."""
    assert fields(policy) == []


ACCEPTED = [
    ("endPort below port (read as the single port)", eg(to_ports(PortRule((CiliumPort("80", 79, "TCP"),))))),
    ("named port with endPort (endPort unused)", eg(to_ports(PortRule((CiliumPort("http", 90, "TCP"),))))),
    ("port 0 with a protocol (all TCP ports)", eg(to_ports(ports("0", ("0", "UDP"))))),
    ("toServices with toPorts", eg(to_ports(ports("80"), services=(ServicePeer(selector=labels(app="a")),)))),
    ("empty peer list next to another peer kind", ing(R(endpoints=(), cidrs=("10.0.0.0/8",)))),
    ("except with a cidrGroupRef", eg(R(cidr_sets=(CIDRPeer(group_ref="g", except_=("1.1.1.1/32",)),)))),
    ("DNS rules on host egress", host(egress=[to_ports(ports(("53", "ANY"), l7=DNS))])),
    ("l7proto on host egress", host(egress=[to_ports(ports("9000", l7=("l7proto",)))])),
    ("only deny rules", cnp(spec(ingress_deny=[CiliumRule(entities=("world",))]))),
]


@pytest.mark.parametrize("policy", [c[1] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_cilium_accepts(policy: CiliumNetworkPolicy) -> None:
    """Forms a NetworkPolicy validator would reject but Cilium accepts are not reported."""
    assert fields(policy) == []


def test_every_offending_field_reported() -> None:
    """Several mistakes in one policy give one error each, in spec order."""
    policy = cnp(spec(egress=[to_ports(ports("80-90", ("80", "tcp"))), CiliumRule(entities=("everyone",))]),
                 spec(selector=None, ingress=[CiliumRule()]), has_spec=False)
    assert [f for f, _ in fields(policy)] == ["specs[0].egress[0].toPorts[0].ports[0].port",
                                              "specs[0].egress[0].toPorts[0].ports[1].protocol",
                                              "specs[0].egress[1].toEntities[0]", "specs[1]"]


def test_specs_follow_spec_in_paths() -> None:
    """With both `spec` and `specs`, specs entries are numbered from specs[0] after spec."""
    policy = cnp(spec(ingress=[CiliumRule()]), spec(egress=[CiliumRule(entities=("nobody",))]))
    assert [f for f, _ in fields(policy)] == ["specs[0].egress[0].toEntities[0]"]


def test_ref_names_a_namespaced_policy() -> None:
    """Errors of a CNP name it `CiliumNetworkPolicy ns/name`."""
    [error] = validate_cilium_policy(cnp(spec(ingress=[]), name="api", namespace="shop"))
    assert error.ref == "CiliumNetworkPolicy shop/api"


def test_ref_names_a_clusterwide_policy() -> None:
    """Errors of a CCNP name it `CiliumClusterwideNetworkPolicy name`."""
    [error] = validate_cilium_policy(ccnp(spec(ingress=[]), name="lockdown"))
    assert error.ref == "CiliumClusterwideNetworkPolicy lockdown"


def test_cidr_group_with_bad_cidr_rejected() -> None:
    """A CiliumCIDRGroup entry that is not address/prefix is reported at its index."""
    errors = validate_cidr_group(CiliumCIDRGroup("office", ("192.0.2.0/24", "192.0.2.1")))
    assert [(e.ref, e.field) for e in errors] == [("CiliumCIDRGroup office", "spec.externalCIDRs[1]")]


def test_cidr_group_accepted() -> None:
    """A CiliumCIDRGroup of IPv4 and IPv6 prefixes (or none) is valid."""
    assert validate_cidr_group(CiliumCIDRGroup("office", ("192.0.2.0/24", "2001:db8::/32"))) == []
    assert validate_cidr_group(CiliumCIDRGroup("empty")) == []


def test_cidr_group_bad_name_rejected() -> None:
    """A CiliumCIDRGroup name must be a DNS subdomain."""
    assert [e.field for e in validate_cidr_group(CiliumCIDRGroup("Office"))] == ["metadata.name"]


@pytest.mark.parametrize(("family", "value", "number"), [
    ("IPv4", "EchoRequest", 8), ("IPv6", "EchoRequest", 128), ("IPv4", "Echo", 8), ("IPv6", "EchoReply", 129),
    ("IPv4", "DestinationUnreachable", 3), ("IPv6", "NeighborSolicitation", 135), ("IPv4", 0, 0),
    ("IPv6", "255", 255),
])
def test_icmp_type_number_resolves(family: str, value: int | str, number: int) -> None:
    """ICMP type names resolve per family; numbers, written or as strings, stand for themselves."""
    assert icmp_type_number(family, value) == number


@pytest.mark.parametrize(("family", "value"), [
    ("IPv6", "Echo"), ("IPv4", "PacketTooBig"), ("IPv4", "ExtendedEchoReply"), ("IPv4", 256), ("IPv4", "08"),
    ("ipv4", 8), ("IPv4", "echorequest"),
])
def test_icmp_type_number_none_when_cilium_rejects(family: str, value: int | str) -> None:
    """A type or family Cilium does not accept has no number."""
    assert icmp_type_number(family, value) is None


def test_known_entities() -> None:
    """The entity names are exactly the CRD enum."""
    assert set(KNOWN_ENTITIES) == {"all", "world", "cluster", "host", "init", "ingress", "unmanaged",
                                   "remote-node", "health", "none", "kube-apiserver"}
