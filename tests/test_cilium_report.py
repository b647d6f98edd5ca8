"""The report's posture, controls and evidence with Cilium's policy kinds (synthetic manifests)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from auditor.kube.convert import object_from_dict
from auditor.model.decision import CNP_KIND
from auditor.model.k8s import KubeObject, Namespace
from auditor.report import json_format, markdown, rows
from auditor.report.data import NamespaceReport, PolicyReport, ReportData
from auditor.report.usage import RuleUsage
from tests.report_support import SCHEMA, deny_all, pod, report, state

WEB, DB, BATCH = pod("shop", "web-1", "web"), pod("shop", "db-1", "db"), pod("legacy", "batch-1", "batch")
NAMESPACES = (Namespace("shop"), Namespace("legacy"))


def cnp(name: str, spec: dict[str, Any], ns: str = "shop") -> KubeObject:
    return object_from_dict({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                             "metadata": {"name": name, "namespace": ns, "resourceVersion": "5"}, "spec": spec})


def ccnp(name: str, spec: dict[str, Any]) -> KubeObject:
    return object_from_dict({"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
                             "metadata": {"name": name, "resourceVersion": "9"}, "spec": spec})


CNP_DENY = cnp("deny-all", {"endpointSelector": {}, "ingress": [{}], "egress": [{}]})
CCNP_DENY = ccnp("deny-all", {"endpointSelector": {}, "ingress": [{}], "egress": [{}]})
DB_FROM_WEB = cnp("db-from-web", {
    "endpointSelector": {"matchLabels": {"app": "db"}},
    "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "web"}}],
                 "toPorts": [{"ports": [{"port": "5432", "protocol": "TCP"}]}]}],
    "egressDeny": [{"toEntities": ["world"]}]})
WEB_ONLY = ccnp("web-only", {"endpointSelector": {"matchLabels": {"app": "web"}}, "egress": [{}]})


def build(*objects: KubeObject, **kw: Any) -> ReportData:
    return report(st=state(*NAMESPACES, WEB, DB, BATCH, *objects), **kw)


def ns_of(data: ReportData, name: str) -> NamespaceReport:
    return next(ns for ns in data.namespaces if ns.name == name)


def policy_of(data: ReportData, ns: str, name: str) -> PolicyReport:
    return next(p for p in ns_of(data, ns).policies if p.name == name)


def result(data: ReportData, control: str, namespace: str) -> tuple[str, str]:
    found = next(r for r in data.control_results if r.control_id == control and r.namespace == namespace)
    return found.status, found.evidence


class TestPosture:
    def test_cnp_default_deny_isolates_and_is_listed(self) -> None:
        """A CNP default deny isolates the namespace's pods and is its default deny both ways, by ref."""
        shop = ns_of(build(CNP_DENY), "shop")
        assert (shop.ingress_isolated, shop.egress_isolated, shop.unprotected) == (2, 2, ())
        assert shop.default_deny_egress == ("CiliumNetworkPolicy shop/deny-all",)

    def test_cnp_listed_with_kind_selector_and_pods(self) -> None:
        """A CNP is listed in its namespace with its kind, endpointSelector, selected pods and directions."""
        policy = policy_of(build(DB_FROM_WEB), "shop", "db-from-web")
        assert (policy.kind, policy.key, policy.selector, policy.selected_pods, policy.directions) == (
            CNP_KIND, "CiliumNetworkPolicy shop/db-from-web", "app=db", ("db-1",), ("Ingress", "Egress"))

    def test_cilium_rules_have_paths_and_text(self) -> None:
        """Each Cilium rule is listed with its path and a summary in Cilium's words."""
        rules = policy_of(build(DB_FROM_WEB), "shop", "db-from-web").rules
        assert [(r.path, r.summary) for r in rules] == [
            ("ingress[0]", "from endpoints app=web on TCP/5432"),
            ("egressDeny[0]", "deny to entity world on any port")]

    def test_empty_rule_admits_nobody(self) -> None:
        """A default deny's empty rule (`ingress: [{}]`) reads as admitting nobody."""
        assert [r.summary for r in policy_of(build(CNP_DENY), "shop", "deny-all").rules] == [
            "from nobody", "to nobody"]

    def test_ccnp_listed_where_it_selects_pods(self) -> None:
        """A CCNP is listed in the namespaces where it selects pods and not elsewhere."""
        data = build(WEB_ONLY)
        listed = {ns.name: [p.key for p in ns.policies] for ns in data.namespaces}
        assert listed == {"shop": ["CiliumClusterwideNetworkPolicy web-only"], "legacy": []}

    def test_ccnp_default_deny_listed_in_an_empty_namespace(self) -> None:
        """A CCNP selecting every pod applies to a namespace without pods yet: listed, and its default deny."""
        data = report(st=state(Namespace("empty"), CCNP_DENY))
        (empty,) = data.namespaces
        assert ([p.key for p in empty.policies], empty.has_default_deny) == (
            ["CiliumClusterwideNetworkPolicy deny-all"], True)

    def test_cnp_namespace_without_namespace_object_is_shown(self) -> None:
        """A namespace known only from a CNP in it is part of the posture."""
        data = report(st=state(cnp("lonely", {"endpointSelector": {}, "ingress": [{}]}, ns="other")))
        assert [ns.name for ns in data.namespaces] == ["other"]

    def test_enforcement_always_is_a_default_deny(self) -> None:
        """Under policy-enforcement `always` every namespace has a default deny and every pod is isolated."""
        legacy = ns_of(build(policy_enforcement="always"), "legacy")
        assert (legacy.egress_isolated, legacy.default_deny_ingress) == (1, ("policy-enforcement=always",))


class TestControls:
    def test_cnp_default_deny_passes_nsa(self) -> None:
        """NSA/CISA default deny passes in a namespace all of whose pods a CNP default deny isolates."""
        status, evidence = result(build(CNP_DENY), "NSA-CISA-NP-DEFAULT-DENY", "shop")
        assert (status, evidence) == ("pass", "ingress: CiliumNetworkPolicy shop/deny-all; egress: "
                                      "CiliumNetworkPolicy shop/deny-all; all 2 pods isolated both ways")

    def test_ccnp_default_deny_passes_everywhere(self) -> None:
        """A CCNP default deny passes NSA/CISA default deny in every namespace with pods."""
        data = build(CCNP_DENY)
        statuses = [result(data, "NSA-CISA-NP-DEFAULT-DENY", ns)[0] for ns in ("shop", "legacy")]
        assert statuses == ["pass", "pass"]

    def test_pod_selecting_ccnp_is_no_default_deny(self) -> None:
        """A CCNP selecting app=web only is no default deny: NSA/CISA fails in Cilium's words."""
        status, evidence = result(build(WEB_ONLY), "NSA-CISA-NP-DEFAULT-DENY", "shop")
        assert (status, evidence.startswith("no default-deny policy for ingress and egress")) == ("fail", True)

    def test_cis_passes_with_a_cnp_only(self) -> None:
        """CIS 5.3.2 passes in a namespace whose only policy is a CNP, naming it by kind."""
        assert result(build(DB_FROM_WEB), "CIS-5.3.2", "shop") == ("pass", "CiliumNetworkPolicies: db-from-web")

    def test_cis_lists_every_kind(self) -> None:
        """CIS 5.3.2 evidence groups the namespace's policies by kind, NetworkPolicies first."""
        data = build(deny_all("shop"), DB_FROM_WEB, WEB_ONLY)
        assert result(data, "CIS-5.3.2", "shop")[1] == (
            "NetworkPolicies: default-deny; CiliumNetworkPolicies: db-from-web; "
            "CiliumClusterwideNetworkPolicies: web-only")

    def test_cis_fails_where_no_kind_applies(self) -> None:
        """CIS 5.3.2 fails in a namespace no policy of any kind applies to, saying so."""
        status, evidence = result(build(WEB_ONLY), "CIS-5.3.2", "legacy")
        assert (status, evidence) == ("fail", "no NetworkPolicy or Cilium policy applies in the namespace; "
                                      "nothing restricts its 1 pod")

    def test_control_wording_counts_every_kind(self) -> None:
        """With Cilium policies listed, the controls say how each kind counts."""
        cis = next(c for c in build(CNP_DENY).controls if c.id == "CIS-5.3.2")
        assert "CiliumClusterwideNetworkPolicy" in cis.how_checked

    def test_knp_only_wording_unchanged(self) -> None:
        """Without Cilium policies, the controls keep the NetworkPolicy-only wording."""
        cis = next(c for c in build(deny_all("shop")).controls if c.id == "CIS-5.3.2")
        assert cis.how_checked == "pass when the namespace has at least one valid NetworkPolicy"


class TestTotalsAndEvidence:
    def test_ccnp_counted_once(self) -> None:
        """A CCNP listed in two namespaces counts once; totals are given per kind."""
        summary = build(CCNP_DENY, DB_FROM_WEB, deny_all("legacy")).summary
        assert (summary.policies, summary.policies_by_kind) == (3, (
            ("NetworkPolicy", 1), ("CiliumNetworkPolicy", 1), ("CiliumClusterwideNetworkPolicy", 1)))

    def test_summary_table_rows_per_kind(self) -> None:
        """The summary table shows the total and a row per kind present."""
        data = build(CCNP_DENY, DB_FROM_WEB)
        counts = [r for r in rows.summary(data)[1] if "Polic" in str(r[0])]
        assert counts == [("Policies (every kind)", 2), ("CiliumNetworkPolicies", 1),
                          ("CiliumClusterwideNetworkPolicies", 1)]

    def test_hits_by_kind(self) -> None:
        """Flows counted for a CNP reach its policy entry, and per-policy hits list it once."""
        data = build(DB_FROM_WEB, policy_hits={("shop", "db-from-web", CNP_KIND): (4, 1),
                                               ("shop", "db-from-web", "NetworkPolicy"): (99, 99)})
        policy = policy_of(data, "shop", "db-from-web")
        assert (policy.allowed, policy.dropped) == (4, 1)
        assert [(h.policy, h.allowed) for h in data.evidence.policy_hits] == [
            ("CiliumNetworkPolicy shop/db-from-web", 4)]

    def test_rule_usage_by_path(self) -> None:
        """Rule usage is read by rule path; a Cilium rule no flow matched is a removal candidate by path."""
        usage = RuleUsage(rules={("shop", "db-from-web", "Ingress", "ingress[0]", CNP_KIND): 3})
        data = build(DB_FROM_WEB, usage=usage)
        assert [r.matched for r in policy_of(data, "shop", "db-from-web").rules] == [3, 0]
        assert data.evidence.unused_rules == ("CiliumNetworkPolicy shop/db-from-web egressDeny[0]",)

    def test_ccnp_hits_not_attributed_to_a_namespace(self) -> None:
        """NSA/CISA CNI evidence counts only the namespace's own policies' admitted flows, not a CCNP's."""
        data = build(WEB_ONLY, policy_hits={("", "web-only", "CiliumClusterwideNetworkPolicy"): (7, 0)})
        assert result(data, "NSA-CISA-NP-CNI", "shop")[0] == "unknown"


class TestInvalid:
    def test_invalid_cnp_in_its_namespace(self) -> None:
        """A CNP the API server would reject is listed with its namespace's invalid policies."""
        bad = cnp("bad", {"endpointSelector": {}, "nodeSelector": {}})
        assert ns_of(build(bad), "shop").invalid_policies[0].startswith("CiliumNetworkPolicy shop/bad")

    def test_invalid_ccnp_is_cluster_wide(self) -> None:
        """A rejected CCNP named like a namespace is reported cluster-wide, not in that namespace."""
        data = build(ccnp("legacy", {"ingress": [{}]}))
        assert (ns_of(data, "legacy").invalid_policies, len(data.invalid_clusterwide)) == ((), 1)


class TestRenderers:
    def test_json_kind_and_paths_validate(self) -> None:
        """JSON gives Cilium policies their kind and rule paths (a NetworkPolicy none) and fits the schema."""
        document = json.loads(json_format.render(build(DB_FROM_WEB, deny_all("shop"),
                                                       ccnp("bad", {"ingress": [{}]}))))
        jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(document)
        (shop,) = [ns for ns in document["namespaces"] if ns["name"] == "shop"]
        assert [(p.get("kind"), [r.get("path") for r in p["rules"]]) for p in shop["policies"]] == [
            (None, []), ("CiliumNetworkPolicy", ["ingress[0]", "egressDeny[0]"])]
        assert document["summary"]["policies_by_kind"] == {"NetworkPolicy": 1, "CiliumNetworkPolicy": 1}

    def test_markdown_names_the_kind(self) -> None:
        """The Markdown policy table names a Cilium policy with its kind and its rules by path."""
        text = markdown.render(build(DB_FROM_WEB))
        row = "| CiliumNetworkPolicy db-from-web | 5 | Ingress, Egress | app=db | db-1 | ingress\\[0\\]: from"
        assert row in text
