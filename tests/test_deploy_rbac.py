"""auditor's RBAC is read-only: get/list/watch on namespaces, pods, nodes, services, endpointslices,
networkpolicies and Cilium's CRDs."""

from __future__ import annotations

import pytest
import yaml

from auditor.kube.client import DEFAULT_RESOURCES, RESOURCES
from tests.deploy_support import BASE, NAMESPACE, OVERLAYS, Doc, by_kind, one, render, source_documents

ALLOWED_VERBS = {"get", "list", "watch"}
CILIUM = {("cilium.io", "ciliumnetworkpolicies"), ("cilium.io", "ciliumclusterwidenetworkpolicies"),
          ("cilium.io", "ciliumcidrgroups")}
SERVICES = {("", "services"), ("discovery.k8s.io", "endpointslices")}
ALLOWED = {("", "namespaces"), ("", "pods"), ("", "nodes"), ("networking.k8s.io", "networkpolicies"), *SERVICES,
           *CILIUM}


def rbac_violations(role: Doc) -> list[str]:
    """Every way a ClusterRole exceeds read-only access to the nine resources."""
    problems = []
    for index, rule in enumerate(role.get("rules", [])):
        where = f"rule {index}"
        extra_verbs = set(rule.get("verbs", [])) - ALLOWED_VERBS
        if extra_verbs:
            problems.append(f"{where}: verbs {sorted(extra_verbs)}")
        for key in ("nonResourceURLs", "resourceNames"):
            if key in rule:
                problems.append(f"{where}: {key} present")
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                if (group, resource) not in ALLOWED:
                    problems.append(f"{where}: resource {group or 'core'}/{resource}")
    return problems


class TestClusterRole:
    def test_base_clusterrole_is_read_only(self) -> None:
        """The shipped ClusterRole grants only get/list/watch on the nine resources."""
        role = yaml.safe_load((BASE / "clusterrole.yaml").read_text())
        assert rbac_violations(role) == []

    def test_base_clusterrole_covers_all_nine(self) -> None:
        """The ClusterRole grants get, list and watch on each of the nine resources."""
        role = yaml.safe_load((BASE / "clusterrole.yaml").read_text())
        granted = {
            (group, resource, verb)
            for rule in role["rules"]
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
        }
        assert granted == {(g, r, v) for g, r in ALLOWED for v in ALLOWED_VERBS}

    @pytest.mark.parametrize(
        "rule",
        [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "create"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["endpoints"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["endpointslices"], "verbs": ["list"]},
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get"]},
            {"apiGroups": ["cilium.io"], "resources": ["ciliumendpoints"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["ciliumnetworkpolicies"], "verbs": ["get"]},
            {"apiGroups": ["cilium.io"], "resources": ["ciliumnetworkpolicies"], "verbs": ["update"]},
            {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
        ],
        ids=["create", "secrets", "endpoints", "endpointslices-wrong-group",
             "wildcard", "subresource", "cilium-endpoints", "cilium-wrong-group",
             "cilium-update", "non-resource"],
    )
    def test_check_rejects_broader_rules(self, rule: Doc) -> None:
        """The check fails on an extra verb, resource, wildcard, subresource or URL."""
        assert rbac_violations({"rules": [rule]})

    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_rendered_rbac_is_one_read_only_clusterrole(self, overlay: str) -> None:
        """Each overlay renders exactly one ClusterRole, read-only, and no namespaced Role."""
        docs = render(overlay)
        roles = by_kind(docs, "ClusterRole")
        assert len(roles) == 1
        assert rbac_violations(roles[0]) == []
        assert by_kind(docs, "Role") == []
        assert by_kind(docs, "RoleBinding") == []

    def test_no_other_rbac_anywhere_in_deploy(self) -> None:
        """No manifest under deploy/kubernetes defines another Role or ClusterRole."""
        roles = [(p.name, d["metadata"]["name"]) for p, d in source_documents() if d["kind"].endswith("Role")]
        assert roles == [("clusterrole.yaml", "auditor")]


class TestBinding:
    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_binding_grants_role_to_auditor_serviceaccount(self, overlay: str) -> None:
        """The ClusterRoleBinding binds the role to the auditor ServiceAccount only."""
        docs = render(overlay)
        binding = one(docs, "ClusterRoleBinding", "auditor")
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                      "name": "auditor"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "auditor", "namespace": NAMESPACE}]

    @pytest.mark.parametrize("overlay", OVERLAYS)
    def test_pods_use_auditor_serviceaccount(self, overlay: str) -> None:
        """The workload runs as the bound ServiceAccount."""
        docs = render(overlay)
        workloads = [d for d in docs if d["kind"] in {"Deployment", "DaemonSet", "StatefulSet"}]
        assert [w["spec"]["template"]["spec"]["serviceAccountName"] for w in workloads] == ["auditor"]


class TestCiliumAccess:
    def test_every_watched_resource_is_granted(self) -> None:
        """Each resource the live inventory lists by default has get/list/watch in its API group."""
        role = yaml.safe_load((BASE / "clusterrole.yaml").read_text())
        granted = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
                   if set(rule["verbs"]) == ALLOWED_VERBS}
        wanted = {(RESOURCES[name].api_version.rpartition("/")[0], name) for name in DEFAULT_RESOURCES}
        assert wanted == granted
