#!/usr/bin/env python3
"""Breadth of generated policies: how many connections each set admits that were never observed.

    .venv/bin/python bench/compare_audit2policy.py MANIFESTS FLOWS NAME=POLICIES.yaml...

For docs/recommend.md: `auditor recommend` (both kinds, generated here) against other tools' output
(e.g. hubble-audit2policy's, run beforehand into a file).  Every set is judged by auditor's engine
on top of MANIFESTS (the inventory and the policies in force).  The universe: every connection from
the pods of the namespaces the capture shows to those pods, the DNS pods, the nodes and one external
address, and from that address to the pods, on every port a flow of the capture carries (source or
destination), plus DNS (53/UDP); node -> pod is left out (without the host firewall a pod's own node
always reaches it, whatever the policies say).  Printed per set:
admitted connection keys (workload level), of them never observed, and observed legitimate
connections it does not admit (what applying it would break).  Prints numbers; asserts nothing.
"""

from __future__ import annotations

import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from auditor.app.audit import build_history
from auditor.app.recommend import RecommendOptions, learned, run_recommend
from auditor.app.recommend_format import render
from auditor.app.whatif import Proposed, collect_files
from auditor.hubble.files import FileFlowSource
from auditor.kube.manifests import load_manifests
from auditor.model.decision import ExternalSubject, NodeSubject, PodSubject, Subject
from auditor.model.flows import Flow
from auditor.model.k8s import Change, ChangeType
from auditor.policy.engine import PolicyEngine
from auditor.policy.state import ClusterState

WORLD = ExternalSubject("203.0.113.10")


def _name(subject: Subject) -> str:
    if isinstance(subject, PodSubject):
        return f"{subject.pod.namespace}/{subject.pod.workload_name}"
    return "reserved:host" if isinstance(subject, NodeSubject) else "reserved:world"


def _universe(state: ClusterState, namespaces: set[str], ports: set[tuple[int, str]]
              ) -> list[tuple[Subject, Subject, int, str]]:
    pods: list[Subject] = [PodSubject(p, p.ips[0]) for p in state.pods if p.namespace in namespaces and p.ips]
    others: list[Subject] = [WORLD, *(NodeSubject(n.name, n.addresses[0]) for n in state.nodes if n.addresses)]
    dns = [PodSubject(p, p.ips[0]) for p in state.pods if p.labels.get("k8s-app") == "kube-dns" and p.ips]
    found = []
    for src in pods:
        for dst in [*pods, *others, *dns]:
            for port, protocol in ports:
                found.append((src, dst, port, protocol))
        for port, protocol in ports:
            found.append((WORLD, src, port, protocol))
    return found


def _admitted(state: ClusterState, universe: list[tuple[Subject, Subject, int, str]]) -> set[tuple[str, ...]]:
    engine = PolicyEngine()
    return {(_name(s), _name(d), str(port), protocol) for s, d, port, protocol in universe
            if _name(s) != _name(d) and engine.decide(state, s, d, port, protocol).allowed}


def main() -> None:
    manifests, flows, *sets = sys.argv[1:]
    history, _, _ = build_history([manifests], None)
    collector = collect_files(history, [flows])
    observations = collector.observations()
    keep, _ = learned(observations, PolicyEngine(), include_denied=False, latest=history.latest())
    observed = {(o.key.source, o.key.destination, str(o.key.port), o.key.protocol) for o in keep}
    ports = {(o.port, o.protocol) for o in observations} | {(53, "UDP")}
    for event in FileFlowSource([flows], light=False).events():  # every port a flow carries, either side
        if isinstance(event, Flow) and event.protocol.value in ("TCP", "UDP"):
            ports |= {(event.source.port, event.protocol.value), (event.destination.port, event.protocol.value)}
    subjects = [s for o in observations for s in (o.src.subject, o.dst.subject)]
    namespaces = {s.pod.namespace for s in subjects if isinstance(s, PodSubject)} - {"kube-system"}
    latest = history.latest()
    universe = _universe(latest, namespaces, ports)
    keys = {(_name(s), _name(d), str(port), protocol) for s, d, port, protocol in universe}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("networkpolicy", "cilium"):
            path = os.path.join(tmp, f"{kind}.yaml")
            with open(path, "w", encoding="utf-8") as out:
                out.write(render(run_recommend(RecommendOptions((manifests,), flows=(flows,), kind=kind))))
            sets.insert(0, f"auditor-recommend-{kind}={path}")
        print(f"universe: {len(universe)} candidate connections on {len(ports)} ports; "
              f"observed legitimate connection keys: {len(observed)}")
        for item in sets:
            name, _, path = item.partition("=")
            objects = load_manifests([path])
            state = Proposed([Change(0, ChangeType.MODIFIED, obj) for obj in objects])(latest)
            admitted = _admitted(state, universe)
            never = admitted - observed
            missing = {k for k in observed & keys if k not in admitted}
            print(f"{name}: {len(objects)} objects; admits {len(admitted)} connection keys, {len(never)} never "
                  f"observed; does not admit {len(missing)} observed: {sorted(missing)}")
            if os.environ.get("VERBOSE"):
                print("  never observed:", *sorted(" ".join(k) for k in never), sep="\n    ")


if __name__ == "__main__":
    main()
