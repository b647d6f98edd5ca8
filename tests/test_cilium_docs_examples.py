"""The policy-language examples of Cilium's documentation as small truth tables.

Each test is named after its section of Documentation/security/policy/ (layer3.rst, layer4.rst,
deny.rst, host.rst); the policies are the documented examples (examples/policies/...),
restated under tests/fixtures/cilium/docs/policies/ (see ../PROVENANCE.md), applied to
tests/fixtures/cilium/docs/topology.yaml.  Every row is what the section's text says of the
example (or, marked so, what Cilium's rules the section states imply):
`[from, to, protocol/port, allow|deny, why?]` in the endpoint notation of tests/cilium_support.py,
with `why` pinning the deciding side and policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from tests.cilium_support import FIXTURES, Probe, Scenario, check_attribution, decide, explain, parse_probe

DOCS = FIXTURES / "docs"
W = "ip/203.0.113.7"
APISERVER = "ip/198.51.100.10#kube-apiserver"


def _scenario(name: str, files: Sequence[str], rows: Sequence[Sequence[Any]], **engine: Any) -> Scenario:
    manifests = (DOCS / "topology.yaml", *(DOCS / "policies" / f for f in files))
    return Scenario(name, manifests, tuple(parse_probe([name, *row]) for row in rows), engine, "default")


def _check(scenario: Scenario, probe: Probe) -> None:
    decision = decide(scenario, probe)
    assert decision.allowed is probe.allowed, explain(decision)
    if probe.why:
        check_attribution(scenario, probe, decision)


def _params(scenario: Scenario) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("probe", scenario.probes, ids=lambda p: p.label.partition(":")[2])


def test_provenance_names_every_example_file() -> None:
    """PROVENANCE.md names the documentation section of every example fixture."""
    provenance = (FIXTURES / "PROVENANCE.md").read_text(encoding="utf-8")
    files = sorted((DOCS / "policies").rglob("*.yaml"))
    unnamed = [str(p) for p in files if f"`{p.relative_to(DOCS)}`" not in provenance]
    assert files
    assert not unnamed


# -- layer3.rst ----------------------------------------------------------------------------------

SIMPLE_INGRESS = _scenario("simple-ingress-allow", ["l3-simple-ingress.yaml"], [
    ["frontend", "backend", "tcp/80", "allow"],
    # layer4.rst: without an L4 part a rule admits every protocol, ICMP included.
    ["frontend", "backend", "icmp/8", "allow"],
    ["other", "backend", "tcp/80", "deny", "ingress-default"],
    # kubernetes.rst "Namespaces": a CNP's fromEndpoints select only its own namespace.
    ["other/frontend", "backend", "tcp/80", "deny", "ingress-default"],
    [W, "backend", "tcp/80", "deny", "ingress-default"],
    ["backend", "other", "tcp/80", "allow"],
])


@_params(SIMPLE_INGRESS)
def test_layer3_simple_ingress_allow(probe: Probe) -> None:
    """layer3.rst "Simple Ingress Allow": role=backend admits role=frontend only."""
    _check(SIMPLE_INGRESS, probe)


INGRESS_ALLOW_ALL = _scenario("ingress-allow-all-endpoints", ["l3-ingress-allow-all.yaml"], [
    ["frontend", "victim", "tcp/80", "allow"],
    ["other", "victim", "tcp/443", "allow"],
    ["other/frontend", "victim", "tcp/80", "deny", "ingress-default"],
    [W, "victim", "tcp/80", "deny", "ingress-default"],
    ["node/node-1", "victim", "tcp/80", "deny", "ingress-default"],
])


@_params(INGRESS_ALLOW_ALL)
def test_layer3_ingress_allow_all_endpoints(probe: Probe) -> None:
    """layer3.rst "Ingress Allow All Endpoints": an empty fromEndpoints selector admits every endpoint."""
    _check(INGRESS_ALLOW_ALL, probe)


SIMPLE_EGRESS = _scenario("simple-egress-allow", ["l3-simple-egress.yaml"], [
    ["frontend", "backend", "tcp/80", "allow"],
    ["frontend", "other", "tcp/80", "deny", "egress-default"],
    ["frontend", W, "tcp/443", "deny", "egress-default"],
    ["other", "backend", "tcp/80", "allow"],
])


@_params(SIMPLE_EGRESS)
def test_layer3_simple_egress_allow(probe: Probe) -> None:
    """layer3.rst "Simple Egress Allow": role=frontend may send to role=backend only."""
    _check(SIMPLE_EGRESS, probe)


EGRESS_ALLOW_ALL = _scenario("egress-allow-all-endpoints", ["l3-egress-allow-all.yaml"], [
    ["frontend", "other", "tcp/80", "allow"],
    ["frontend", "backend", "udp/53", "allow"],
    ["frontend", "other/frontend", "tcp/80", "deny", "egress-default"],
    ["frontend", W, "tcp/443", "deny", "egress-default"],
])


@_params(EGRESS_ALLOW_ALL)
def test_layer3_egress_allow_all_endpoints(probe: Probe) -> None:
    """layer3.rst "Egress Allow All Endpoints": all endpoints of the policy's namespace, nothing else."""
    _check(EGRESS_ALLOW_ALL, probe)


EGRESS_DENY = _scenario("simple-egress-deny", ["l3-egress-deny.yaml"], [
    ["frontend", "backend", "tcp/80", "deny", "egress-deny:deny-egress-example"],
    ["frontend", "backend", "icmp/8", "deny", "egress-deny:deny-egress-example"],
    ["frontend", "other", "tcp/80", "allow"],
    ["frontend", W, "tcp/443", "allow"],
])


@_params(EGRESS_DENY)
def test_layer3_simple_egress_deny(probe: Probe) -> None:
    """layer3.rst "Simple Egress Deny": the egressDeny wins over the policy's own allow-all."""
    _check(EGRESS_DENY, probe)


DEFAULT_DENY = _scenario("egress-default-deny", ["l3-egress-default-deny.yaml"], [
    ["restricted", "backend", "tcp/80", "deny", "egress-default"],
    ["restricted", W, "tcp/443", "deny", "egress-default"],
    ["restricted", "node/node-2", "icmp/8", "deny", "egress-default"],
    ["backend", "restricted", "tcp/80", "allow"],
])


@_params(DEFAULT_DENY)
def test_layer3_ingress_egress_default_deny(probe: Probe) -> None:
    """layer3.rst "Ingress/Egress Default Deny": an egress section without peers isolates egress only."""
    _check(DEFAULT_DENY, probe)


REQUIRES_ALONE = _scenario("requires-alone", ["l3-requires.yaml"], [
    ["prod-frontend", "prod-db", "tcp/80", "deny", "ingress-default"],
    ["frontend", "prod-db", "tcp/80", "deny", "ingress-default"],
])


@_params(REQUIRES_ALONE)
def test_layer3_additional_label_requirements_alone(probe: Probe) -> None:
    """layer3.rst "Additional Label Requirements": fromRequires alone allows nothing."""
    _check(REQUIRES_ALONE, probe)


REQUIRES = _scenario("requires-with-endpoints", ["l3-requires.yaml", "l3-requires-endpoints.yaml"], [
    ["prod-frontend", "prod-db", "tcp/80", "allow"],
    ["frontend", "prod-db", "tcp/80", "deny", "ingress-default"],
    ["prod-batch", "prod-db", "tcp/80", "deny", "ingress-default"],
])


@_params(REQUIRES)
def test_layer3_additional_label_requirements(probe: Probe) -> None:
    """layer3.rst "Additional Label Requirements": with the second policy env=prod AND role=frontend get in."""
    _check(REQUIRES, probe)


APISERVER_ENTITY = _scenario("kube-apiserver-entity", ["entities-apiserver.yaml"], [
    ["dev", APISERVER, "tcp/443", "allow"],
    ["dev", W, "tcp/443", "deny", "egress-default"],
    ["dev", "backend", "tcp/80", "deny", "egress-default"],
])


@_params(APISERVER_ENTITY)
def test_layer3_access_to_kube_apiserver(probe: Probe) -> None:
    """layer3.rst "Access to/from kube-apiserver": env=dev may reach the API server and nothing else."""
    _check(APISERVER_ENTITY, probe)


HOST_ENTITY = _scenario("host-entity", ["entities-host.yaml"], [
    ["dev", "node/node-1", "tcp/10250", "allow"],
    ["dev", "node/node-2", "tcp/10250", "deny", "egress-default"],
    ["dev", W, "tcp/443", "deny", "egress-default"],
])


@_params(HOST_ENTITY)
def test_layer3_access_to_local_host(probe: Probe) -> None:
    """layer3.rst "Access to/from local host": `host` is the pod's own node, not the others."""
    _check(HOST_ENTITY, probe)


NODES_ENTITY = _scenario("nodes-entities", ["entities-nodes.yaml"], [
    ["node/node-2", "dev", "tcp/80", "allow"],
    ["node/node-1", "dev", "tcp/80", "allow"],
    ["frontend", "dev", "tcp/80", "deny", "ingress-default"],
    [W, "dev", "tcp/80", "deny", "ingress-default"],
])


@_params(NODES_ENTITY)
def test_layer3_access_from_all_nodes(probe: Probe) -> None:
    """layer3.rst "Access to/from all nodes in the cluster": host and remote-node admit every node."""
    _check(NODES_ENTITY, probe)


WORLD_ENTITY = _scenario("world-entity", ["entities-world.yaml"], [
    [W, "public", "tcp/80", "allow"],
    ["frontend", "public", "tcp/80", "deny", "ingress-default"],
    ["node/node-2", "public", "tcp/80", "deny", "ingress-default"],
])


@_params(WORLD_ENTITY)
def test_layer3_access_from_outside_cluster(probe: Probe) -> None:
    """layer3.rst "Access to/from outside cluster": `world` is outside the cluster only."""
    _check(WORLD_ENTITY, probe)


CIDR = _scenario("cidr", ["cidr.yaml"], [
    ["my-service", "ip/20.1.1.1", "tcp/443", "allow"],
    ["my-service", "ip/20.1.1.2", "tcp/443", "deny", "egress-default"],
    ["my-service", "ip/10.1.2.3", "tcp/443", "allow"],
    ["my-service", "ip/10.96.0.10", "tcp/443", "deny", "egress-default"],
    ["my-service", "ip/10.111.255.254", "tcp/443", "deny", "egress-default"],
    ["my-service", "ip/10.112.0.1", "tcp/443", "allow"],
    # "CIDR rules do not apply to traffic where both sides ... are managed by Cilium".
    ["my-service", "backend", "tcp/80", "deny", "egress-default"],
])


@_params(CIDR)
def test_layer3_allow_to_external_cidr_block(probe: Probe) -> None:
    """layer3.rst "Allow to external CIDR block": 20.1.1.1 and 10.0.0.0/8 minus 10.96.0.0/12."""
    _check(CIDR, probe)


# -- layer4.rst ----------------------------------------------------------------------------------

L4 = _scenario("l4", ["l4.yaml"], [
    ["my-service", W, "tcp/80", "allow"],
    ["my-service", "backend", "tcp/80", "allow"],
    ["my-service", W, "tcp/443", "deny", "egress-default"],
    ["my-service", W, "udp/80", "deny", "egress-default"],
    ["my-service", W, "icmp/8", "deny", "egress-default"],
])


@_params(L4)
def test_layer4_example_l4(probe: Probe) -> None:
    """layer4.rst "Example (L4)": TCP 80 to any destination; ICMP blocked once L4 policy applies."""
    _check(L4, probe)


PORT_RANGE = _scenario("l4-port-range", ["l4-port-range.yaml"], [
    ["my-service", W, "tcp/80", "allow"],
    ["my-service", W, "tcp/200", "allow"],
    ["my-service", W, "tcp/444", "allow"],
    ["my-service", W, "tcp/79", "deny", "egress-default"],
    ["my-service", W, "tcp/445", "deny", "egress-default"],
    ["my-service", W, "udp/100", "deny", "egress-default"],
])


@_params(PORT_RANGE)
def test_layer4_example_port_ranges(probe: Probe) -> None:
    """layer4.rst "Example Port Ranges": TCP 80-444 inclusive."""
    _check(PORT_RANGE, probe)


L3_L4 = _scenario("l3-l4-combined", ["l3-l4-combined.yaml"], [
    ["frontend", "backend", "tcp/80", "allow"],
    ["frontend", "backend", "tcp/8080", "deny", "ingress-default"],
    ["frontend", "backend", "icmp/8", "deny", "ingress-default"],
    ["other", "backend", "tcp/80", "deny", "ingress-default"],
])


@_params(L3_L4)
def test_layer4_labels_dependent_rule(probe: Probe) -> None:
    """layer4.rst "Labels-dependent Layer 4 rule": role=frontend to role=backend on TCP 80 only."""
    _check(L3_L4, probe)


CIDR_L4 = _scenario("cidr-l4-combined", ["cidr-l4-combined.yaml"], [
    ["crawler", "ip/192.0.2.10", "tcp/80", "allow"],
    ["crawler", "ip/192.0.2.10", "tcp/443", "deny", "egress-default"],
    ["crawler", "ip/198.51.100.1", "tcp/80", "deny", "egress-default"],
    ["other", "ip/192.0.2.10", "tcp/443", "allow"],
])


@_params(CIDR_L4)
def test_layer4_cidr_dependent_rule(probe: Probe) -> None:
    """layer4.rst "CIDR-dependent Layer 4 Rule": 192.0.2.0/24 on TCP 80 only, for role=crawler only."""
    _check(CIDR_L4, probe)


ICMP = _scenario("icmp", ["icmp.yaml"], [
    ["my-service", W, "icmp/8", "allow"],
    ["my-service", "backend", "icmp/8", "allow"],
    ["my-service", "ip/2001:db8::1", "icmpv6/128", "allow"],
    ["my-service", W, "icmp/13", "deny", "egress-default"],
    ["my-service", "ip/2001:db8::1", "icmpv6/129", "deny", "egress-default"],
    ["my-service", W, "tcp/80", "deny", "egress-default"],
])


@_params(ICMP)
def test_layer4_example_icmp(probe: Probe) -> None:
    """layer4.rst "Example (ICMP/ICMPv6)": echo requests only (type 8, EchoRequest); L4 blocked."""
    _check(ICMP, probe)


# -- deny.rst ------------------------------------------------------------------------------------

ALLOWS = ["deny-table/allow-l7-http-80.yaml", "deny-table/allow-l4-80.yaml", "deny-table/allow-l4-81.yaml",
          "deny-table/allow-l3-client.yaml"]
DENY_L4, DENY_L3 = "deny-table/deny-l4-80.yaml", "deny-table/deny-l3-client.yaml"
BY_L4, BY_L3 = "ingress-deny:deny-l4-80", "ingress-deny:deny-l3-client"
DENY_COLUMNS = [
    _scenario("allows-only", ALLOWS, [
        ["client", "server", "tcp/81", "allow"], ["client", "server", "tcp/80", "allow"],
        ["client", "server", "icmp/8", "allow"]]),
    _scenario("allows-deny-l4", [*ALLOWS, DENY_L4], [
        ["client", "server", "tcp/81", "allow"], ["client", "server", "tcp/80", "deny", BY_L4],
        ["client", "server", "icmp/8", "allow"]]),
    _scenario("allows-deny-l3", [*ALLOWS, DENY_L3], [
        ["client", "server", "tcp/81", "deny", BY_L3], ["client", "server", "tcp/80", "deny", BY_L3],
        ["client", "server", "icmp/8", "deny", BY_L3]]),
    _scenario("allows-deny-l3-l4", [*ALLOWS, DENY_L4, DENY_L3], [
        ["client", "server", "tcp/81", "deny", BY_L3], ["client", "server", "tcp/80", "deny", BY_L3],
        ["client", "server", "icmp/8", "deny", BY_L3]]),
    _scenario("deny-l4-only", [DENY_L4], [
        ["client", "server", "tcp/81", "deny", "ingress-default"],
        ["client", "server", "tcp/80", "deny", BY_L4],
        ["client", "server", "icmp/8", "deny", "ingress-default"]]),
]
DENY_TABLE = [(column, probe) for column in DENY_COLUMNS for probe in column.probes]


@pytest.mark.parametrize(("column", "probe"), DENY_TABLE,
                         ids=[f"{c.name}-{p.label.partition(':')[2]}" for c, p in DENY_TABLE])
def test_deny_policies_enforcement_table(column: Scenario, probe: Probe) -> None:
    """deny.rst "Deny Policies" table: deny beats every allow; a deny policy alone isolates the pod."""
    _check(column, probe)


FROM_WORLD_DENY = _scenario("external-lockdown", ["from-world-deny.yaml"], [
    [W, "frontend", "tcp/80", "deny", "ingress-deny:external-lockdown"],
    [W, "other/frontend", "tcp/80", "deny", "ingress-deny:external-lockdown"],
    ["frontend", "backend", "tcp/80", "allow"],
    ["other/frontend", "backend", "tcp/80", "allow"],
    ["node/node-2", "backend", "tcp/80", "allow"],
    [APISERVER, "backend", "tcp/80", "allow"],
])


@_params(FROM_WORLD_DENY)
def test_deny_policies_external_lockdown(probe: Probe) -> None:
    """deny.rst: the clusterwide external-lockdown denies world on every pod and admits the rest."""
    _check(FROM_WORLD_DENY, probe)


# -- host.rst ------------------------------------------------------------------------------------

HOST_POLICY = _scenario("lock-down-ingress-worker-node", ["host-lock-down-ingress.yaml"], [
    [W, "node/node-1", "tcp/22", "allow"],
    [W, "node/node-1", "tcp/6443", "allow"],
    [W, "node/node-1", "udp/8472", "allow"],
    [W, "node/node-1", "tcp/8472", "deny", "ingress-default"],
    [W, "node/node-1", "tcp/80", "deny", "ingress-default"],
    [W, "node/node-1", "icmp/8", "deny", "ingress-default"],
    ["frontend", "node/node-1", "tcp/4240", "allow"],
    ["frontend", "node/node-1", "tcp/80", "deny", "ingress-default"],
    ["other", "node/node-1", "tcp/2379", "allow"],
    [W, "node/node-2", "tcp/80", "allow"],
], enforce_node_traffic=True)


@_params(HOST_POLICY)
def test_host_policies_lock_down_ingress(probe: Probe) -> None:
    """host.rst: nodes labelled type=worker admit only the listed ports; other nodes are untouched."""
    _check(HOST_POLICY, probe)
