"""Live list+watch of Cilium's policy CRDs with the real kubernetes client against the loopback API server."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from auditor.app.inventory import LiveInventory, manifest_inventory
from auditor.kube.client import CILIUM_RESOURCES, factory_for, list_inventory, resource_of
from auditor.kube.reflector import inventory_key
from auditor.kube.watch import InventoryWatcher
from auditor.model.cilium import CiliumCIDRGroup, CiliumKind, CiliumNetworkPolicy
from auditor.model.k8s import ChangeType, KubeObject, NetworkPolicy
from auditor.policy.history import ClusterHistory
from tests.kubeapi import CILIUM_PATHS, KubeAPI
from tests.test_kube_watch import FAST, WAIT, Recorder, _key, namespace, pod, wait_until

V2_GROUPS = "/apis/cilium.io/v2/ciliumcidrgroups"
V2ALPHA1_GROUPS = "/apis/cilium.io/v2alpha1/ciliumcidrgroups"
RECHECK = replace(FAST, unserved_recheck_seconds=0.05)
DAY_NS = 24 * 3600 * 10**9


def cnp(name: str, namespace: str = "shop", **match: str) -> dict[str, Any]:
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"endpointSelector": {"matchLabels": match}, "ingress": [{"fromEntities": ["cluster"]}]},
    }


def ccnp(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": {"name": name},
        "spec": {"nodeSelector": {}, "ingress": [{"fromEntities": ["remote-node"]}]},
    }


def cidr_group(name: str, version: str = "v2", *cidrs: str) -> dict[str, Any]:
    return {
        "apiVersion": f"cilium.io/{version}",
        "kind": "CiliumCIDRGroup",
        "metadata": {"name": name},
        "spec": {"externalCIDRs": list(cidrs) or ["203.0.113.0/24"]},
    }


def seed(api: KubeAPI) -> KubeAPI:
    api.put("namespaces", namespace("shop"))
    api.put("pods", pod("api-1", app="api"))
    api.put("ciliumnetworkpolicies", cnp("api", app="api"))
    api.put("ciliumclusterwidenetworkpolicies", ccnp("hosts"))
    api.put("ciliumcidrgroups", cidr_group("partners"))
    return api


@pytest.fixture(name="api")
def _api() -> Iterator[KubeAPI]:
    api = seed(KubeAPI()).start()
    yield api
    api.stop()


@pytest.fixture(name="recorder")
def _recorder() -> Recorder:
    return Recorder()


@pytest.fixture(name="start")
def _start(recorder: Recorder) -> Iterator[Callable[..., InventoryWatcher]]:
    watchers: list[InventoryWatcher] = []

    def start(api: KubeAPI, **options: Any) -> InventoryWatcher:
        options.setdefault("settings", FAST)
        watcher = InventoryWatcher(factory_for(api.configuration()), recorder, **options)
        watchers.append(watcher)
        watcher.start()
        return watcher

    yield start
    for watcher in watchers:
        watcher.stop()


def not_served_warnings(logs: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted(e["resource"] for e in logs if e["event"] == "inventory_resource_not_served")


class TestServed:
    def test_initial_lists_convert_every_cilium_kind(
        self, api: KubeAPI, start: Callable[..., InventoryWatcher], recorder: Recorder
    ) -> None:
        """The default resources include the three Cilium CRDs; their objects arrive converted."""
        watcher = start(api)
        assert watcher.wait_synced(WAIT)
        added = {(resource_of(c.obj), _key(c)): c.obj for c in recorder.changes if c.type is ChangeType.ADDED}
        cnp_obj = added[("ciliumnetworkpolicies", "shop/api")]
        ccnp_obj = added[("ciliumclusterwidenetworkpolicies", "hosts")]
        assert isinstance(cnp_obj, CiliumNetworkPolicy)
        assert isinstance(ccnp_obj, CiliumNetworkPolicy)
        assert (cnp_obj.kind, ccnp_obj.kind, ccnp_obj.namespace) == (CiliumKind.CNP, CiliumKind.CCNP, "")
        assert added[("ciliumcidrgroups", "partners")] == CiliumCIDRGroup(
            "partners", ("203.0.113.0/24",), uid=added[("ciliumcidrgroups", "partners")].uid,
            resource_version=added[("ciliumcidrgroups", "partners")].resource_version)
        assert all(watcher.status().resources[r].served for r in CILIUM_RESOURCES)

    def test_watch_delivers_cnp_and_ccnp_changes(
        self, api: KubeAPI, start: Callable[..., InventoryWatcher], recorder: Recorder
    ) -> None:
        """ADDED, MODIFIED and DELETED of CNPs and CCNPs come from the CRDs' watches, in order."""
        watcher = start(api, resources=("ciliumnetworkpolicies", "ciliumclusterwidenetworkpolicies"))
        assert watcher.wait_synced(WAIT)
        assert api.wait_for_watch("ciliumnetworkpolicies")
        assert api.wait_for_watch("ciliumclusterwidenetworkpolicies")
        api.put("ciliumnetworkpolicies", cnp("db", app="db"))
        api.put("ciliumnetworkpolicies", cnp("db", app="postgres"))
        api.delete("ciliumnetworkpolicies", "db", "shop")
        api.put("ciliumclusterwidenetworkpolicies", ccnp("edge"))
        recorder.wait_for(recorder.seen(ChangeType.ADDED, "edge"))
        changes = recorder.wait_for(recorder.seen(ChangeType.DELETED, "shop/db"))
        db = [c for c in changes if _key(c) == "shop/db"]
        assert [c.type for c in db] == [ChangeType.ADDED, ChangeType.MODIFIED, ChangeType.DELETED]
        modified = db[1].obj
        assert isinstance(modified, CiliumNetworkPolicy)
        assert modified.specs[0].endpoint_selector is not None
        assert modified.specs[0].endpoint_selector.match_labels == {"app": "postgres"}

    def test_crd_lists_are_paged(self, api: KubeAPI, start: Callable[..., InventoryWatcher],
                                 recorder: Recorder) -> None:
        """CustomObjectsApi lists follow `continue` tokens like the built-in kinds."""
        api.put("ciliumnetworkpolicies", cnp("web", app="web"))
        api.put("ciliumnetworkpolicies", cnp("db", app="db"))
        watcher = start(api, resources=("ciliumnetworkpolicies",), settings=replace(FAST, list_page_size=2))
        assert watcher.wait_synced(WAIT)
        assert len(api.list_requests("ciliumnetworkpolicies")) == 2
        assert {_key(c) for c in recorder.changes} == {"shop/api", "shop/web", "shop/db"}

    def test_bookmark_then_resume_from_it(self, api: KubeAPI, start: Callable[..., InventoryWatcher]) -> None:
        """A BOOKMARK on a CRD watch moves the resourceVersion the next watch resumes from."""
        watcher = start(api, resources=("ciliumclusterwidenetworkpolicies",))
        assert watcher.wait_synced(WAIT)
        assert api.wait_for_watch("ciliumclusterwidenetworkpolicies")
        version = api.bookmark("ciliumclusterwidenetworkpolicies")
        status = watcher.status
        wait_until(lambda: status().resources["ciliumclusterwidenetworkpolicies"].resource_version == version)
        api.drop("ciliumclusterwidenetworkpolicies")
        wait_until(lambda: len(api.watch_requests("ciliumclusterwidenetworkpolicies")) >= 2)
        assert api.watch_requests("ciliumclusterwidenetworkpolicies")[1].resource_version == version

    def test_gone_relists_and_reports_a_deletion_in_the_gap(
        self, api: KubeAPI, start: Callable[..., InventoryWatcher], recorder: Recorder
    ) -> None:
        """ERROR 410 on a CNP watch relists; a CNP deleted while its event was lost is reported DELETED."""
        watcher = start(api, resources=("ciliumnetworkpolicies",))
        assert watcher.wait_synced(WAIT)
        assert api.wait_for_watch("ciliumnetworkpolicies")
        api.delete("ciliumnetworkpolicies", "api", "shop", deliver=False)
        api.expire("ciliumnetworkpolicies")
        recorder.wait_for(recorder.seen(ChangeType.DELETED, "shop/api"))
        assert watcher.status().resources["ciliumnetworkpolicies"].relists == 1

    def test_server_error_backs_off_and_recovers(
        self, api: KubeAPI, start: Callable[..., InventoryWatcher]
    ) -> None:
        """A 500 on a CRD list is an error (not "not served"): counted, retried, then synced."""
        api.fail_next("ciliumcidrgroups", 500, on="list")
        with capture_logs() as logs:
            watcher = start(api, resources=("ciliumcidrgroups",))
            assert watcher.wait_synced(WAIT)
        status = watcher.status().resources["ciliumcidrgroups"]
        assert (status.errors, status.served, status.objects) == (1, True, 1)
        assert not_served_warnings(logs) == []

    def test_invalid_cnp_is_counted_by_kind(
        self, api: KubeAPI, start: Callable[..., InventoryWatcher], recorder: Recorder
    ) -> None:
        """A structurally broken CNP from the API is counted and skipped; the next one arrives."""
        watcher = start(api, resources=("ciliumnetworkpolicies",))
        assert watcher.wait_synced(WAIT)
        broken = cnp("broken")
        broken["spec"]["ingress"] = {"fromEntities": ["world"]}
        api.put("ciliumnetworkpolicies", broken)
        api.put("ciliumnetworkpolicies", cnp("fine"))
        recorder.wait_for(recorder.seen(ChangeType.ADDED, "shop/fine"))
        assert watcher.status().resources["ciliumnetworkpolicies"].invalid_objects == {"CiliumNetworkPolicy": 1}


class TestCIDRGroupVersions:
    def test_v2_is_listed_first(self, api: KubeAPI, start: Callable[..., InventoryWatcher]) -> None:
        """Where v2 is served (Cilium 1.18+) CiliumCIDRGroups are listed and watched at v2 only."""
        watcher = start(api, resources=("ciliumcidrgroups",))
        assert watcher.wait_synced(WAIT)
        assert api.wait_for_watch("ciliumcidrgroups")
        paths = {r.path for r in api.requests if r.resource == "ciliumcidrgroups"}
        assert paths == {V2_GROUPS}

    def test_older_cilium_falls_back_to_v2alpha1(
        self, api: KubeAPI, start: Callable[..., InventoryWatcher], recorder: Recorder
    ) -> None:
        """Where v2 answers 404 the v2alpha1 version is listed and watched, with no warning."""
        api.unserve(V2_GROUPS)
        with capture_logs() as logs:
            watcher = start(api, resources=("ciliumcidrgroups",))
            assert watcher.wait_synced(WAIT)
        assert api.wait_for_watch("ciliumcidrgroups")
        api.put("ciliumcidrgroups", cidr_group("late", "v2alpha1", "198.51.100.0/24"))
        changes = recorder.wait_for(recorder.seen(ChangeType.ADDED, "late"))
        assert {_key(c) for c in changes} == {"partners", "late"}
        assert [r.path for r in api.watch_requests("ciliumcidrgroups")] == [V2ALPHA1_GROUPS]
        assert watcher.status().resources["ciliumcidrgroups"].served
        assert not_served_warnings(logs) == []


class TestWithoutCiliumCRDs:
    def test_ready_with_one_warning_per_missing_resource(self, start: Callable[..., InventoryWatcher],
                                                         recorder: Recorder) -> None:
        """Without the CRDs the watcher is ready, built-ins work, and each missing resource warns once."""
        api = seed(KubeAPI(unserved=tuple(CILIUM_PATHS))).start()
        try:
            with capture_logs() as logs:
                watcher = start(api, settings=RECHECK)
                assert watcher.wait_synced(WAIT)
                wait_until(lambda: all(len(api.list_requests(r)) >= 3 for r in CILIUM_RESOURCES))
            api.put("pods", pod("late-1"))
            recorder.wait_for(recorder.seen(ChangeType.ADDED, "shop/late-1"))
        finally:
            watcher.stop()
            api.stop()
        assert not_served_warnings(logs) == sorted(CILIUM_RESOURCES)
        assert {_key(c) for c in recorder.changes} == {"shop", "shop/api-1", "shop/late-1"}
        for resource in CILIUM_RESOURCES:
            status = watcher.status().resources[resource]
            assert (status.synced, status.up, status.served, status.objects, status.errors) == (
                True, True, False, 0, 0)
        assert watcher.status().ready

    def test_crd_installed_later_is_picked_up(self, start: Callable[..., InventoryWatcher],
                                              recorder: Recorder) -> None:
        """A CRD that appears after the start is found at the next recheck and its objects arrive."""
        api = KubeAPI(unserved=("/apis/cilium.io/v2/ciliumnetworkpolicies",)).start()
        try:
            watcher = start(api, resources=("ciliumnetworkpolicies",), settings=RECHECK)
            assert watcher.wait_synced(WAIT)
            assert not watcher.status().resources["ciliumnetworkpolicies"].served
            api.put("ciliumnetworkpolicies", cnp("api"))
            api.serve("/apis/cilium.io/v2/ciliumnetworkpolicies")
            recorder.wait_for(recorder.seen(ChangeType.ADDED, "shop/api"))
            assert api.wait_for_watch("ciliumnetworkpolicies")
            status = watcher.status().resources["ciliumnetworkpolicies"]
            assert (status.served, status.relists) == (True, 0)
        finally:
            watcher.stop()
            api.stop()

    def test_crd_removed_deletes_its_objects(
        self, api: KubeAPI, start: Callable[..., InventoryWatcher], recorder: Recorder
    ) -> None:
        """When the CRD goes away (404 on the re-watch) its known objects are reported DELETED, once."""
        watcher = start(api, resources=("ciliumclusterwidenetworkpolicies",), settings=RECHECK)
        assert watcher.wait_synced(WAIT)
        assert api.wait_for_watch("ciliumclusterwidenetworkpolicies")
        with capture_logs() as logs:
            api.unserve("/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies")
            api.drop("ciliumclusterwidenetworkpolicies")
            recorder.wait_for(recorder.seen(ChangeType.DELETED, "hosts"))
            wait_until(lambda: len(api.list_requests("ciliumclusterwidenetworkpolicies")) >= 4)
        status = watcher.status().resources["ciliumclusterwidenetworkpolicies"]
        assert (status.served, status.objects, status.synced) == (False, 0, True)
        assert not_served_warnings(logs) == ["ciliumclusterwidenetworkpolicies"]

    def test_one_shot_list_skips_missing_crds(self) -> None:
        """list_inventory lists what is served and skips Cilium resources answered with 404."""
        api = seed(KubeAPI(unserved=("/apis/cilium.io/v2/ciliumnetworkpolicies", V2_GROUPS,
                                     V2ALPHA1_GROUPS))).start()
        try:
            objects = list_inventory(factory_for(api.configuration())())
        finally:
            api.stop()
        assert sorted(inventory_key(o) for o in objects) == [
            ("ciliumclusterwidenetworkpolicies", "hosts"), ("namespaces", "shop"), ("pods", "shop/api-1")]


class TestKeys:
    def test_cnp_netpol_and_ccnp_keys_are_distinct(self) -> None:
        """A CNP and a NetworkPolicy named shop/x, and a CCNP x, get three different inventory keys."""
        objects: list[KubeObject] = [
            CiliumNetworkPolicy(CiliumKind.CNP, "x", "shop"),
            NetworkPolicy("shop", "x"),
            CiliumNetworkPolicy(CiliumKind.CCNP, "x"),
            CiliumCIDRGroup("x"),
        ]
        assert len({inventory_key(o) for o in objects}) == 4



class TestLiveInventory:
    def test_cilium_objects_reach_the_cluster_history(self, api: KubeAPI) -> None:
        """Listed CNPs, CCNPs and CIDR groups are in the base state; later ones arrive at receipt."""
        inventory = LiveInventory(
            ClusterHistory(window_ns=DAY_NS),
            lambda sink: InventoryWatcher(factory_for(api.configuration()), sink, settings=FAST),
        )
        inventory.start()
        try:
            wait_until(inventory.ready)
            api.put("ciliumnetworkpolicies", cnp("late", app="web"))
            wait_until(lambda: len(inventory.history.latest().cilium_policies) == 3)
            base = inventory.history.at(1)
        finally:
            inventory.stop()
        assert sorted(c.policy.key for c in base.cilium_policies) == ["hosts", "shop/api"]
        assert list(base.cilium.groups) == ["partners"]

    def test_manifest_inventory_reports_cilium_resources(self, tmp_path: Path) -> None:
        """A manifests inventory has a synced status per Cilium resource, counting valid objects."""
        path = tmp_path / "cluster.yaml"
        path.write_text(yaml.safe_dump_all([namespace("shop"), cnp("api", app="api"), ccnp("hosts"),
                                            cidr_group("partners")]))
        status = manifest_inventory([str(path)], None, DAY_NS).status()
        assert {r: status.resources[r].objects for r in CILIUM_RESOURCES} == {
            "ciliumnetworkpolicies": 1, "ciliumclusterwidenetworkpolicies": 1, "ciliumcidrgroups": 1}
        assert status.ready
