"""`auditor explain` with Cilium's policy kinds: CNP/CCNP/CiliumCIDRGroup manifests, deny rules, toFQDNs,
ICMP queries, node and entity endpoints, policy-enforcement modes; through the app and the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from auditor.app.explain import (
    LoadedState,
    Query,
    QueryError,
    explain,
    explanation_json,
    load_state,
    run_batch,
)
from auditor.app.explain_text import explanation_text
from auditor.model.decision import ExternalSubject, NodeSubject, PodSubject
from auditor.policy.engine import PolicyEngine

FIXTURES = Path(__file__).parent / "fixtures" / "explain-cilium"
CLUSTER = str(FIXTURES / "cluster.yaml")
POLICIES = str(FIXTURES / "policies.yaml")
AUDITOR = Path(sys.executable).parent / "auditor"


@pytest.fixture(scope="module")
def loaded() -> LoadedState:
    return load_state([CLUSTER, POLICIES], None, None)


def ask(loaded: LoadedState, source: Any, destination: Any, port: int | None = None, protocol: str = "TCP",
        icmp_type: int | str | None = None, **engine: Any) -> dict[str, Any]:
    query = Query(source, destination, port, protocol, icmp_type)
    return explanation_json(explain(loaded.state, PolicyEngine(**engine), query))


def text(loaded: LoadedState, source: Any, destination: Any, port: int | None = None, protocol: str = "TCP",
         **engine: Any) -> str:
    item = explain(loaded.state, PolicyEngine(**engine), Query(source, destination, port, protocol))
    return explanation_text(loaded.state, item)


class TestCiliumPolicies:
    def test_cnp_allow_names_kind_rule_path_peer_and_proxy(self, loaded: LoadedState) -> None:
        """An allow by a CNP names its kind, revision, rule path, peer, ports and the L7 proxy."""
        out = text(loaded, "shop/web", "shop/api", 8080)
        assert ("Allowed by:    CiliumNetworkPolicy shop/api-from-web@5 ingress[0] (endpoints app=web; "
                "8080/TCP; L7 http: Cilium's proxy then judges each request)") in out

    def test_allowed_by_json_has_kind_path_peer_text_and_l7(self, loaded: LoadedState) -> None:
        """JSON rule objects carry the policy kind, the rule path, the peer in Cilium's words, the L7 kind."""
        result = ask(loaded, "shop/web", "shop/api", 8080)
        assert result["ingress"]["allowed_by"] == [{
            "policy": "CiliumNetworkPolicy shop/api-from-web@5", "kind": "CiliumNetworkPolicy", "rule": 0,
            "peer": 0, "path": "ingress[0]", "peer_text": "endpoints app=web", "l7": "http"}]

    def test_cnp_isolates_unlisted_peers(self, loaded: LoadedState) -> None:
        """A pod a CNP selects for ingress is in default deny: the CNP is named as the isolating policy."""
        result = ask(loaded, "tools/probe", "shop/api", 8080)
        assert result["ingress"]["allowed"] is False
        assert result["ingress"]["isolated_by"] == ["CiliumNetworkPolicy shop/api-from-web@5"]

    def test_cilium_isolation_text_says_closest_miss_is_knp_only(self, loaded: LoadedState) -> None:
        """With only Cilium policies isolating, the text says the closest-miss analysis does not cover them."""
        out = text(loaded, "tools/probe", "shop/api", 8080)
        assert "Isolated by:   CiliumNetworkPolicy shop/api-from-web@5" in out
        assert "none found (the closest-miss analysis covers NetworkPolicy rules only)" in out

    def test_knp_rule_json_gains_kind_and_path(self, loaded: LoadedState) -> None:
        """A NetworkPolicy rule in JSON keeps policy/rule/peer and gains kind and path (no Cilium peer text)."""
        result = ask(loaded, "shop/api", "shop/db", 5432)
        assert result["ingress"]["allowed_by"] == [{
            "policy": "shop/db-from-api", "kind": "NetworkPolicy", "rule": 0, "peer": 0, "path": "ingress[0]",
            "peer_text": None, "l7": None}]

    def test_cidr_group_reference_allows(self, loaded: LoadedState) -> None:
        """A toCIDRSet cidrGroupRef admits the CiliumCIDRGroup's addresses."""
        out = text(loaded, "tools/probe", "198.51.100.7", 443)
        assert ("Allowed by:    CiliumNetworkPolicy tools/probe-to-partners egress[0] "
                "(CiliumCIDRGroup partners; all ports and protocols)") in out

    def test_address_outside_cidr_group_denied(self, loaded: LoadedState) -> None:
        """An address outside the group is denied by the policy's default deny."""
        result = ask(loaded, "tools/probe", "203.0.113.9", 443)
        assert (result["allowed"], result["egress"]["isolated_by"]) == (
            False, ["CiliumNetworkPolicy tools/probe-to-partners"])

    def test_rule_of_a_specs_entry_named_by_its_path(self, tmp_path: Path) -> None:
        """A rule in a `specs` list is named `specs[N].section[i]`, with its own ports."""
        extra = tmp_path / "specs.yaml"
        extra.write_text("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\n"
                         "metadata: {name: multi, namespace: tools}\n"
                         "specs:\n- {endpointSelector: {}, egress: [{toEntities: [host]}]}\n"
                         "- {endpointSelector: {}, egress: [{toEntities: [world], "
                         "toPorts: [{ports: [{port: '8000', endPort: 8080, protocol: TCP}]}]}]}\n")
        state = load_state([CLUSTER, str(extra)], None, None).state
        out = explanation_text(state, explain(state, PolicyEngine(), Query("tools/probe", "203.0.113.5", 8001)))
        assert ("Allowed by:    CiliumNetworkPolicy tools/multi specs[1].egress[0] "
                "(entity world; 8000-8080/TCP)") in out


class TestDenyRules:
    def test_deny_text(self, loaded: LoadedState) -> None:
        """A matching deny rule is named with kind, path, peer and ports, and said to win over allows."""
        out = text(loaded, "shop/web", "1.1.1.1", 80)
        assert "Verdict:       DENIED (a deny rule wins over every allow)" in out
        assert ("Denied by:     CiliumClusterwideNetworkPolicy no-world-http egressDeny[0] "
                "(entity world; 80/ANY)") in out

    def test_deny_json(self, loaded: LoadedState) -> None:
        """JSON lists the deny rule under denied_by with its kind and path."""
        result = ask(loaded, "shop/web", "1.1.1.1", 80)
        assert result["egress"]["denied_by"] == [{
            "policy": "CiliumClusterwideNetworkPolicy no-world-http", "kind": "CiliumClusterwideNetworkPolicy",
            "rule": 0, "peer": 0, "path": "egressDeny[0]", "peer_text": "entity world", "l7": None}]

    def test_deny_limited_to_its_port(self, loaded: LoadedState) -> None:
        """The deny on port 80 leaves 443 to the allow rule."""
        result = ask(loaded, "shop/web", "1.1.1.1", 443)
        assert (result["allowed"], result["egress"]["denied_by"]) == (True, [])


class TestFQDN:
    def test_unknown_name_is_undecided(self, loaded: LoadedState) -> None:
        """An external address whose DNS name is not given cannot be decided against a toFQDNs rule."""
        result = ask(loaded, "shop/db", "1.1.1.1", 443)
        assert (result["allowed"], result["undecided"], result["egress"]["undecided"]) == (False, True, "fqdn")

    def test_undecided_text(self, loaded: LoadedState) -> None:
        """The text says the verdict needs the DNS answer and how to give the names."""
        out = text(loaded, "shop/db", "1.1.1.1", 443)
        assert "Verdict:     UNDECIDED: egress cannot be decided without the DNS answer for 1.1.1.1" in out
        assert '{"ip": ..., "names": [...]}' in out

    def test_matching_name_allows(self, loaded: LoadedState) -> None:
        """Given the name the rule allows, the toFQDNs rule admits the address."""
        result = ask(loaded, "shop/db", {"ip": "1.1.1.1", "names": ["one.one.one.one"]}, 443)
        assert result["allowed"] is True
        assert result["egress"]["allowed_by"][0]["peer_text"] == "FQDN one.one.one.one"

    def test_other_name_is_denied_not_undecided(self, loaded: LoadedState) -> None:
        """A known name the rule does not allow is a plain denial."""
        result = ask(loaded, "shop/db", {"ip": "1.1.1.1", "names": ["evil.example"]}, 443)
        assert (result["allowed"], result["undecided"]) == (False, False)

    def test_names_need_an_external_address(self, loaded: LoadedState) -> None:
        """DNS names on a pod's IP are rejected."""
        with pytest.raises(QueryError, match="external addresses only"):
            ask(loaded, "shop/db", {"ip": "10.0.1.11", "names": ["api.example"]}, 443)

    def test_batch_tells_same_ip_with_and_without_names_apart(self, loaded: LoadedState) -> None:
        """In one batch (one engine), the same IP with and without names gets its own answer."""
        named = {"ip": "1.1.1.1", "names": ["one.one.one.one"]}
        lines = [json.dumps({"from": "shop/db", "to": named, "port": 443}),
                 json.dumps({"from": "shop/db", "to": {"ip": "1.1.1.1"}, "port": 443})]
        results = [line.to_json() for line in run_batch(loaded.state, PolicyEngine(), lines)]
        assert [(r["allowed"], r["undecided"]) for r in results] == [(True, False), (False, True)]


class TestICMP:
    def test_default_type_is_echo_request(self, loaded: LoadedState) -> None:
        """ICMP without a type is an echo request (8), reported as icmp_type with no port."""
        result = ask(loaded, "shop/web", "shop/api", protocol="ICMP")
        assert (result["allowed"], result["icmp_type"], result["port"]) == (True, 8, None)
        assert result["protocol"] == "ICMP"

    def test_icmpv6_default_is_128(self, loaded: LoadedState) -> None:
        """ICMPv6 without a type is an echo request (128)."""
        result = ask(loaded, "shop/web", "shop/api", protocol="ICMPv6")
        assert (result["allowed"], result["icmp_type"]) == (True, 128)

    def test_type_by_name(self, loaded: LoadedState) -> None:
        """A Cilium type name is read for the family: EchoRequest is 8 for ICMP."""
        assert ask(loaded, "shop/web", "shop/api", protocol="ICMP", icmp_type="EchoRequest")["icmp_type"] == 8

    def test_other_type_denied(self, loaded: LoadedState) -> None:
        """A type the icmps rule does not list is denied (EchoReply, 0)."""
        assert ask(loaded, "shop/web", "shop/api", protocol="ICMP", icmp_type=0)["allowed"] is False

    @pytest.mark.parametrize("spelling", ["icmp", "ICMPv4", "icmpv4"])
    def test_icmpv4_spellings_are_icmp(self, loaded: LoadedState, spelling: str) -> None:
        """icmp, ICMPv4 and icmpv4 all mean ICMP."""
        assert ask(loaded, "shop/web", "shop/api", protocol=spelling)["protocol"] == "ICMP"

    def test_text_names_the_type(self, loaded: LoadedState) -> None:
        """The connection line shows the ICMP type instead of a port."""
        out = text(loaded, "shop/web", "shop/api", protocol="ICMP")
        assert out.startswith("Connection:  shop/web (10.0.1.10) -> shop/api (10.0.1.11) ICMP type 8\n")

    @pytest.mark.parametrize(("port", "protocol", "icmp_type", "message"), [
        (None, "GRE", None, "must be one of TCP, UDP, SCTP, ICMP"),
        (8, "ICMP", None, "port does not apply to ICMP"),
        (80, "TCP", 8, "icmp_type applies to ICMP and ICMPv6 only"),
        (None, "ICMP", 256, "icmp_type 256 must be an ICMP type"),
        (None, "ICMP", "Bogus", "icmp_type 'Bogus' must be an ICMP type"),
        (None, "ICMP", "NeighborSolicitation", "must be an ICMP type"),
        (None, "TCP", None, "missing port"),
    ], ids=["protocol", "port-with-icmp", "type-with-tcp", "type-range", "type-name", "v6-name-for-v4",
            "no-port"])
    def test_bad_l4_rejected(self, loaded: LoadedState, port: int | None, protocol: str, icmp_type: Any,
                             message: str) -> None:
        """Unknown protocols, ports on ICMP, types on TCP and unknown types are clear query errors."""
        with pytest.raises(QueryError, match=message):
            ask(loaded, "shop/web", "shop/api", port, protocol, icmp_type)


class TestEndpoints:
    def test_node_name_is_a_node(self, loaded: LoadedState) -> None:
        """node/NAME is that node, with its address."""
        item = explain(loaded.state, PolicyEngine(), Query("shop/web", "node/node-2", 22))
        assert item.destination == NodeSubject("node-2", "192.168.1.2")

    def test_unknown_node(self, loaded: LoadedState) -> None:
        """node/NAME of no node is an error naming it."""
        with pytest.raises(QueryError, match="unknown node ghost"):
            ask(loaded, "node/ghost", "shop/api", 8080)

    def test_node_prefix_falls_back_to_a_pod_of_namespace_node(self, loaded: LoadedState) -> None:
        """node/NAME is a pod of the namespace `node` when no node has that name."""
        item = explain(loaded.state, PolicyEngine(), Query("node/relay", "shop/api", 8080))
        assert isinstance(item.source, PodSubject)
        assert item.source.pod.key == "node/relay"

    def test_external_entity_kube_apiserver(self, loaded: LoadedState) -> None:
        """An external address given the kube-apiserver entity matches toEntities kube-apiserver."""
        result = ask(loaded, "shop/db", {"ip": "203.0.113.1", "entity": "kube-apiserver"}, 6443)
        assert result["allowed"] is True
        assert result["egress"]["allowed_by"][0]["peer_text"] == "entity kube-apiserver"

    def test_plain_external_address_is_world(self, loaded: LoadedState) -> None:
        """Without an entity the same address is world and the kube-apiserver rule does not admit it."""
        item = explain(loaded.state, PolicyEngine(), Query("shop/db", {"ip": "203.0.113.1"}, 6443))
        assert item.destination == ExternalSubject("203.0.113.1")
        assert item.decision.allowed is False

    def test_node_address_with_kube_apiserver(self, loaded: LoadedState) -> None:
        """A node address may carry the kube-apiserver entity (an API server running on the node)."""
        result = ask(loaded, "shop/db", {"ip": "192.168.1.1", "entity": "kube-apiserver"}, 6443)
        assert (result["to"], result["allowed"]) == ("node/node-1", True)

    @pytest.mark.parametrize(("endpoint", "message"), [
        ({"ip": "10.0.1.11", "entity": "kube-apiserver"}, "identity comes from its labels"),
        ({"ip": "203.0.113.1", "entity": "cluster"}, "entity must be one of"),
        ({"ip": "192.168.1.1", "entity": "ingress"}, "can only add the entity kube-apiserver"),
        ({"ip": "203.0.113.1", "zone": "a"}, "must be"),
    ], ids=["pod", "unknown-entity", "node-ingress", "unknown-key"])
    def test_bad_entity_endpoints(self, loaded: LoadedState, endpoint: dict[str, str], message: str) -> None:
        """Entities on pods, unknown entities, non-apiserver entities on nodes and unknown keys are errors."""
        with pytest.raises(QueryError, match=message):
            ask(loaded, "shop/db", endpoint, 443)


class TestEnforcement:
    def test_never_enforces_nothing(self, loaded: LoadedState) -> None:
        """policy-enforcement never allows every connection, both sides not-enforced."""
        result = ask(loaded, "tools/probe", "shop/api", 8080, policy_enforcement="never")
        assert result["allowed"] is True
        assert (result["egress"]["enforcement"], result["ingress"]["enforcement"]) == ("not-enforced",) * 2

    def test_always_isolates_unselected_pods(self, loaded: LoadedState) -> None:
        """policy-enforcement always puts a pod no policy selects in default deny, and says why."""
        out = text(loaded, "shop/db", "tools/probe", 9000, policy_enforcement="always")
        assert "Isolated:      yes (policy enforcement always: every endpoint is in default deny)" in out
        assert "Verdict:     DENIED by egress and ingress" in out

    def test_host_policy_applies_with_node_traffic_enforced(self, loaded: LoadedState) -> None:
        """A CCNP nodeSelector policy isolates the node's ingress only under --enforce-node-traffic."""
        assert ask(loaded, "shop/web", "node/node-2", 22)["ingress"]["enforcement"] == "not-a-pod"
        result = ask(loaded, "shop/web", "node/node-2", 22, enforce_node_traffic=True)
        assert result["ingress"]["isolated_by"] == ["CiliumClusterwideNetworkPolicy host-kubelet"]


class TestInvalid:
    BROKEN = ("apiVersion: cilium.io/v2\nkind: {kind}\nmetadata: {{name: broken{ns}}}\n"
              "spec: {{endpointSelector: {{}}, ingress: [{{toPorts: [{{ports: [{{port: '70000'}}]}}]}}]}}\n")

    def _text(self, tmp_path: Path, kind: str, namespace: str, source: str) -> str:
        bad = tmp_path / "bad.yaml"
        bad.write_text(self.BROKEN.format(kind=kind, ns=f", namespace: {namespace}" if namespace else ""))
        state = load_state([CLUSTER, POLICIES, str(bad)], None, None).state
        return explanation_text(state, explain(state, PolicyEngine(), Query(source, "shop/api", 8080)))

    def test_invalid_cnp_listed_with_field(self, tmp_path: Path) -> None:
        """An invalid CNP of the pods' namespace is skipped and listed with the field at fault."""
        out = self._text(tmp_path, "CiliumNetworkPolicy", "shop", "shop/web")
        assert "Verdict:     ALLOWED" in out
        assert "  CiliumNetworkPolicy shop/broken: spec.ingress[0].toPorts[0].ports[0].port: " in out

    def test_invalid_ccnp_listed_for_any_namespace(self, tmp_path: Path) -> None:
        """An invalid CCNP is listed whatever the pods' namespaces (it could select any pod)."""
        out = self._text(tmp_path, "CiliumClusterwideNetworkPolicy", "", "tools/probe")
        assert "  CiliumClusterwideNetworkPolicy broken: spec.ingress[0].toPorts[0].ports[0].port: " in out

    def test_invalid_cnp_of_other_namespace_not_listed(self, tmp_path: Path) -> None:
        """An invalid CNP of a namespace neither pod is in is not listed."""
        out = self._text(tmp_path, "CiliumNetworkPolicy", "tools", "shop/web")
        assert "broken" not in out


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(AUDITOR), "explain", "--manifests", CLUSTER, POLICIES, *argv],
                          capture_output=True, text=True, timeout=60, check=False)


class TestCli:
    def test_icmp_type_without_port(self) -> None:
        """--protocol ICMP --icmp-type needs no --port."""
        done = cli("--from", "shop/web", "--to", "shop/api", "--protocol", "ICMP", "--icmp-type", "8",
                   "--output", "json")
        assert done.returncode == 0, done.stderr
        assert (json.loads(done.stdout)["allowed"], json.loads(done.stdout)["icmp_type"]) == (True, 8)

    def test_json_endpoint_with_names(self) -> None:
        """--to takes a JSON endpoint with DNS names."""
        endpoint = '{"ip": "1.1.1.1", "names": ["one.one.one.one"]}'
        done = cli("--from", "shop/db", "--to", endpoint, "--port", "443")
        assert done.returncode == 0, done.stderr
        assert "Verdict:     ALLOWED" in done.stdout

    def test_bad_protocol_is_a_usage_error(self) -> None:
        """An unknown protocol exits 2 naming the accepted ones."""
        done = cli("--from", "shop/web", "--to", "shop/api", "--protocol", "GRE")
        assert done.returncode == 2
        assert "must be one of TCP, UDP, SCTP, ICMP (or ICMPv4), ICMPv6" in done.stderr

    def test_policy_enforcement_flag(self) -> None:
        """--policy-enforcement never reaches the engine."""
        done = cli("--from", "tools/probe", "--to", "shop/api", "--port", "8080",
                   "--policy-enforcement", "never")
        assert done.returncode == 0, done.stderr
        assert "policy enforcement is never" in done.stdout

    def test_tcp_still_needs_a_port(self) -> None:
        """Without --port a TCP query is refused with the required flags."""
        done = cli("--from", "shop/web", "--to", "shop/api")
        assert done.returncode == 1
        assert "--from, --to and --port are required (no --port for ICMP/ICMPv6)" in done.stderr
