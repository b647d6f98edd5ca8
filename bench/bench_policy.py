"""Policy engine benchmark: 10,000 pods, 2,000 namespaces, 5,000 NetworkPolicies, 2,000 Cilium policies.

Prints build time (bulk and change by change), decision time uncached (cold and with warm
per-state selector caches) and cached, memory (tracemalloc), the time for a policy change to be
visible to decisions (apply + decide), and the cost of keeping a history of changes.

    .venv/bin/python bench/bench_policy.py [--pods 10000 --namespaces 2000 --policies 5000 --cilium 2000]

`--cilium N` adds N CiliumNetworkPolicies and CiliumClusterwideNetworkPolicies (one in ten
cluster-wide): entity, CIDR, endpoint, ICMP and deny rules; `--cilium 0` is the NetworkPolicy-only run.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auditor.model.cilium import (
    CiliumKind,
    CiliumNetworkPolicy,
    CiliumPolicySpec,
    CiliumPort,
    CiliumRule,
    ICMPType,
    PortRule,
)
from auditor.model.decision import ExternalSubject, PodSubject, Subject
from auditor.model.k8s import (
    Change,
    ChangeType,
    ContainerPort,
    IPBlock,
    KubeObject,
    LabelSelector,
    LabelSelectorRequirement,
    Namespace,
    NetworkPolicy,
    Peer,
    Pod,
    PolicyDirection,
    PolicyPort,
    Rule,
)
from auditor.policy.engine import PolicyEngine
from auditor.policy.history import ClusterHistory
from auditor.policy.state import ClusterState

APPS = ("web", "api", "db", "worker", "cache")
PORTS = (ContainerPort(8080, name="http"), ContainerPort(9090, name="metrics"), ContainerPort(5432, name="pg"))


def _policies_for(namespace: str, count: int, rnd: random.Random) -> list[NetworkPolicy]:
    kinds = [
        lambda: NetworkPolicy(namespace, "default-deny", LabelSelector(), (PolicyDirection.INGRESS,),
                              ingress=()),
        lambda: NetworkPolicy(namespace, "api-from-web", LabelSelector({"app": "api"}), ingress=(
            Rule((Peer(pod_selector=LabelSelector({"app": "web"})),), (PolicyPort(port=8080),)),)),
        lambda: NetworkPolicy(namespace, "metrics", LabelSelector(), ingress=(
            Rule((Peer(namespace_selector=LabelSelector({"team": f"t{rnd.randrange(50)}"}),
                       pod_selector=LabelSelector(match_expressions=(
                           LabelSelectorRequirement("app", "In", ("worker", "cache")),))),),
                 (PolicyPort(port="metrics"),)),)),
        lambda: NetworkPolicy(namespace, "db-egress", LabelSelector({"app": "api"}),
                              (PolicyDirection.EGRESS,), egress=(
            Rule((Peer(pod_selector=LabelSelector({"app": "db"})),), (PolicyPort(port=5432),)),
            Rule((Peer(namespace_selector=LabelSelector({"kubernetes.io/metadata.name": "kube-system"})),),
                 (PolicyPort("UDP", 53),)),
            Rule((Peer(ip_block=IPBlock("0.0.0.0/0", ("10.0.0.0/8",))),), (PolicyPort(port=443),)))),
    ]
    return [kinds[i % len(kinds)]() for i in range(count)]


def _ports(*numbers: int, protocol: str = "TCP") -> tuple[PortRule, ...]:
    return (PortRule(tuple(CiliumPort(str(n), 0, protocol) for n in numbers)),)


def _cnp(namespace: str, index: int) -> CiliumNetworkPolicy:
    """One of four namespaced shapes: world egress with a deny, endpoints ingress, ICMP, host probes."""
    app = LabelSelector({"app": APPS[index % 5]})
    shapes = [
        CiliumPolicySpec(endpoint_selector=app, egress=(CiliumRule(entities=("world",), to_ports=_ports(443)),
                                                        CiliumRule(entities=("kube-apiserver",))),
                         egress_deny=(CiliumRule(cidrs=("203.0.113.0/25",)),)),
        CiliumPolicySpec(endpoint_selector=app, ingress=(CiliumRule(
            endpoints=(LabelSelector({"app": "web"}),), to_ports=_ports(8080, 9090)),)),
        CiliumPolicySpec(endpoint_selector=LabelSelector(), ingress=(CiliumRule(icmps=(ICMPType(8),)),)),
        CiliumPolicySpec(endpoint_selector=app, ingress=(CiliumRule(entities=("host", "remote-node")),),
                         ingress_deny=(CiliumRule(entities=("world",), to_ports=_ports(22)),)),
    ]
    return CiliumNetworkPolicy(CiliumKind.CNP, f"cnp-{index}", namespace, specs=(shapes[index % 4],))


def _ccnp(index: int) -> CiliumNetworkPolicy:
    team = LabelSelector({"io.cilium.k8s.namespace.labels.team": f"t{index % 50}",
                          "app": APPS[index % 5]})
    db = CiliumRule(endpoints=(LabelSelector({"app": "db"}),), to_ports=_ports(5432))
    spec = CiliumPolicySpec(endpoint_selector=team,
                            egress=(db, CiliumRule(cidrs=("0.0.0.0/0",), to_ports=_ports(443))),
                            egress_deny=(CiliumRule(entities=("world",), to_ports=_ports(25)),))
    return CiliumNetworkPolicy(CiliumKind.CCNP, f"ccnp-{index}", specs=(spec,))


def cilium_objects(count: int, n_ns: int) -> list[KubeObject]:
    clusterwide = count // 10
    found: list[KubeObject] = [_ccnp(i) for i in range(clusterwide)]
    found.extend(_cnp(f"ns-{i % n_ns}", i) for i in range(count - clusterwide))
    return found


def build_objects(n_pods: int, n_ns: int, n_pol: int, seed: int = 7) -> list[KubeObject]:
    rnd = random.Random(seed)
    objects: list[KubeObject] = []
    per_ns, extra_pol = n_pods // n_ns, n_pol % n_ns
    for i in range(n_ns):
        name = f"ns-{i}"
        objects.append(Namespace(name, {"kubernetes.io/metadata.name": name, "team": f"t{i % 50}"}))
        for j in range(per_ns):
            ip = f"10.{(i >> 8) & 255}.{i & 255}.{j + 1}"
            objects.append(Pod(name, f"{APPS[j % 5]}-{j}", {"app": APPS[j % 5]}, ips=(ip,),
                               node_name=f"node-{i % 100}", container_ports=PORTS))
        objects.extend(_policies_for(name, n_pol // n_ns + (1 if i < extra_pol else 0), rnd))
    return objects


def timed(label: str, fn: object, *args: object) -> object:
    start = time.perf_counter()
    result = fn(*args)  # type: ignore[operator]
    print(f"{label:<48} {time.perf_counter() - start:10.3f} s")
    return result


def per_call(label: str, calls: int, seconds: float) -> None:
    print(f"{label:<48} {seconds / calls * 1e6:10.2f} µs/decision  ({calls} calls)")


Question = tuple[Subject, Subject, int, str]


def random_pairs(state: ClusterState, count: int, rnd: random.Random) -> list[Question]:
    pods = state.pods
    pairs: list[Question] = []
    for i in range(count):
        src: Subject = PodSubject(rnd.choice(pods))
        dst: Subject = PodSubject(rnd.choice(pods))
        if i % 10 == 0:
            dst = ExternalSubject(f"203.0.113.{rnd.randrange(256)}")
        if i % 20 == 1:
            pairs.append((src, dst, 8, "ICMP"))
            continue
        pairs.append((src, dst, rnd.choice((8080, 9090, 5432, 443)), "TCP"))
    return pairs


def bench_decisions(state: ClusterState, rnd: random.Random) -> None:
    pairs = random_pairs(state, 20_000, rnd)
    engine = PolicyEngine()
    start = time.perf_counter()
    for src, dst, port, proto in pairs:
        engine.decide(state, src, dst, port, proto)
    per_call("decide, cold (empty caches)", len(pairs), time.perf_counter() - start)
    start = time.perf_counter()
    for src, dst, port, proto in pairs:
        engine.decide_uncached(state, src, dst, port, proto)
    per_call("decide_uncached, warm selector cache", len(pairs), time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(5):
        for src, dst, port, proto in pairs:
            engine.decide(state, src, dst, port, proto)
    per_call("decide, cached", 5 * len(pairs), time.perf_counter() - start)
    allowed = sum(engine.decide(state, *p).allowed for p in pairs)
    print(f"{'allowed / asked':<48} {allowed:>10} / {len(pairs)}")
    fresh = PolicyEngine()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for src, dst, port, proto in pairs:
        fresh.decide(state, src, dst, port, proto)
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    print(f"{'decision cache memory per entry (tracemalloc)':<48} {used / len(pairs):10.0f} B")


def bench_change_visibility(state: ClusterState, rnd: random.Random) -> None:
    engine = PolicyEngine()
    api = next(p for p in state.pods if p.labels.get("app") == "api")
    web = next(p for p in state.pods_in(api.namespace) if p.labels.get("app") == "web")
    engine.decide(state, PodSubject(web), PodSubject(api), 8080)
    samples = []
    current = state
    for i in range(200):
        pol = current.policy(api.namespace, "api-from-web")
        assert pol is not None
        changed = replace(pol, resource_version=str(i), ingress=() if i % 2 == 0 else pol.ingress)
        start = time.perf_counter()
        current = current.apply(Change(i, ChangeType.MODIFIED, changed))
        new_api, new_web = current.pod(api.namespace, api.name), current.pod(web.namespace, web.name)
        assert new_api is not None
        assert new_web is not None
        engine.decide(current, PodSubject(new_web), PodSubject(new_api), 8080)
        samples.append(time.perf_counter() - start)
    samples.sort()
    print(f"{'policy change visible (apply+decide) p50/p99':<48} {samples[100] * 1e3:8.3f} / "
          f"{samples[197] * 1e3:.3f} ms")
    del rnd


def _fill_history(state: ClusterState, changes: list[Change]) -> ClusterHistory:
    history = ClusterHistory(initial=state)
    for change in changes:
        history.apply(change)
    return history


def bench_history(state: ClusterState, count: int) -> None:
    pods = state.pods
    changes = [Change(i, ChangeType.MODIFIED, replace(p, labels={**p.labels, "rev": str(i)}))
               for i, p in ((i, pods[i % len(pods)]) for i in range(count))]
    start = time.perf_counter()
    history = _fill_history(state, changes)
    elapsed = time.perf_counter() - start
    print(f"{f'history: {count} pod changes':<48} {elapsed:10.3f} s  ({elapsed / count * 1e6:.1f} µs/change)")
    del history
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    history = _fill_history(state, changes)
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    print(f"{'history memory per change (tracemalloc)':<48} {used / count / 1024:10.2f} KiB")
    start = time.perf_counter()
    for i in range(10_000):
        history.at((i * 7919) % count)
    print(f"{'history.at lookup':<48} {(time.perf_counter() - start) / 10_000 * 1e6:10.2f} µs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--namespaces", type=int, default=2_000)
    parser.add_argument("--policies", type=int, default=5_000)
    parser.add_argument("--cilium", type=int, default=2_000)
    args = parser.parse_args(argv)
    rnd = random.Random(1)
    tracemalloc.start()
    objects = build_objects(args.pods, args.namespaces, args.policies) + cilium_objects(args.cilium,
                                                                                       args.namespaces)
    objects_mem = tracemalloc.get_traced_memory()[0]
    print(f"inventory: {args.pods} pods, {args.namespaces} namespaces, {args.policies} NetworkPolicies, "
          f"{args.cilium} Cilium policies")
    print(f"{'model objects memory (tracemalloc)':<48} {objects_mem / 2**20:10.1f} MiB")
    tracemalloc.stop()
    tracemalloc.start()
    state: ClusterState = timed("build (bulk, validates every policy)", ClusterState.build, objects)  # type: ignore
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    label = "state indexes memory (beyond the objects)"
    print(f"{label:<48} {current / 2**20:10.1f} MiB (peak {peak / 2**20:.1f})")

    def incremental() -> ClusterState:
        st = ClusterState.empty()
        for i, obj in enumerate(objects):
            st = st.apply(Change(i, ChangeType.ADDED, obj))
        return st
    timed("build (one apply per object)", incremental)
    bench_decisions(state, rnd)
    bench_change_visibility(state, rnd)
    bench_history(state, 10_000)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
