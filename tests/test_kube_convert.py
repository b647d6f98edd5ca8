"""Raw Kubernetes objects to model types: pods, namespaces, nodes, policies of every shape, errors."""

from __future__ import annotations

from typing import Any

import pytest

from auditor.errors import ManifestError
from auditor.kube.convert import is_supported, object_from_dict
from auditor.kube.export import object_to_dict
from auditor.model.k8s import (
    ContainerPort,
    IPBlock,
    LabelSelector,
    LabelSelectorRequirement,
    Namespace,
    NetworkPolicy,
    Node,
    Peer,
    Pod,
    PolicyDirection,
    PolicyPort,
    Probe,
    ProbeKind,
    Rule,
    WorkloadRef,
)


def pod(**spec_and_more: Any) -> dict[str, Any]:
    metadata = {"name": "api-1", "namespace": "shop", **spec_and_more.pop("metadata", {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, **spec_and_more}


def policy(spec: dict[str, Any]) -> NetworkPolicy:
    obj = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": "shop"},
        "spec": spec,
    }
    converted = object_from_dict(obj)
    assert isinstance(converted, NetworkPolicy)
    return converted


def converted_pod(obj: dict[str, Any]) -> Pod:
    converted = object_from_dict(obj)
    assert isinstance(converted, Pod)
    return converted


def owned(kind: str, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return pod(
        metadata={
            "labels": labels or {},
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": "worker-1"},
                {"apiVersion": "apps/v1", "kind": kind, "name": name, "controller": True},
            ],
        }
    )


class TestPodConversion:
    def test_ips_prefer_pod_ips_and_keep_dual_stack(self) -> None:
        """status.podIPs gives every address; podIP alone is used when podIPs is absent."""
        dual = pod(status={"podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]})
        single = pod(status={"podIP": "10.0.0.2"})
        assert converted_pod(dual).ips == ("10.0.0.1", "fd00::1")
        assert converted_pod(single).ips == ("10.0.0.2",)

    def test_placement_phase_and_host_network(self) -> None:
        """nodeName, hostIP, phase and hostNetwork are kept."""
        obj = pod(
            spec={"nodeName": "worker-1", "hostNetwork": True},
            status={"hostIP": "192.168.1.5", "phase": "Running"},
        )
        converted = converted_pod(obj)
        assert (converted.node_name, converted.host_ip, converted.phase) == (
            "worker-1",
            "192.168.1.5",
            "Running",
        )
        assert converted.host_network is True

    @pytest.mark.parametrize(
        ("conditions", "ready"),
        [
            ([{"type": "Ready", "status": "True"}], True),
            ([{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}], False),
            ([{"type": "PodScheduled", "status": "True"}], None),
            (None, None),
        ],
    )
    def test_readiness_from_ready_condition(self, conditions: Any, ready: bool | None) -> None:
        """Ready is the Ready condition's status; None when the pod reports none."""
        assert converted_pod(pod(status={"conditions": conditions})).ready is ready

    def test_container_ports_with_names_protocols_and_containers(self) -> None:
        """Ports of containers and sidecar init containers keep name, protocol (TCP default), container."""
        obj = pod(
            spec={
                "containers": [
                    {"name": "app", "ports": [{"containerPort": 8080, "name": "http"}]},
                    {"name": "dns", "ports": [{"containerPort": 53, "name": "dns", "protocol": "UDP"}]},
                ],
                "initContainers": [
                    {"name": "proxy", "restartPolicy": "Always", "ports": [{"containerPort": 15001}]}
                ],
            }
        )
        assert converted_pod(obj).container_ports == (
            ContainerPort(8080, "TCP", "http", "app"),
            ContainerPort(53, "UDP", "dns", "dns"),
            ContainerPort(15001, "TCP", "", "proxy"),
        )

    def test_network_probes_with_named_and_numeric_ports(self) -> None:
        """httpGet/tcpSocket/grpc probes are kept with their port; exec probes are not network probes."""
        container = {
            "name": "app",
            "livenessProbe": {"grpc": {"port": 9091}},
            "readinessProbe": {"httpGet": {"port": "http", "path": "/ready"}},
            "startupProbe": {"tcpSocket": {"port": 8080}},
        }
        sidecar = {"name": "db", "readinessProbe": {"exec": {"command": ["true"]}}}
        probes = converted_pod(pod(spec={"containers": [container, sidecar]})).probes
        assert probes == (
            Probe(ProbeKind.LIVENESS, "grpc", 9091, "app"),
            Probe(ProbeKind.READINESS, "httpGet", "http", "app", "/ready"),
            Probe(ProbeKind.STARTUP, "tcpSocket", 8080, "app"),
        )

    @pytest.mark.parametrize(
        ("kind", "name", "labels", "workload"),
        [
            (
                "ReplicaSet",
                "web-7d9f8b6c5d",
                {"pod-template-hash": "7d9f8b6c5d"},
                WorkloadRef("Deployment", "web"),
            ),
            ("ReplicaSet", "web-7d9f8b6c5d", {}, WorkloadRef("Deployment", "web")),
            ("ReplicaSet", "web-api-frontend", {}, WorkloadRef("ReplicaSet", "web-api-frontend")),
            ("ReplicaSet", "web-abc", {"pod-template-hash": "zzz"}, WorkloadRef("ReplicaSet", "web-abc")),
            ("Job", "report-29400480", {}, WorkloadRef("CronJob", "report")),
            ("Job", "migrate-42", {}, WorkloadRef("Job", "migrate-42")),
            ("StatefulSet", "db", {}, WorkloadRef("StatefulSet", "db")),
            ("DaemonSet", "cilium", {}, WorkloadRef("DaemonSet", "cilium")),
        ],
    )
    def test_owner_workload(self, kind: str, name: str, labels: dict[str, str], workload: WorkloadRef) -> None:
        """The controller owner resolves ReplicaSet->Deployment and cron Job->CronJob; others stay."""
        assert converted_pod(owned(kind, name, labels)).workload == workload

    def test_bare_pod_has_no_workload(self) -> None:
        """A pod without a controller ownerReference has no workload and is named by itself."""
        converted = converted_pod(pod())
        assert converted.workload is None
        assert converted.workload_name == "api-1"

    def test_metadata_bookkeeping_is_kept(self) -> None:
        """uid, resourceVersion and labels come from metadata."""
        converted = converted_pod(
            pod(metadata={"uid": "u-1", "resourceVersion": "77", "labels": {"app": "api"}})
        )
        assert (converted.uid, converted.resource_version, dict(converted.labels)) == (
            "u-1",
            "77",
            {"app": "api"},
        )

    def test_missing_namespace_means_default(self) -> None:
        """A namespaced object without metadata.namespace lands in `default`, as kubectl apply does."""
        obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "lonely"}}
        assert converted_pod(obj).namespace == "default"


class TestClusterScopedConversion:
    def test_namespace_gets_metadata_name_label(self) -> None:
        """A Namespace always carries kubernetes.io/metadata.name, as the API server sets it."""
        converted = object_from_dict({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
        assert isinstance(converted, Namespace)
        assert converted.labels == {"kubernetes.io/metadata.name": "shop"}

    def test_node_keeps_internal_and_external_addresses(self) -> None:
        """Only InternalIP and ExternalIP addresses are node addresses, in order."""
        obj = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "worker-1"},
            "status": {
                "addresses": [
                    {"type": "Hostname", "address": "worker-1"},
                    {"type": "InternalIP", "address": "192.168.1.5"},
                    {"type": "ExternalIP", "address": "203.0.113.5"},
                ]
            },
        }
        converted = object_from_dict(obj)
        assert isinstance(converted, Node)
        assert converted.addresses == ("192.168.1.5", "203.0.113.5")


class TestPolicyConversion:
    def test_absent_and_empty_rule_lists_differ(self) -> None:
        """Absent ingress/egress are None; empty lists are () (deny all for a declared direction)."""
        converted = policy({"podSelector": {}, "egress": [], "policyTypes": ["Ingress", "Egress"]})
        assert converted.ingress is None
        assert converted.egress == ()
        assert converted.policy_types == (PolicyDirection.INGRESS, PolicyDirection.EGRESS)

    @pytest.mark.parametrize("rule", [{}, {"from": None}, {"from": []}])
    def test_absent_null_and_empty_peers_mean_all(self, rule: dict[str, Any]) -> None:
        """`from` absent, null or [] all convert to no peers (every source)."""
        assert policy({"ingress": [rule]}).ingress == (Rule(),)

    def test_missing_spec_selects_all_pods(self) -> None:
        """No podSelector is the empty selector; policyTypes stay undeclared for the engine to default."""
        converted = policy({})
        assert converted.pod_selector == LabelSelector()
        assert converted.policy_types == ()

    def test_peer_selectors_and_ipblock(self) -> None:
        """Pod and namespace selectors in one peer stay together; ipBlock keeps its except list."""
        converted = policy(
            {
                "egress": [
                    {
                        "to": [
                            {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "db"}}},
                            {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                        ]
                    }
                ]
            }
        )
        assert converted.egress == (
            Rule(
                peers=(
                    Peer(pod_selector=LabelSelector({"app": "db"}), namespace_selector=LabelSelector()),
                    Peer(ip_block=IPBlock("10.0.0.0/8", ("10.1.0.0/16",))),
                )
            ),
        )

    def test_ports_default_protocol_named_ports_and_ranges(self) -> None:
        """Ports default to TCP, keep names and numbers as written, and keep endPort."""
        ports = [{"port": "http"}, {"protocol": "UDP", "port": 53}, {"port": 32000, "endPort": 32768}, {}]
        converted = policy({"ingress": [{"ports": ports}]})
        assert converted.ingress is not None
        assert converted.ingress[0].ports == (
            PolicyPort("TCP", "http"),
            PolicyPort("UDP", 53),
            PolicyPort("TCP", 32000, 32768),
            PolicyPort("TCP", None),
        )

    def test_match_expressions_kept_verbatim(self) -> None:
        """Operators are not validated here: even an unknown one is kept for the engine to reject."""
        selector = {
            "matchExpressions": [{"key": "tier", "operator": "Exists"}, {"key": "a", "operator": "Near"}]
        }
        assert policy({"podSelector": selector}).pod_selector.match_expressions == (
            LabelSelectorRequirement("tier", "Exists"),
            LabelSelectorRequirement("a", "Near"),
        )


class TestConversionErrors:
    @pytest.mark.parametrize(
        ("obj", "message"),
        [
            (pod(metadata={"name": ""}), "Pod: metadata.name: required field is missing"),
            (
                pod(metadata={"labels": {"v": 1}}),
                "Pod shop/api-1: metadata.labels.v: expected a string, got int 1",
            ),
            (
                pod(spec={"containers": [{"name": "c", "ports": [{"containerPort": "http"}]}]}),
                "Pod shop/api-1: spec.containers[0].ports[0].containerPort: expected an integer, got str",
            ),
            (
                pod(spec={"containers": [{"name": "c", "readinessProbe": {"httpGet": {"port": 1.5}}}]}),
                "spec.containers[0].readinessProbe.httpGet.port: expected an integer or a string, got float",
            ),
            (pod(spec=[]), "Pod shop/api-1: spec: expected an object, got list []"),
        ],
    )
    def test_structural_problems_name_object_and_field(self, obj: dict[str, Any], message: str) -> None:
        """Wrong types and missing names raise ManifestError naming where, the object and the field."""
        with pytest.raises(ManifestError, match=r"^pods\.yaml:12: ") as caught:
            object_from_dict(obj, where="pods.yaml:12")
        assert message in str(caught.value)
        assert (caught.value.path, caught.value.line) == ("pods.yaml", 12)

    def test_policy_port_must_be_int_or_string(self) -> None:
        """A NetworkPolicy port that is neither an integer nor a name is a ManifestError."""
        with pytest.raises(ManifestError, match=r"NetworkPolicy shop/p: spec.ingress\[0\].ports\[0\].port"):
            policy({"ingress": [{"ports": [{"port": True}]}]})

    def test_unknown_policy_type_is_an_error(self) -> None:
        """policyTypes other than Ingress/Egress cannot be represented and are rejected."""
        with pytest.raises(ManifestError, match=r"spec.policyTypes\[0\]: unknown policy type 'ingress'"):
            policy({"policyTypes": ["ingress"]})

    def test_unsupported_kind(self) -> None:
        """is_supported says which objects convert; converting another kind is an error."""
        deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
        assert not is_supported(deployment)
        assert is_supported({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy"})
        with pytest.raises(ManifestError, match="unsupported object kind 'apps/v1/Deployment'"):
            object_from_dict(deployment)


class TestPodServiceAccount:
    def test_service_account_name(self) -> None:
        """spec.serviceAccountName becomes Pod.service_account."""
        pod = object_from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "s"},
                                "spec": {"serviceAccountName": "api", "serviceAccount": "old"}})
        assert isinstance(pod, Pod)
        assert pod.service_account == "api"

    def test_deprecated_service_account_is_the_fallback(self) -> None:
        """Without serviceAccountName the deprecated spec.serviceAccount is read; neither leaves ""."""
        old = object_from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
                                "spec": {"serviceAccount": "legacy"}})
        bare = object_from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"}})
        assert isinstance(old, Pod)
        assert isinstance(bare, Pod)
        assert (old.service_account, bare.service_account) == ("legacy", "")

    def test_service_account_round_trips(self) -> None:
        """The exported pod carries serviceAccountName and converts back equal."""
        pod = Pod("shop", "api-1", service_account="api")
        assert object_to_dict(pod)["spec"]["serviceAccountName"] == "api"
        assert object_from_dict(object_to_dict(pod)) == pod
