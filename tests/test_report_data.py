"""Building ReportData: posture, controls, score, evidence, edge cases (empty, no policies, no posture)."""

from __future__ import annotations

from auditor.model.cilium import CiliumKind, CiliumNetworkPolicy, CiliumPolicySpec, CiliumRule
from auditor.model.findings import FindingKind, Severity
from auditor.model.k8s import LabelSelector, Namespace, NetworkPolicy, PolicyDirection, PolicyPort, Rule
from auditor.report.data import ReportData
from tests.report_support import finding, hostile_findings, pod, report, shop_state, state


def result(data: ReportData, control: str, namespace: str) -> str:
    return next(r.status for r in data.control_results if r.control_id == control and r.namespace == namespace)


class TestPosture:
    def test_isolation_counts_per_namespace(self) -> None:
        """shop's pods are isolated both ways by its default deny; legacy's pod by nothing."""
        data = report(st=shop_state())
        shop, legacy = (next(ns for ns in data.namespaces if ns.name == n) for n in ("shop", "legacy"))
        assert (shop.pods, shop.ingress_isolated, shop.egress_isolated) == (2, 2, 2)
        assert (legacy.pods, legacy.ingress_isolated) == (1, 0)
        assert [g.name for g in legacy.unprotected] == ["batch-1"]

    def test_policy_lists_what_it_selects(self) -> None:
        """A policy reports its selector text and the pods it selects."""
        data = report(st=shop_state())
        policy = next(ns for ns in data.namespaces if ns.name == "shop").policies[0]
        assert (policy.selector, policy.selected_pods, policy.directions) == (
            "(all pods)", ("db-1", "web-1"), ("Ingress", "Egress"))

    def test_namespace_filter_limits_everything(self) -> None:
        """--namespace keeps only that namespace's posture, findings and controls."""
        data = report([finding(FindingKind.POLICY_DROP), finding(FindingKind.POLICY_DROP, ns="legacy")],
                      shop_state(), namespaces=["legacy"])
        assert [ns.name for ns in data.namespaces] == ["legacy"]
        assert {f.namespace for f in data.findings} == {"legacy"}
        assert {r.namespace for r in data.control_results} == {"legacy"}


    def test_invalid_policy_reported_in_its_namespace(self) -> None:
        """A policy the API server would reject is left out of the posture and listed with the reason."""
        bad = NetworkPolicy("shop", "bad", LabelSelector(), (PolicyDirection.INGRESS,),
                            ingress=(Rule(ports=(PolicyPort("FOO", 80),)),))
        data = report(st=state(pod("shop", "web-1", "web"), bad))
        (shop,) = data.namespaces
        assert shop.policies == ()
        assert "unsupported value 'FOO'" in shop.invalid_policies[0]


class TestControls:
    def test_cis_fails_without_policy_and_passes_with_one(self) -> None:
        """CIS 5.3.2: legacy has no NetworkPolicy (fail), shop has one (pass)."""
        data = report(st=shop_state())
        assert (result(data, "CIS-5.3.2", "legacy"), result(data, "CIS-5.3.2", "shop")) == ("fail", "pass")

    def test_default_deny_control_exempts_kube_system(self) -> None:
        """The NSA/CISA checklist item excepts kube-system: not-applicable there, fail elsewhere."""
        data = report(st=state(Namespace("kube-system"), pod("kube-system", "dns-1", "dns"),
                               pod("legacy", "batch-1", "batch")))
        assert result(data, "NSA-CISA-NP-DEFAULT-DENY", "kube-system") == "not-applicable"
        assert result(data, "NSA-CISA-NP-DEFAULT-DENY", "legacy") == "fail"

    def test_unexpected_allow_fails_the_cni_control(self) -> None:
        """Forwarded traffic the policies deny is evidence the dataplane does not enforce them."""
        data = report([finding(FindingKind.UNEXPECTED_ALLOW, Severity.HIGH)], shop_state())
        assert result(data, "NSA-CISA-NP-CNI", "shop") == "fail"

    def test_posture_controls_unknown_without_posture(self) -> None:
        """Without a cluster state the posture controls are unknown, never pass."""
        data = report([finding(FindingKind.POLICY_DROP)], None, posture_note="posture unavailable: test")
        assert result(data, "CIS-5.3.2", "shop") == "unknown"
        assert result(data, "NSA-CISA-NP-CNI", "shop") == "pass"


class TestScore:
    def test_score_follows_the_stated_formula(self) -> None:
        """I = 4/6, N = 1/2, one high finding: round(60*0.667 + 40*0.5) - 5 = 55."""
        data = report(hostile_findings(), shop_state())
        assert data.summary.score == 55
        assert "60*I + 40*N" in data.summary.score_formula

    def test_score_is_none_for_an_empty_cluster(self) -> None:
        """No pods: nothing to judge, no score; counts are zero."""
        data = report(st=state())
        assert (data.summary.score, data.summary.pods, data.namespaces) == (None, 0, ())

    def test_cluster_without_policies_scores_zero(self) -> None:
        """Pods and no policy at all: nothing isolated, score 0, every namespace fails CIS 5.3.2."""
        data = report(st=state(pod("a", "x-1", "x"), pod("b", "y-1", "y")))
        assert data.summary.score == 0
        assert {r.status for r in data.control_results if r.control_id == "CIS-5.3.2"} == {"fail"}


class TestEvidence:
    def test_findings_sorted_worst_first(self) -> None:
        """Findings are ordered by severity, worst first, so F1 is the most severe."""
        data = report(hostile_findings(), shop_state())
        assert [f.severity for f in data.findings] == [Severity.HIGH, Severity.LOW]

    def test_top_denied_names_policies_and_direction(self) -> None:
        """An ingress drop is peer -> subject, with the policies that denied it."""
        data = report(hostile_findings(), shop_state())
        (conn,) = data.evidence.top_denied
        assert (conn.destination, conn.count, conn.policies) == ("shop/web", 12, ("shop/default-deny@7",))

    def test_policy_hits_without_posture_come_from_counters(self) -> None:
        """Without a cluster state the per-policy hits still list every policy the counters name."""
        data = report([], None, policy_hits={("shop", "default-deny", "NetworkPolicy"): (5, 2)})
        hits = [(h.policy, h.allowed, h.dropped) for h in data.evidence.policy_hits]
        assert hits == [("shop/default-deny", 5, 2)]

    def test_cilium_policy_hits_are_named_with_their_kind(self) -> None:
        """Cilium's kinds are named `CiliumNetworkPolicy ns/name`, `CiliumClusterwideNetworkPolicy name`."""
        data = report([], None, policy_hits={("shop", "default-deny", "CiliumNetworkPolicy"): (1, 0),
                                             ("", "dns-only", "CiliumClusterwideNetworkPolicy"): (0, 3)})
        hits = [(h.policy, h.allowed, h.dropped) for h in data.evidence.policy_hits]
        assert hits == [("CiliumClusterwideNetworkPolicy dns-only", 0, 3),
                        ("CiliumNetworkPolicy shop/default-deny", 1, 0)]

    def test_posture_hits_keep_kinds_apart(self) -> None:
        """With a posture, a CNP's hits under a NetworkPolicy's namespace and name do not add to it."""
        data = report([], shop_state(), policy_hits={("shop", "default-deny", "NetworkPolicy"): (5, 2),
                                                     ("shop", "default-deny", "CiliumNetworkPolicy"): (1, 0)})
        hits = [(h.policy, h.allowed, h.dropped) for h in data.evidence.policy_hits]
        assert hits == [("shop/default-deny", 5, 2)]

    def test_cluster_wide_policy_listed_in_two_namespaces_has_one_hit_row(self) -> None:
        """A CCNP applying in shop and legacy is one row of the per-policy hits, with its counts once."""
        ccnp = CiliumNetworkPolicy(CiliumKind.CCNP, "all-pods", specs=(CiliumPolicySpec(
            endpoint_selector=LabelSelector(), ingress=(CiliumRule(endpoints=(LabelSelector(),)),)),))
        st = state(Namespace("shop"), Namespace("legacy"), pod("shop", "web-1", "web"),
                   pod("legacy", "batch-1", "batch"), ccnp)
        data = report([], st, policy_hits={("", "all-pods", "CiliumClusterwideNetworkPolicy"): (4, 0)})
        hits = [(h.policy, h.allowed) for h in data.evidence.policy_hits]
        assert hits == [("CiliumClusterwideNetworkPolicy all-pods", 4)]

    def test_unused_policy_needs_known_usage(self) -> None:
        """Without rule usage (store mode) no policy is called unused; with empty usage it is."""
        from auditor.report.usage import RuleUsage

        assert report(st=shop_state()).evidence.unused_policies == ()
        data = report(st=shop_state(), usage=RuleUsage())
        assert data.evidence.unused_policies == ("shop/default-deny",)
