"""Cilium's own connectivity-test scenarios (`cilium connectivity test`) as truth tables.

The data is ours, restated from cilium-cli's connectivity builders, manifests and probes
(tests/fixtures/cilium/connectivity/: topology.yaml, policies/, scenarios.yaml, and
PROVENANCE.md naming each source).  Every scenario applies its policies on top of the upstream
topology; every probe is one upstream action with the verdict Cilium's expectations give it.
Probes that name an attribution (`why`) also pin the deciding side and policy.  A few scenarios
are driven through the real `auditor explain` CLI as well.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from auditor.model.cilium import CiliumCIDRGroup, CiliumNetworkPolicy
from auditor.model.k8s import NetworkPolicy
from tests.cilium_support import (
    FIXTURES,
    Probe,
    Scenario,
    check_attribution,
    decide,
    explain,
    objects_of,
    parse_probe,
    policy_kinds,
    read_yaml,
    state_of,
    subject,
)

DATA = FIXTURES / "connectivity"
TOPOLOGY = DATA / "topology.yaml"
AUDITOR = Path(sys.executable).with_name("auditor")


def _scenarios() -> list[Scenario]:
    found = []
    for entry in read_yaml(DATA / "scenarios.yaml"):
        manifests = (TOPOLOGY, *(DATA / "policies" / name for name in entry["policies"]))
        probes = tuple(parse_probe(row) for row in entry["probes"])
        found.append(Scenario(entry["name"], manifests, probes, entry.get("engine", {})))
    return found


SCENARIOS = _scenarios()
BY_NAME = {s.name: s for s in SCENARIOS}
PROBES = [(s, p) for s in SCENARIOS for p in s.probes]
ATTRIBUTED = [(s, p) for s, p in PROBES if p.why]
TOPOLOGY_ONLY = Scenario("topology", (TOPOLOGY,), ())


def _probe_id(item: object) -> str:
    if isinstance(item, Scenario):
        return item.name
    return item.label if isinstance(item, Probe) else str(item)


# -- the data itself (independent of the engine) -----------------------------------------------

def test_scenario_names_are_unique() -> None:
    """Every scenario is transcribed once."""
    assert len(BY_NAME) == len(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=_probe_id)
def test_scenario_files_exist(scenario: Scenario) -> None:
    """Every policy file a scenario names is in the fixtures."""
    missing = [str(p) for p in scenario.manifests if not p.is_file()]
    assert not missing


@pytest.mark.parametrize("scenario", SCENARIOS, ids=_probe_id)
def test_probe_endpoints_are_in_the_topology(scenario: Scenario) -> None:
    """Every probe names pods and nodes the topology has (so a failure below is the engine's)."""
    state = state_of((TOPOLOGY,))
    for probe in scenario.probes:
        subject(state, probe.source, scenario.namespace)
        subject(state, probe.destination, scenario.namespace)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=_probe_id)
def test_attributed_policies_are_in_the_scenario(scenario: Scenario) -> None:
    """A `SIDE-deny:POLICY` attribution names a policy the scenario applies."""
    kinds = policy_kinds(scenario.manifests)
    for probe in scenario.probes:
        if "-deny:" in probe.why:
            assert probe.why.split(":", 1)[1] in kinds, probe.label


def test_provenance_names_every_policy_file() -> None:
    """PROVENANCE.md names the source of every policy fixture."""
    provenance = (FIXTURES / "PROVENANCE.md").read_text(encoding="utf-8")
    files = sorted((DATA / "policies").glob("*.yaml"))
    unnamed = [p.name for p in files if f"`policies/{p.name}`" not in provenance]
    assert files
    assert not unnamed


# -- loading -----------------------------------------------------------------------------------

@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if len(s.manifests) > 1], ids=_probe_id)
def test_every_policy_is_loaded(scenario: Scenario) -> None:
    """Each policy document of the scenario becomes a policy object (none skipped as unknown)."""
    loaded = {o.name for o in objects_of(scenario.manifests)
              if isinstance(o, (CiliumNetworkPolicy, NetworkPolicy, CiliumCIDRGroup))}
    assert set(policy_kinds(scenario.manifests)) <= loaded


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if len(s.manifests) > 1], ids=_probe_id)
def test_every_policy_is_valid(scenario: Scenario) -> None:
    """Cilium accepts every upstream policy, so the engine must not reject any as invalid."""
    assert not state_of(scenario.manifests).invalid


# -- verdicts ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("scenario", "probe"), PROBES, ids=_probe_id)
def test_verdict(scenario: Scenario, probe: Probe) -> None:
    """The engine's verdict is the one Cilium's connectivity test expects."""
    decision = decide(scenario, probe)
    assert decision.allowed is probe.allowed, explain(decision)


@pytest.mark.parametrize(("scenario", "probe"), ATTRIBUTED, ids=_probe_id)
def test_attribution(scenario: Scenario, probe: Probe) -> None:
    """The deciding side and rule are the ones the scenario's policies name."""
    check_attribution(scenario, probe, decide(scenario, probe))


# -- through the CLI ---------------------------------------------------------------------------

CLI_SCENARIOS = ["echo-ingress", "client-ingress-icmp", "host-entity-egress", "client-egress-to-cidr-deny",
                 "to-entities-world", "host-firewall-egress", "client-egress-to-echo-deny-ccnp",
                 "all-ingress-deny-knp"]


def _endpoint(ref: str, namespace: str) -> Any:
    head, _, rest = ref.partition("/")
    if head == "ip":
        return {"ip": rest}
    if head == "node":
        return ref
    if head == "svc" or not rest:
        return f"{namespace}/{rest or head}"
    return ref


def _query(probe: Probe, namespace: str) -> dict[str, Any]:
    query: dict[str, Any] = {"from": _endpoint(probe.source, namespace),
                             "to": _endpoint(probe.destination, namespace)}
    if probe.protocol.startswith("ICMP"):
        query.update(protocol=probe.protocol, icmp_type=probe.port)
    else:
        query.update(port=probe.port, protocol=probe.protocol)
    return query


def _explain_cli(scenario: Scenario, tmp_path: Path) -> list[dict[str, Any]]:
    queries = tmp_path / "queries.jsonl"
    queries.write_text("".join(json.dumps(_query(p, scenario.namespace)) + "\n" for p in scenario.probes))
    flags = ["--enforce-node-traffic"] if scenario.engine.get("enforce_node_traffic") else []
    flags += ["--cidr-match-nodes"] if scenario.engine.get("cidr_match_nodes") else []
    command = [str(AUDITOR), "explain", "--manifests", *map(str, scenario.manifests), "--queries", str(queries),
               "--output", "json", *flags]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


@pytest.mark.slow
@pytest.mark.parametrize("name", CLI_SCENARIOS)
def test_cli_explain_verdicts(name: str, tmp_path: Path) -> None:
    """`auditor explain --queries` gives every probe of the scenario the expected verdict."""
    scenario = BY_NAME[name]
    lines = _explain_cli(scenario, tmp_path)
    got = [(p.label, line.get("allowed")) for p, line in zip(scenario.probes, lines, strict=True)]
    assert got == [(p.label, p.allowed) for p in scenario.probes]
