"""`auditor whatif` on the synthetic scenario captures (tests/fixtures/whatif/, labelled SYNTHETIC)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from auditor.app.whatif import EXIT_FAIL_ON, WhatifOptions, run_whatif
from auditor.app.whatif_format import result_json, result_markdown, result_table
from auditor.cli import whatif as cli
from auditor.errors import ConfigError
from auditor.findings.whatif import Change

FIXTURES = Path(__file__).parent / "fixtures" / "whatif"


def _options(name: str, **extra: object) -> WhatifOptions:
    folder = FIXTURES / name
    return WhatifOptions(manifests=(str(folder / "manifests.yaml"),), proposed=(str(folder / "proposed.yaml"),),
                         flows=(str(folder / "flows.jsonl"),), **extra)  # type: ignore[arg-type]


def _keys(name: str, change: Change, **extra: object) -> list[str]:
    result = run_whatif(_options(name, **extra))
    return [str(r.key) for r in result.rows if r.change is change]


def test_dropping_the_dns_rule_newly_denies_dns() -> None:
    """A proposed egress policy without its DNS rule newly denies the recorded lookups."""
    assert _keys("dns-break", Change.NEWLY_DENIED) == ["shop/web -> kube-system/coredns 53/UDP"]


def test_dropping_the_probe_rule_newly_denies_the_kubelet() -> None:
    """With node traffic enforced, removing the peerless probe rule newly denies the node's probes."""
    assert _keys("probe-break", Change.NEWLY_DENIED, enforce_node_traffic=True) == [
        "reserved:host -> shop/api 8080/TCP"]


def test_probe_change_breaks_nothing_when_node_traffic_is_not_policed() -> None:
    """Without the host firewall a pod's own node always reaches it: nothing newly denied."""
    assert _keys("probe-break", Change.NEWLY_DENIED) == []


def test_narrowing_a_namespace_peer_newly_denies_the_cross_namespace_call() -> None:
    """Replacing a namespaceSelector peer with a podSelector newly denies the call from legacy."""
    assert _keys("cross-namespace", Change.NEWLY_DENIED) == ["legacy/batch -> shop/api 8080/TCP"]


def test_cilium_deny_rule_names_the_deny_and_isolates() -> None:
    """A CNP ingressDeny denies its peer by that rule and puts the pod in default deny for the rest."""
    result = run_whatif(_options("cilium-deny"))
    after = {str(r.key): r.after for r in result.rows if r.change is Change.NEWLY_DENIED}
    assert after["legacy/batch -> shop/api 8080/TCP"] == (
        "denied: ingress: deny CiliumNetworkPolicy shop/no-legacy ingressDeny[0]")
    assert "default deny of CiliumNetworkPolicy shop/no-legacy" in after["shop/web -> shop/api 8080/TCP"]


def test_posture_delta_names_the_newly_covered_pod() -> None:
    """The Cilium policy newly isolates api for ingress."""
    result = run_whatif(_options("cilium-deny"))
    assert result.posture.newly_covered == (("shop/api-5d8f7c9b6-ax2k9", "ingress"),)


def test_removing_an_overlapping_policy_is_reattributed_not_denied() -> None:
    """With --replace-policies the missing overlapping policy is deleted; the call stays allowed."""
    result = run_whatif(_options("overlap-removed", replace_policies=True))
    assert [r.change for r in result.rows] == [Change.REATTRIBUTED]
    assert "deleted NetworkPolicy shop/api-from-web-old" in [str(c) for c in result.proposal]


def test_overlay_without_replace_keeps_the_other_policy() -> None:
    """Without --replace-policies the proposal only replaces what it names: nothing changes."""
    assert _keys("overlap-removed", Change.REATTRIBUTED) == []


def test_proposed_events_delete_in_order(tmp_path: Path) -> None:
    """--proposed-events applies a DELETED line: deleting the only DNS-admitting policy denies DNS."""
    manifests = (FIXTURES / "dns-break" / "manifests.yaml").read_text()
    assert "web-egress" in manifests
    events = tmp_path / "events.jsonl"
    policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": "web-egress", "namespace": "shop"}, "spec": {"podSelector": {}}}
    events.write_text(json.dumps({"time": "2026-11-20T10:00:00Z", "type": "DELETED", "object": policy}) + "\n")
    folder = FIXTURES / "dns-break"
    result = run_whatif(WhatifOptions(manifests=(str(folder / "manifests.yaml"),), proposed_events=str(events),
                                      flows=(str(folder / "flows.jsonl"),)))
    assert result.count(Change.NEWLY_ALLOWED) == 0
    assert [str(c) for c in result.proposal] == ["deleted NetworkPolicy shop/web-egress"]
    assert result.posture.newly_uncovered == (("shop/web-5d8f7c9b6-wx2k9", "egress"),)


def test_rows_carry_counts_times_and_sample() -> None:
    """A row counts the flows of its key and keeps the first flow as sample."""
    (row,) = [r for r in run_whatif(_options("dns-break")).rows if r.change is Change.NEWLY_DENIED]
    assert (row.flows, row.first_ns < row.last_ns, row.sample.startswith("00000000-")) == (2, True, True)


def test_json_lists_changes_and_summary() -> None:
    """JSON has one object per shown row and the counts per change."""
    document = json.loads(result_json(run_whatif(_options("cross-namespace"))))
    assert document["connections"][0]["change"] == "newly-denied"
    assert document["summary"]["connection_keys"]["newly-denied"] == 1


def test_markdown_leads_with_the_verdict() -> None:
    """The PR comment says up front how many connections would be newly denied."""
    text = result_markdown(run_whatif(_options("cross-namespace")))
    assert "**1 recorded connection would be newly denied.**" in text
    assert "| legacy/batch | shop/api | 8080/TCP |" in text


def test_table_says_when_nothing_changes() -> None:
    """An overlay that changes nothing says so."""
    assert "No recorded connection changes" in result_table(run_whatif(_options("overlap-removed")))


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_fail_on_newly_denied_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    """--fail-on newly-denied is a CI gate: exit 3 when something would break."""
    folder = FIXTURES / "dns-break"
    code = _cli(["whatif", "--manifests", str(folder / "manifests.yaml"),
                 "--proposed", str(folder / "proposed.yaml"),
                 "--flows", str(folder / "flows.jsonl"), "--fail-on", "newly-denied"])
    assert code == EXIT_FAIL_ON
    assert "1 connection keys are newly-denied" in capsys.readouterr().err


def test_fail_on_passes_when_nothing_breaks() -> None:
    """The gate passes (exit 0) when the change denies nothing recorded."""
    folder = FIXTURES / "overlap-removed"
    code = _cli(["whatif", "--manifests", str(folder / "manifests.yaml"),
                 "--proposed", str(folder / "proposed.yaml"),
                 "--flows", str(folder / "flows.jsonl"), "--fail-on", "newly-denied", "--output", "json"])
    assert code == 0


def test_a_change_is_required() -> None:
    """Without --proposed or --proposed-events there is nothing to compare."""
    folder = FIXTURES / "dns-break"
    with pytest.raises(ConfigError, match="give the change"):
        run_whatif(WhatifOptions(manifests=(str(folder / "manifests.yaml"),),
                                 flows=(str(folder / "flows.jsonl"),)))
