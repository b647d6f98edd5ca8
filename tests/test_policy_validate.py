"""NetworkPolicy validation as the API server does it, and how ClusterState skips invalid policies."""

from __future__ import annotations

import pytest

from auditor.model.k8s import IPBlock, NetworkPolicy, Peer, PolicyDirection
from auditor.policy.validate import is_valid_port_name, validate_policy
from tests.strategies import INGRESS, cidr, expr, peer, pod, policy, port, rule, sel, state


def _ingress(*rules_: object) -> NetworkPolicy:
    return policy("shop", "api", sel(app="api"), ingress=list(rules_))  # type: ignore[arg-type]


INVALID = [
    ("bad cidr", _ingress(rule(cidr("10.0.0.300/8"))), "spec.ingress[0].from[0].ipBlock.cidr",
     "not a valid CIDR"),
    ("cidr without prefix", _ingress(rule(cidr("10.0.0.1"))), "spec.ingress[0].from[0].ipBlock.cidr",
     "not a valid CIDR"),
    ("except outside cidr", _ingress(rule(cidr("10.0.0.0/16", "10.1.0.0/24"))),
     "spec.ingress[0].from[0].ipBlock.except[0]", "strict subset"),
    ("except equal to cidr", _ingress(rule(cidr("10.0.0.0/16", "10.0.0.0/16"))),
     "spec.ingress[0].from[0].ipBlock.except[0]", "strict subset"),
    ("except of other family", _ingress(rule(cidr("10.0.0.0/8", "fd00::/64"))),
     "spec.ingress[0].from[0].ipBlock.except[0]", "strict subset"),
    ("bad except", _ingress(rule(cidr("10.0.0.0/8", "nope"))), "spec.ingress[0].from[0].ipBlock.except[0]",
     "not a valid CIDR"),
    ("unknown operator", _ingress(rule(peer(sel(expr("app", "Equals", "web"))))),
     "spec.ingress[0].from[0].podSelector.matchExpressions[0].operator", "not a valid selector operator"),
    ("values with Exists", _ingress(rule(peer(sel(expr("app", "Exists", "web"))))),
     "spec.ingress[0].from[0].podSelector.matchExpressions[0].values", "may not be specified"),
    ("values with DoesNotExist", policy("shop", "api", sel(expr("app", "DoesNotExist", "x"))),
     "spec.podSelector.matchExpressions[0].values", "may not be specified"),
    ("In without values", _ingress(rule(peer(None, sel(expr("team", "In"))))),
     "spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].values", "must be specified"),
    ("NotIn without values", _ingress(rule(peer(sel(expr("team", "NotIn"))))),
     "spec.ingress[0].from[0].podSelector.matchExpressions[0].values", "must be specified"),
    ("port 0", _ingress(rule(ports=[port(0)])), "spec.ingress[0].ports[0].port", "between 1 and 65535"),
    ("port 65536", _ingress(rule(ports=[port(65536)])), "spec.ingress[0].ports[0].port", "between 1 and 65535"),
    ("endPort below port", _ingress(rule(ports=[port(8080, end=8000)])), "spec.ingress[0].ports[0].endPort",
     "greater than or equal"),
    ("endPort with named port", _ingress(rule(ports=[port("http", end=8000)])),
     "spec.ingress[0].ports[0].endPort", "non-numeric"),
    ("endPort without port", _ingress(rule(ports=[port(None, end=8000)])), "spec.ingress[0].ports[0].endPort",
     "not specified"),
    ("endPort out of range", _ingress(rule(ports=[port(80, end=70000)])), "spec.ingress[0].ports[0].endPort",
     "between 1 and 65535"),
    ("bad protocol", _ingress(rule(ports=[port(80, "ICMP")])), "spec.ingress[0].ports[0].protocol",
     "unsupported value"),
    ("port name too long", _ingress(rule(ports=[port("a-very-long-port-name")])),
     "spec.ingress[0].ports[0].port", "15 characters"),
    ("port name uppercase", _ingress(rule(ports=[port("HTTP")])), "spec.ingress[0].ports[0].port",
     "lowercase"),
    ("port name digits only", _ingress(rule(ports=[port("8080")])), "spec.ingress[0].ports[0].port",
     "at least one letter"),
    ("ipBlock with selector", _ingress(rule(Peer(pod_selector=sel(), ip_block=IPBlock("10.0.0.0/8")))),
     "spec.ingress[0].from[0]", "more than 1 peer type"),
    ("empty peer", _ingress(rule(Peer())), "spec.ingress[0].from[0]", "must specify a peer"),
    ("bad label key", policy("shop", "api", sel(**{"-bad": "x"})), "spec.podSelector.matchLabels",
     "invalid label key"),
    ("bad label value", policy("shop", "api", sel(app="no spaces")), "spec.podSelector.matchLabels.app",
     "invalid label value"),
    ("egress rule", policy("shop", "api", egress=[rule(peer(sel(app="db")), ports=[port(0)])]),
     "spec.egress[0].ports[0].port", "between 1 and 65535"),
    ("too many policyTypes", policy("shop", "api", types=[INGRESS, PolicyDirection.EGRESS, INGRESS]),
     "spec.policyTypes", "more than two"),
    ("bad name", policy("shop", "API_Policy"), "metadata.name", "RFC 1123"),
]


class TestValidatePolicy:
    @pytest.mark.parametrize(("case", "pol", "field", "message"), INVALID, ids=[c[0] for c in INVALID])
    def test_rejects(self, case: str, pol: NetworkPolicy, field: str, message: str) -> None:
        """Each invalid spec yields an error naming the policy, the JSON path and the problem."""
        errors = validate_policy(pol)
        assert [e.field for e in errors] == [field], case
        assert message in errors[0].reason
        assert errors[0].ref == "NetworkPolicy shop/" + pol.name

    @pytest.mark.parametrize("pol", [
        _ingress(rule(cidr("10.0.0.0/8", "10.1.0.0/16", "10.2.3.0/24"))),
        _ingress(rule(cidr("2001:db8::/32", "2001:db8:1::/48"))),
        _ingress(rule(cidr("10.0.0.1/8"))),
        _ingress(rule(peer(sel(expr("app", "In", "a", "b"), expr("tier", "DoesNotExist")), sel()))),
        _ingress(rule(ports=[port(8000, end=8100), port("http-alt", "UDP"), port(None, "SCTP")])),
        policy("shop", "deny", ingress=[], egress=[], types=[INGRESS, PolicyDirection.EGRESS]),
        policy("shop", "labels", sel(**{"app.kubernetes.io/name": "api", "a": ""})),
    ], ids=["except", "ipv6", "host-bits", "expressions", "ports", "deny-all", "prefixed-keys"])
    def test_accepts(self, pol: NetworkPolicy) -> None:
        """Valid specs, including sloppy CIDRs with host bits (as ParseCIDRSloppy accepts), pass."""
        assert validate_policy(pol) == []

    def test_reports_every_problem(self) -> None:
        """All errors of one policy are reported, not only the first."""
        pol = _ingress(rule(cidr("bad"), ports=[port(0), port("x" * 20)]))
        assert len(validate_policy(pol)) == 3

    @pytest.mark.parametrize(("name", "ok"), [("http", True), ("h2c", True), ("a-b", True), ("a--b", False),
                                              ("-ab", False), ("ab-", False), ("123", False), ("", False)])
    def test_port_names(self, name: str, ok: bool) -> None:
        """IANA_SVC_NAME rules for named ports."""
        assert (is_valid_port_name(name) is None) == ok


class TestInvalidPoliciesInState:
    def test_invalid_policy_is_skipped_and_reported(self) -> None:
        """An invalid policy is left out of .policies, listed in .invalid, and does not isolate pods."""
        bad = policy("shop", "broken", sel(), ingress=[rule(cidr("10.0.0.0/33"))])
        good = policy("shop", "fine", sel(app="db"), ingress=[])
        cluster = state(pod("shop", "api", app="api"), bad, good)
        assert [p.name for p in cluster.policies] == ["fine"]
        assert [e.ref for e in cluster.invalid] == ["NetworkPolicy shop/broken"]
        api = cluster.pod("shop", "api")
        assert api is not None
        assert cluster.policies_selecting(api, INGRESS) == ()

    def test_fixing_a_policy_clears_the_error(self) -> None:
        """Applying a valid version of a previously invalid policy removes it from .invalid."""
        from auditor.model.k8s import Change, ChangeType
        bad = policy("shop", "p", ingress=[rule(ports=[port(0)])])
        cluster = state(bad)
        assert len(cluster.invalid) == 1
        good = policy("shop", "p", ingress=[rule(ports=[port(80)])])
        fixed = cluster.apply(Change(1, ChangeType.MODIFIED, good))
        assert fixed.invalid == []
        assert [p.name for p in fixed.policies] == ["p"]
