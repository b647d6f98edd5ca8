"""`auditor record` carries Cilium's policy kinds: snapshot and change lines, read back offline."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from auditor.app.record import RecordOptions, record
from auditor.kube.client import factory_for
from auditor.kube.events import load_cluster_events
from auditor.kube.manifests import load_manifests
from auditor.kube.reflector import inventory_key
from auditor.model.cilium import CiliumCIDRGroup, CiliumKind, CiliumNetworkPolicy
from auditor.model.k8s import NetworkPolicy
from tests.kubeapi import CILIUM_PATHS, KubeAPI
from tests.test_kube_watch_cilium import ccnp, cidr_group, cnp, seed

WAIT = 10.0


@pytest.fixture(name="api")
def _api() -> Iterator[KubeAPI]:
    api = seed(KubeAPI()).start()
    api.put("networkpolicies", {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                                "metadata": {"name": "api", "namespace": "shop"}, "spec": {"podSelector": {}}})
    yield api
    api.stop()


def record_until(api: KubeAPI, tmp_path: Path, changes: int,
                 act: Callable[[], None] | None = None) -> tuple[Path, Path]:
    """Record, run `act` once the snapshot is written, stop after `changes` event lines."""
    snapshot, events = tmp_path / "snapshot.yaml", tmp_path / "events.jsonl"
    stop, written = threading.Event(), threading.Event()
    options = RecordOptions(snapshot=str(snapshot), events=str(events), sync_timeout_seconds=WAIT)
    worker = threading.Thread(target=record, args=(options,), kwargs={
        "factory": factory_for(api.configuration()), "stop": stop, "on_snapshot": lambda n: written.set()})
    worker.start()
    try:
        assert written.wait(WAIT)
        if act is not None:
            act()
        for _ in range(1000):
            if changes == 0 or (events.exists() and len(events.read_text().splitlines()) >= changes):
                break
            stop.wait(0.01)
    finally:
        stop.set()
        worker.join(WAIT)
    return snapshot, events


class TestRecordCilium:
    def test_snapshot_holds_every_cilium_kind(self, api: KubeAPI, tmp_path: Path) -> None:
        """The snapshot has the CNP, the NetworkPolicy of the same name, the CCNP and the CIDR group."""
        snapshot, _ = record_until(api, tmp_path, 0)
        objects = load_manifests([str(snapshot)])
        assert sorted(inventory_key(o) for o in objects) == [
            ("ciliumcidrgroups", "partners"), ("ciliumclusterwidenetworkpolicies", "hosts"),
            ("ciliumnetworkpolicies", "shop/api"), ("namespaces", "shop"), ("networkpolicies", "shop/api"),
            ("pods", "shop/api-1")]
        policy = next(o for o in objects if isinstance(o, CiliumNetworkPolicy) and o.kind is CiliumKind.CNP)
        assert policy.specs[0].ingress is not None
        assert policy.specs[0].ingress[0].entities == ("cluster",)
        assert any(isinstance(o, NetworkPolicy) for o in objects)

    def test_later_cilium_changes_are_event_lines(self, api: KubeAPI, tmp_path: Path) -> None:
        """CNP, CCNP and CIDR group changes after the snapshot are `--cluster-events` lines."""
        def act() -> None:
            api.put("ciliumnetworkpolicies", cnp("api", app="api", tier="v2"))
            api.delete("ciliumclusterwidenetworkpolicies", "hosts")
            api.put("ciliumcidrgroups", cidr_group("partners", "v2", "192.0.2.0/24"))

        _, events = record_until(api, tmp_path, 3, act)
        changes = load_cluster_events(str(events))
        assert sorted((c.type.value, *inventory_key(c.obj)) for c in changes) == [
            ("DELETED", "ciliumclusterwidenetworkpolicies", "hosts"),
            ("MODIFIED", "ciliumcidrgroups", "partners"),
            ("MODIFIED", "ciliumnetworkpolicies", "shop/api"),
        ]
        [group] = [c.obj for c in changes if isinstance(c.obj, CiliumCIDRGroup)]
        assert group.cidrs == ("192.0.2.0/24",)

    def test_records_without_cilium_crds(self, tmp_path: Path) -> None:
        """Without Cilium's CRDs the recording syncs and the snapshot has the built-in kinds."""
        api = seed(KubeAPI(unserved=tuple(CILIUM_PATHS))).start()
        try:
            api.put("ciliumclusterwidenetworkpolicies", ccnp("never-listed"))
            snapshot, _ = record_until(api, tmp_path, 0)
        finally:
            api.stop()
        assert sorted(inventory_key(o) for o in load_manifests([str(snapshot)])) == [
            ("namespaces", "shop"), ("pods", "shop/api-1")]
