"""cilium.io CNP, CCNP and CiliumCIDRGroup objects to model types: docs-shaped manifests, errors, round trip."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from auditor.errors import ManifestError
from auditor.kube.convert import is_supported, object_from_dict
from auditor.kube.events import EventFileStats, iter_cluster_events, load_cluster_events, write_cluster_event
from auditor.kube.export import object_to_dict
from auditor.kube.manifests import load_manifests
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
from auditor.model.k8s import ChangeType
from auditor.model.labels import LabelSelector, LabelSelectorRequirement

FIXTURES = Path(__file__).parent / "fixtures" / "manifests" / "cilium"


def cnp(spec: Any = None, *, kind: str = "CiliumNetworkPolicy", **top: Any) -> dict[str, Any]:
    metadata = {"name": "p", "namespace": "shop", **top.pop("metadata", {})}
    obj = {"apiVersion": "cilium.io/v2", "kind": kind, "metadata": metadata, **top}
    if spec is not None:
        obj["spec"] = spec
    return obj


def convert(obj: dict[str, Any]) -> CiliumNetworkPolicy:
    converted = object_from_dict(obj)
    assert isinstance(converted, CiliumNetworkPolicy)
    return converted


def first_spec(spec_yaml: str) -> CiliumPolicySpec:
    return convert(cnp(yaml.safe_load(spec_yaml))).specs[0]


def labels(**pairs: str) -> LabelSelector:
    return LabelSelector(match_labels=pairs)


def error_of(obj: Any) -> str:
    with pytest.raises(ManifestError) as caught:
        object_from_dict(obj, where="policies.yaml:3")
    return str(caught.value)


class TestDocsExamples:
    def test_l3_label_ingress(self) -> None:
        """fromEndpoints selectors keep their keys verbatim, `k8s:` prefixes included."""
        spec = first_spec("""
            endpointSelector: {matchLabels: {role: backend}}
            ingress:
            - fromEndpoints:
              - matchLabels: {role: frontend, "k8s:io.kubernetes.pod.namespace": shop}
        """)
        assert spec.endpoint_selector == labels(role="backend")
        assert spec.ingress == (
            CiliumRule(endpoints=(labels(**{"role": "frontend", "k8s:io.kubernetes.pod.namespace": "shop"}),)),
        )
        assert (spec.egress, spec.ingress_deny, spec.node_selector) == (None, None, None)

    def test_cidr_egress(self) -> None:
        """toCIDR and toCIDRSet (with except) become cidrs and cidr_sets."""
        spec = first_spec("""
            endpointSelector: {matchLabels: {app: myService}}
            egress:
            - toCIDR: [20.1.1.1/32]
            - toCIDRSet:
              - cidr: 10.0.0.0/8
                except: [10.96.0.0/12]
        """)
        assert spec.egress == (
            CiliumRule(cidrs=("20.1.1.1/32",)),
            CiliumRule(cidr_sets=(CIDRPeer("10.0.0.0/8", ("10.96.0.0/12",)),)),
        )

    def test_cidr_group_references(self) -> None:
        """cidrGroupRef and cidrGroupSelector are kept on the CIDR set entry."""
        spec = first_spec("""
            endpointSelector: {}
            ingress:
            - fromCIDRSet:
              - cidrGroupRef: partners
              - cidrGroupSelector: {matchLabels: {zone: eu}}
        """)
        assert spec.ingress is not None
        assert spec.ingress[0].cidr_sets == (
            CIDRPeer(group_ref="partners"),
            CIDRPeer(group_selector=labels(zone="eu")),
        )

    def test_icmp_types_by_number_and_name(self) -> None:
        """ICMP types stay int or name as written; family defaults to IPv4; each knows its icmps[] entry."""
        spec = first_spec("""
            endpointSelector: {matchLabels: {app: myService}}
            egress:
            - icmps:
              - fields:
                - {type: 8, family: IPv4}
                - {type: EchoRequest, family: IPv6}
              - fields:
                - {type: 0}
        """)
        assert spec.egress is not None
        assert spec.egress[0].icmps == (
            ICMPType(8, "IPv4"), ICMPType("EchoRequest", "IPv6"), ICMPType(0, "IPv4", entry=1))

    def test_dns_rules_and_fqdns(self) -> None:
        """DNS L7 rules are kept as the `dns` kind and as written; toFQDNs keep matchName and matchPattern."""
        spec = first_spec("""
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
        """)
        assert spec.endpoint_selector == labels(**{"any:org": "alliance"})
        assert spec.egress is not None
        dns, fqdn = spec.egress
        assert dns.to_ports == (PortRule(
            ports=(CiliumPort("53", 0, "ANY"),), l7=("dns",),
            rules_json='{"dns":[{"matchName":"cilium.io"},{"matchPattern":"*.cilium.io"}]}'),)
        assert fqdn.fqdns == (
            FQDNPeer(match_name="cilium.io"), FQDNPeer(match_pattern="special*service.api.cilium.io"))
        assert fqdn.to_ports == (PortRule(ports=(CiliumPort("80", 0, "TCP"),)),)

    def test_services_by_selector_and_by_name(self) -> None:
        """toServices: k8sServiceSelector keeps its selector, k8sService its name and namespace."""
        spec = first_spec("""
            endpointSelector: {matchLabels: {id: app2}}
            egress:
            - toServices:
              - k8sServiceSelector: {selector: {matchLabels: {head: none}}, namespace: web}
              - k8sService: {serviceName: external-db, namespace: default}
        """)
        assert spec.egress is not None
        assert spec.egress[0].services == (
            ServicePeer(namespace="web", selector=labels(head="none")),
            ServicePeer(name="external-db", namespace="default"),
        )

    def test_service_name_and_selector_together(self) -> None:
        """A toServices entry with k8sService and k8sServiceSelector keeps both (Cilium ANDs them)."""
        spec = first_spec("""
            endpointSelector: {}
            egress:
            - toServices:
              - k8sService: {serviceName: db, namespace: data}
                k8sServiceSelector: {selector: {matchLabels: {tier: db}}, namespace: data}
        """)
        assert spec.egress is not None
        assert spec.egress[0].services == (ServicePeer("db", "data", labels(tier="db")),)

    def test_host_policy_ccnp(self) -> None:
        """A CCNP host policy: empty nodeSelector, entities and CIDRs, cluster-scoped key."""
        policy = convert(cnp(yaml.safe_load("""
            nodeSelector: {}
            ingress:
            - fromEntities: [remote-node, health]
            - fromCIDR: [192.168.33.0/24]
              toPorts:
              - ports: [{port: "8472", protocol: UDP}, {port: "6443", protocol: TCP}]
        """), kind="CiliumClusterwideNetworkPolicy", metadata={"name": "lock-down-dev-vms", "namespace": None}))
        assert (policy.kind, policy.namespace, policy.key, policy.clusterwide) == (
            CiliumKind.CCNP, "", "lock-down-dev-vms", True)
        spec = policy.specs[0]
        assert (spec.node_selector, spec.endpoint_selector) == (LabelSelector(), None)
        assert spec.ingress is not None
        assert spec.ingress[0].entities == ("remote-node", "health")
        assert spec.ingress[1].to_ports[0].ports == (CiliumPort("8472", 0, "UDP"), CiliumPort("6443", 0, "TCP"))

    def test_deny_sections_and_default_deny(self) -> None:
        """ingressDeny/egressDeny are read like their allow sections; enableDefaultDeny keeps both flags."""
        spec = first_spec("""
            endpointSelector: {matchLabels: {app: api}}
            ingressDeny:
            - fromEntities: [world]
            egressDeny:
            - toEndpoints: [{}]
              toPorts: [{ports: [{port: "22"}]}]
            enableDefaultDeny: {ingress: false}
            description: no world, no ssh
        """)
        assert spec.ingress_deny == (CiliumRule(entities=("world",)),)
        assert spec.egress_deny == (
            CiliumRule(endpoints=(LabelSelector(),), to_ports=(PortRule(ports=(CiliumPort("22"),)),)),
        )
        assert (spec.enable_default_deny_ingress, spec.enable_default_deny_egress) == (False, None)
        assert spec.description == "no world, no ssh"

    def test_port_range_sni_and_l7_kinds(self) -> None:
        """endPort, serverNames and every L7 kind present with rules are kept; empty kinds are not."""
        spec = first_spec("""
            endpointSelector: {}
            egress:
            - toPorts:
              - ports: [{port: "4000", endPort: 4010, protocol: TCP}]
                serverNames: [one.one.one.one]
              - ports: [{port: "9092"}]
                rules: {kafka: [{topic: orders}], http: [], l7proto: envoy.filters.network.redis, dns: [{}]}
        """)
        assert spec.egress is not None
        assert spec.egress[0].to_ports == (
            PortRule(ports=(CiliumPort("4000", 4010, "TCP"),), server_names=("one.one.one.one",)),
            PortRule(ports=(CiliumPort("9092", 0, "ANY"),), l7=("dns", "kafka", "l7proto"),
                     rules_json='{"dns":[{}],"http":[],"kafka":[{"topic":"orders"}],'
                                '"l7proto":"envoy.filters.network.redis"}'),
        )

    def test_requires_nodes_and_groups(self) -> None:
        """fromRequires, fromNodes and fromGroups map to requires, nodes and the groups as written."""
        spec = first_spec("""
            endpointSelector: {}
            ingress:
            - fromRequires: [{matchLabels: {env: prod}}]
              fromNodes: [{matchExpressions: [{key: node-role.kubernetes.io/control-plane, operator: Exists}]}]
              fromGroups: [{aws: {securityGroupsIds: [sg-1]}}, {aws: {labels: {a: b}}}]
        """)
        assert spec.ingress == (
            CiliumRule(
                requires=(labels(env="prod"),),
                nodes=(LabelSelector(match_expressions=(
                    LabelSelectorRequirement("node-role.kubernetes.io/control-plane", "Exists"),)),),
                groups=2,
                group_entries=('{"aws":{"securityGroupsIds":["sg-1"]}}', '{"aws":{"labels":{"a":"b"}}}'),
            ),
        )


class TestShapes:
    def test_unquoted_port_becomes_its_decimal_string(self) -> None:
        """`port: 80` reads as "80"; a missing protocol is ANY."""
        spec = first_spec("{endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: 80}]}]}]}")
        assert spec.ingress is not None
        assert spec.ingress[0].to_ports[0].ports == (CiliumPort("80", 0, "ANY"),)

    def test_absent_and_empty_lists_differ(self) -> None:
        """`ingress: []` and `fromEndpoints: []` are (), absent ones None."""
        spec = first_spec("{endpointSelector: {}, ingress: [], egress: [{toEndpoints: [], toPorts: []}]}")
        assert spec.ingress == ()
        assert spec.egress == (CiliumRule(endpoints=()),)
        assert spec.egress[0].entities is None

    def test_spec_and_specs_are_one_tuple(self) -> None:
        """`spec` comes first (has_spec), then the `specs` entries in order."""
        policy = convert(cnp({"endpointSelector": {"matchLabels": {"a": "1"}}},
                             specs=[{"endpointSelector": {"matchLabels": {"b": "2"}}}, {"nodeSelector": {}}]))
        assert policy.has_spec
        assert [s.endpoint_selector for s in policy.specs] == [labels(a="1"), labels(b="2"), None]
        assert policy.spec_path(2) == "specs[1]"

    def test_specs_only(self) -> None:
        """Without `spec` the specs are numbered from specs[0] and has_spec is false."""
        policy = convert(cnp(specs=[{"endpointSelector": {}}]))
        assert (policy.has_spec, len(policy.specs), policy.spec_path(0)) == (False, 1, "specs[0]")

    def test_metadata_is_kept(self) -> None:
        """uid, resourceVersion, generation and labels come from metadata; the namespace defaults."""
        policy = convert(cnp({"endpointSelector": {}}, metadata={
            "namespace": None, "uid": "u-1", "resourceVersion": "7", "generation": 3, "labels": {"team": "a"}}))
        assert (policy.namespace, policy.uid, policy.resource_version, policy.generation) == (
            "default", "u-1", "7", 3)
        assert policy.labels == {"team": "a"}

    def test_ingress_reads_only_from_fields(self) -> None:
        """An ingress rule ignores to* peer fields (the API server prunes them)."""
        spec = first_spec("{endpointSelector: {}, ingress: [{toEndpoints: [{}], toFQDNs: [{matchName: a}]}]}")
        assert spec.ingress == (CiliumRule(),)

    def test_ccnp_ignores_a_namespace(self) -> None:
        """A CCNP is cluster-scoped: metadata.namespace is not kept."""
        policy = convert(cnp({"endpointSelector": {}}, kind="CiliumClusterwideNetworkPolicy"))
        assert (policy.namespace, policy.key) == ("", "p")

    @pytest.mark.parametrize("version", ["cilium.io/v2", "cilium.io/v2alpha1"])
    def test_cidr_group_versions(self, version: str) -> None:
        """CiliumCIDRGroup converts from v2 and v2alpha1, cluster-scoped, with its externalCIDRs."""
        group = object_from_dict({"apiVersion": version, "kind": "CiliumCIDRGroup",
                                  "metadata": {"name": "partners", "labels": {"zone": "eu"}, "uid": "g"},
                                  "spec": {"externalCIDRs": ["203.0.113.0/24", "2001:db8::/32"]}})
        assert group == CiliumCIDRGroup("partners", ("203.0.113.0/24", "2001:db8::/32"), {"zone": "eu"}, "g")

    def test_other_cilium_kinds_are_not_supported(self) -> None:
        """Only the policy kinds are tracked: CiliumEndpoint and v2alpha1 CNP are skipped."""
        assert not is_supported({"apiVersion": "cilium.io/v2", "kind": "CiliumEndpoint"})
        assert not is_supported({"apiVersion": "cilium.io/v2alpha1", "kind": "CiliumNetworkPolicy"})


class TestErrors:
    @pytest.mark.parametrize(
        ("obj", "message"),
        [
            (cnp([]), "CiliumNetworkPolicy shop/p: spec: expected an object, got list"),
            (cnp(specs={"endpointSelector": {}}), "CiliumNetworkPolicy shop/p: specs: expected a list"),
            (cnp({"ingress": {"fromEndpoints": []}}), "shop/p: spec.ingress: expected a list, got dict"),
            (cnp({"egress": [{"toEndpoints": [{"matchLabels": {"app": 1}}]}]}),
             "shop/p: spec.egress[0].toEndpoints[0].matchLabels.app: expected a string, got int 1"),
            (cnp(specs=[{}, {"ingress": [{"toPorts": [{"ports": [{"port": True}]}]}]}]),
             "shop/p: specs[1].ingress[0].toPorts[0].ports[0].port: expected an integer or a string"),
            (cnp({"egress": [{"toPorts": [{"ports": [{"endPort": "90"}]}]}]}),
             "spec.egress[0].toPorts[0].ports[0].endPort: expected an integer, got str '90'"),
            (cnp({"egress": [{"icmps": [{"fields": [{"family": "IPv6"}]}]}]}),
             "spec.egress[0].icmps[0].fields[0].type: required field is missing"),
            (cnp({"enableDefaultDeny": {"ingress": "yes"}}),
             "spec.enableDefaultDeny.ingress: expected true or false, got str 'yes'"),
            (cnp({"egress": [{"toServices": [{"k8sService": {"namespace": "a"}, "k8sServiceSelector": {}}]}]}),
             "spec.egress[0].toServices[0]: k8sService and k8sServiceSelector name different namespaces"),
            (cnp({"egress": [{"toServices": [{"k8sServiceSelector": {"namespace": "a"}}]}]}),
             "spec.egress[0].toServices[0].k8sServiceSelector.selector: required field is missing"),
            (cnp({"egress": [{"toPorts": [{"rules": {"http": {"path": "/"}}}]}]}),
             "spec.egress[0].toPorts[0].rules.http: expected a list, got dict"),
            (cnp({"ingressDeny": [{"fromCIDRSet": [{"cidr": 10}]}]}),
             "spec.ingressDeny[0].fromCIDRSet[0].cidr: expected a string, got int 10"),
            (cnp({}, kind="CiliumClusterwideNetworkPolicy", metadata={"name": "c"},
                 specs=[{"nodeSelector": []}]),
             "CiliumClusterwideNetworkPolicy c: specs[0].nodeSelector: expected an object, got list"),
            ({"apiVersion": "cilium.io/v2", "kind": "CiliumCIDRGroup", "metadata": {"name": "g"}, "spec": {}},
             "CiliumCIDRGroup g: spec.externalCIDRs: required field is missing"),
            (cnp({}, metadata={"name": None}), "CiliumNetworkPolicy: metadata.name: required field is missing"),
            (cnp({"egress": [{"toPorts": [{"rules": {"http": [{"path": datetime.date(2024, 1, 2)}]}}]}]}),
             "spec.egress[0].toPorts[0].rules: expected JSON values"),
            (cnp({"egress": [{"toGroups": [{"aws": {"region": float("nan")}}]}]}),
             "spec.egress[0].toGroups[0]: expected JSON values"),
        ],
        ids=["spec-list", "specs-dict", "section-dict", "label-int", "port-bool", "endport-str", "icmp-type",
             "default-deny-str", "service-both", "service-no-selector", "http-dict", "cidr-int",
             "ccnp-selector", "ccg-cidrs", "no-name", "rules-date", "groups-nan"],
    )
    def test_structural_problems_name_object_and_path(self, obj: dict[str, Any], message: str) -> None:
        """Wrong types and missing required fields raise ManifestError naming the file, object and field."""
        error = error_of(obj)
        assert message in error
        assert error.startswith("policies.yaml:3")


class TestManifests:
    def test_kubectl_get_cnp_output_loads(self) -> None:
        """`kubectl get cnp -A -o yaml` (a v1 List with status and server metadata) loads every policy."""
        objects = load_manifests([str(FIXTURES / "kubectl-get-cnp.yaml")])
        assert [(type(o).__name__, o.key) for o in objects if isinstance(o, CiliumNetworkPolicy)] == [
            ("CiliumNetworkPolicy", "shop/api-from-web"), ("CiliumNetworkPolicy", "shop/dns-and-fqdn")]
        first = objects[0]
        assert isinstance(first, CiliumNetworkPolicy)
        assert (first.generation, first.resource_version) == (2, "48213")
        assert first.specs[0].ingress is not None
        assert first.specs[0].ingress[0].to_ports[0].l7 == ("http",)

    def test_typed_list_items_take_kind_from_the_list(self, tmp_path: Path) -> None:
        """A CiliumClusterwideNetworkPolicyList's items may omit kind/apiVersion, as API responses do."""
        path = tmp_path / "ccnp.yaml"
        items = [{"metadata": {"name": "a"}, "spec": {"endpointSelector": {}}}]
        path.write_text(yaml.safe_dump(
            {"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicyList", "items": items}))
        [policy] = load_manifests([str(path)])
        assert isinstance(policy, CiliumNetworkPolicy)
        assert (policy.kind, policy.key) == (CiliumKind.CCNP, "a")

    def test_manifest_error_names_the_item_line(self, tmp_path: Path) -> None:
        """A bad CNP inside a List is reported at the line where its item starts."""
        path = tmp_path / "cnp.yaml"
        path.write_text("apiVersion: v1\nkind: List\nitems:\n- apiVersion: cilium.io/v2\n"
                        "  kind: CiliumNetworkPolicy\n  metadata: {name: x, namespace: shop}\n"
                        "  spec: {ingress: 3}\n")
        with pytest.raises(ManifestError, match=r"cnp.yaml:4: CiliumNetworkPolicy shop/x: spec.ingress"):
            load_manifests([str(path)])


class TestClusterEvents:
    def test_cilium_kinds_are_read_from_event_lines(self, tmp_path: Path) -> None:
        """`--cluster-events` lines carry CNPs, CCNPs and CIDR groups, timestamped, in file order."""
        policy = convert(cnp({"endpointSelector": {}, "egress": [{"toEntities": ["world"]}]}))
        group = CiliumCIDRGroup("partners", ("203.0.113.0/24",))
        path = tmp_path / "events.jsonl"
        with path.open("w") as handle:
            write_cluster_event(handle, 1_000, ChangeType.ADDED, object_to_dict(policy))
            write_cluster_event(handle, 2_000, ChangeType.DELETED, object_to_dict(group))
            old = {**cidr_group_v2alpha1(), "spec": {"externalCIDRs": []}}
            write_cluster_event(handle, 3_000, ChangeType.ADDED, old)
        changes = load_cluster_events(str(path))
        assert [(c.time_ns, c.type, c.obj) for c in changes] == [
            (1_000, ChangeType.ADDED, policy), (2_000, ChangeType.DELETED, group),
            (3_000, ChangeType.ADDED, CiliumCIDRGroup("old"))]

    def test_bad_cnp_line_names_file_line_and_field(self, tmp_path: Path) -> None:
        """A structurally broken CNP in an event line is counted as a bad line naming file:line and field."""
        path = tmp_path / "events.jsonl"
        with path.open("w") as handle:
            write_cluster_event(handle, 1_000, ChangeType.ADDED, cnp({"ingress": "all"}))
        stats = EventFileStats()
        assert list(iter_cluster_events(str(path), stats)) == []
        assert stats.errors == [
            f"{path}:1: CiliumNetworkPolicy shop/p: spec.ingress: expected a list, got str 'all'"]


def cidr_group_v2alpha1() -> dict[str, Any]:
    return {"apiVersion": "cilium.io/v2alpha1", "kind": "CiliumCIDRGroup", "metadata": {"name": "old"}}
