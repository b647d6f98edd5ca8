"""Checking a recommendation before it is printed, and the manifests it is printed as.

Four checks, each on exactly what is printed (`manifest`):
- API validation: `policy.validate` / `policy.cilium_validate`, as the API server and Cilium would;
- the YAML reads back (`kube.convert.object_from_dict`) as the object that was checked;
- the audit lint (`findings.static.static_findings`) of the current state plus the recommendation
  raises nothing in the recommended namespaces, apart from findings about policies that were there
  before (an allow-all rule of an existing policy is not the recommendation's);
- whatif current -> recommended (`findings.whatif.judge`) over the same connections: no learned
  connection is newly denied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from auditor.app.whatif import Proposed
from auditor.errors import InvalidObjectError
from auditor.findings.connections import Observation
from auditor.findings.correlate import Decider
from auditor.findings.static import static_findings
from auditor.findings.whatif import Change, judge
from auditor.kube.convert import object_from_dict
from auditor.kube.export import object_to_dict
from auditor.model.cilium import CiliumNetworkPolicy
from auditor.model.findings import Finding, FindingKind
from auditor.model.k8s import Change as KubeChange
from auditor.model.k8s import ChangeType
from auditor.policy.cilium_validate import validate_cilium_policy
from auditor.policy.generate import Generated
from auditor.policy.history import ClusterHistory
from auditor.policy.validate import validate_policy
from auditor.report.fmt import plural, time_text

ANNOTATION = "auditor.io/"
_POLICY_LEVEL = (FindingKind.ALLOW_ALL_RULE, FindingKind.UNUSED_POLICY)


@dataclass(frozen=True, slots=True)
class Verification:
    invalid: tuple[str, ...]
    unreadable: tuple[str, ...]
    """Objects whose printed YAML does not read back as the object checked."""
    lint: tuple[Finding, ...]
    preexisting_lint: int
    """Lint findings in the namespaces about policies that were there before (not counted)."""
    judged: int
    newly_denied: tuple[Observation, ...]
    """Learned connections the recommendation would deny: must be empty."""
    dropped_newly_denied: int
    """Connections not learned (the dataplane or the policies denied them) that the model now denies too."""

    @property
    def ok(self) -> bool:
        return not (self.invalid or self.unreadable or self.lint or self.newly_denied)


def evidence_annotations(g: Generated) -> dict[str, str]:
    e = g.evidence
    found = {f"{ANNOTATION}generated-by": "auditor recommend"}
    if e.connections:
        found[f"{ANNOTATION}evidence"] = (
            f"{plural(e.flows, 'flow')}, {plural(e.connections, 'observed connection')}, "
            f"first seen {time_text(e.first_ns)}, last seen {time_text(e.last_ns)}")
        found |= {f"{ANNOTATION}flows": str(e.flows), f"{ANNOTATION}first-seen": time_text(e.first_ns),
                  f"{ANNOTATION}last-seen": time_text(e.last_ns)}
    elif g.obj.name.endswith("default-deny"):
        found[f"{ANNOTATION}evidence"] = ("default deny: admits nothing; the workload policies admit what "
                                          "was observed")
    else:
        found[f"{ANNOTATION}evidence"] = "no traffic observed: DNS and probe ports only"
    if g.notes:
        found[f"{ANNOTATION}notes"] = "; ".join(g.notes)
    return found


def manifest(g: Generated) -> dict[str, Any]:
    """The object as printed: its manifest with the evidence annotations."""
    raw = object_to_dict(g.obj)
    raw["metadata"]["annotations"] = evidence_annotations(g)
    return raw


def yaml_documents(generated: Sequence[Generated]) -> str:
    return yaml.safe_dump_all([manifest(g) for g in generated], sort_keys=False, default_flow_style=False)


def _validation(g: Generated) -> list[InvalidObjectError]:
    if isinstance(g.obj, CiliumNetworkPolicy):
        return validate_cilium_policy(g.obj)
    return validate_policy(g.obj)


def _reads_back(g: Generated) -> bool:
    (document,) = list(yaml.safe_load_all(yaml_documents([g])))
    return object_from_dict(document, where=g.obj.name) == g.obj


def _lint(generated: Sequence[Generated], state: Any, namespaces: Sequence[str], enforce_node_traffic: bool,
          policy_enforcement: str) -> tuple[list[Finding], int]:
    names = {(g.obj.namespace, g.obj.name) for g in generated}
    ours, theirs = [], 0
    lint = static_findings(state, enforce_node_traffic=enforce_node_traffic,
                           policy_enforcement=policy_enforcement)
    for f in lint:
        if f.namespace not in namespaces:
            continue
        if f.kind in _POLICY_LEVEL and (f.namespace, f.workload.partition("/")[2]) not in names:
            theirs += 1
        else:
            ours.append(f)
    return ours, theirs


def verify(generated: Sequence[Generated], history: ClusterHistory, observations: Sequence[Observation],
           learned: Sequence[Observation], engine: Decider, namespaces: Sequence[str], *,
           enforce_node_traffic: bool = False, policy_enforcement: str = "default") -> Verification:
    invalid = [str(error) for g in generated for error in _validation(g)]
    unreadable = [f"{g.obj.namespace}/{g.obj.name}" for g in generated if not _reads_back(g)]
    proposed = Proposed([KubeChange(0, ChangeType.MODIFIED, g.obj) for g in generated])
    lint, theirs = _lint(generated, proposed(history.latest()), namespaces, enforce_node_traffic,
                         policy_enforcement)
    judged = judge(observations, engine, proposed)
    keep = {id(o) for o in learned}
    newly = [j.observation for j in judged if j.change is Change.NEWLY_DENIED]
    return Verification(
        invalid=tuple(invalid), unreadable=tuple(unreadable), lint=tuple(lint), preexisting_lint=theirs,
        judged=len(judged), newly_denied=tuple(o for o in newly if id(o) in keep),
        dropped_newly_denied=sum(1 for o in newly if id(o) not in keep),
    )
