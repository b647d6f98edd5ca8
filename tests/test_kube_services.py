"""v1 Services and discovery.k8s.io/v1 EndpointSlices: conversion, export, live list+watch, record."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from auditor.errors import ManifestError
from auditor.kube.client import DEFAULT_RESOURCES, RESOURCES, factory_for, list_inventory, resource_of
from auditor.kube.convert import object_from_dict
from auditor.kube.events import load_cluster_events
from auditor.kube.export import object_to_dict
from auditor.kube.manifests import load_manifests
from auditor.kube.reflector import inventory_key
from auditor.kube.watch import InventoryWatcher
from auditor.model.k8s import ChangeType, EndpointSlice, Service, ServicePort, SliceEndpoint
from auditor.policy.state import ClusterState
from tests.kubeapi import KubeAPI
from tests.test_kube_record_cilium import record_until
from tests.test_kube_watch import FAST, WAIT, Recorder

SHOP = Path(__file__).parent / "fixtures" / "manifests" / "shop"


def service(name: str = "db", namespace: str = "shop", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": spec}


def endpoint_slice(name: str = "db-x1", service_name: str = "db", *endpoints: dict[str, Any],
                   address_type: str = "IPv4") -> dict[str, Any]:
    labels = {"kubernetes.io/service-name": service_name}
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": address_type,
            "metadata": {"name": name, "namespace": "shop", "labels": labels},
            "endpoints": list(endpoints) or [{"addresses": ["203.0.113.5"], "conditions": {"ready": True}}]}


class TestServiceConversion:
    def test_fields_are_kept(self) -> None:
        """Labels, selector, type, cluster IPs and ports (protocol TCP by default) are kept."""
        ports = [{"name": "pg", "port": 5432, "targetPort": "pg"}]
        raw = service(selector={"app": "db"}, type="ClusterIP", clusterIP="10.96.0.5",
                      clusterIPs=["10.96.0.5", "fd00::5"], ports=ports)
        raw["metadata"]["labels"] = {"tier": "data"}
        svc = object_from_dict(raw)
        assert isinstance(svc, Service)
        assert (svc.key, dict(svc.labels), svc.selector, svc.type, svc.cluster_ips) == (
            "shop/db", {"tier": "data"}, {"app": "db"}, "ClusterIP", ("10.96.0.5", "fd00::5"))
        assert svc.ports == (ServicePort(5432, "TCP", "pg", "pg"),)

    def test_absent_selector_is_none(self) -> None:
        """A Service without spec.selector has selector None and no selector."""
        svc = object_from_dict(service())
        assert isinstance(svc, Service)
        assert (svc.selector, svc.has_selector) == (None, False)

    def test_empty_selector_counts_as_selectorless(self) -> None:
        """`selector: {}` is kept as written but counts as selector-less."""
        svc = object_from_dict(service(selector={}))
        assert isinstance(svc, Service)
        assert (svc.selector, svc.has_selector) == ({}, False)

    def test_single_cluster_ip_without_cluster_ips(self) -> None:
        """spec.clusterIP alone becomes the one cluster IP."""
        svc = object_from_dict(service(clusterIP="10.96.0.7"))
        assert isinstance(svc, Service)
        assert svc.cluster_ips == ("10.96.0.7",)

    def test_port_without_number_is_an_error(self) -> None:
        """A ports entry without `port` names the Service and the field."""
        with pytest.raises(ManifestError, match=r"Service shop/db: spec.ports\[0\].port: required field"):
            object_from_dict(service(ports=[{"name": "pg"}]))

    def test_selector_values_must_be_strings(self) -> None:
        """A non-string selector value is a structural error naming spec.selector."""
        with pytest.raises(ManifestError, match=r"spec.selector.app: expected a string"):
            object_from_dict(service(selector={"app": 1}))


class TestEndpointSliceConversion:
    def test_fields_are_kept(self) -> None:
        """Service name label, addressType, addresses and conditions (unset ones None) are kept."""
        raw = endpoint_slice("db-x1", "db", {"addresses": ["10.0.0.1"], "conditions": {"ready": False,
                                                                                       "serving": True}},
                             {"addresses": ["10.0.0.2"]})
        eps = object_from_dict(raw)
        assert isinstance(eps, EndpointSlice)
        assert (eps.key, eps.service_name, eps.address_type) == ("shop/db-x1", "db", "IPv4")
        assert eps.endpoints == (SliceEndpoint(("10.0.0.1",), False, True, None), SliceEndpoint(("10.0.0.2",)))

    def test_slice_without_service_label_belongs_to_no_service(self) -> None:
        """Without the kubernetes.io/service-name label the slice's service name is empty."""
        raw = endpoint_slice()
        raw["metadata"]["labels"] = {}
        eps = object_from_dict(raw)
        assert isinstance(eps, EndpointSlice)
        assert eps.service_name == ""

    def test_address_type_is_required(self) -> None:
        """A slice without addressType is an error, as the API requires it."""
        raw = endpoint_slice()
        del raw["addressType"]
        with pytest.raises(ManifestError, match="EndpointSlice shop/db-x1: addressType: required field"):
            object_from_dict(raw)

    def test_condition_must_be_boolean(self) -> None:
        """A condition that is not true/false names its path."""
        raw = endpoint_slice("db-x1", "db", {"addresses": ["10.0.0.1"], "conditions": {"ready": "yes"}})
        with pytest.raises(ManifestError, match=r"endpoints\[0\].conditions.ready: expected true or false"):
            object_from_dict(raw)


ROUND_TRIP = [
    service(selector={"app": "db"}, clusterIPs=["10.96.0.5"], clusterIP="10.96.0.5",
            ports=[{"port": 53, "protocol": "UDP", "targetPort": 5353}], type="ClusterIP"),
    service(selector={}),
    service(),
    endpoint_slice("db-x1", "db", {"addresses": ["10.0.0.1"], "conditions": {"ready": False, "serving": True,
                                                                               "terminating": True}},
                   {"addresses": ["10.0.0.2"]}),
    endpoint_slice("db-v6", "db", {"addresses": ["fd00::1"]}, address_type="IPv6"),
]


@pytest.mark.parametrize("raw", ROUND_TRIP, ids=["service", "empty", "none", "slice", "slice-v6"])
def test_export_then_convert_gives_the_same_object(raw: dict[str, Any]) -> None:
    """object_from_dict(object_to_dict(o)) == o for Services and EndpointSlices."""
    obj = object_from_dict(raw)
    assert object_from_dict(object_to_dict(obj)) == obj


def test_shop_manifests_keep_their_service() -> None:
    """The shop fixture's frontend Service is loaded (no longer skipped), with its selector."""
    services = [o for o in load_manifests([str(SHOP)]) if isinstance(o, Service)]
    assert [(s.key, s.selector) for s in services] == [("shop/frontend", {"app": "frontend"})]


def test_services_and_slices_are_default_resources() -> None:
    """The live inventory lists Services (v1) and EndpointSlices (discovery.k8s.io/v1) by default."""
    assert {"services", "endpointslices"} <= set(DEFAULT_RESOURCES)
    assert (RESOURCES["services"].api_version, RESOURCES["endpointslices"].api_version) == (
        "v1", "discovery.k8s.io/v1")


@pytest.fixture(name="api")
def _api() -> Iterator[KubeAPI]:
    api = KubeAPI().start()
    api.put("services", service(selector={"app": "db"}))
    api.put("endpointslices", endpoint_slice())
    yield api
    api.stop()


@pytest.fixture(name="start")
def _start() -> Iterator[Callable[[KubeAPI, Recorder], InventoryWatcher]]:
    watchers: list[InventoryWatcher] = []

    def start(api: KubeAPI, recorder: Recorder) -> InventoryWatcher:
        watcher = InventoryWatcher(factory_for(api.configuration()), recorder,
                                   resources=("services", "endpointslices"), settings=FAST)
        watchers.append(watcher)
        watcher.start()
        return watcher

    yield start
    for watcher in watchers:
        watcher.stop()


class TestLive:
    def test_list_inventory_converts_both_kinds(self, api: KubeAPI) -> None:
        """A one-shot list returns the Service and the EndpointSlice as model objects."""
        client = factory_for(api.configuration())()
        objects = list_inventory(client, ("services", "endpointslices"))
        assert sorted((resource_of(o), o.name) for o in objects) == [("endpointslices", "db-x1"),
                                                                     ("services", "db")]

    def test_watch_delivers_service_and_slice_changes(
        self, api: KubeAPI, start: Callable[[KubeAPI, Recorder], InventoryWatcher]
    ) -> None:
        """ADDED from the lists, then MODIFIED and DELETED from the watches of both resources."""
        recorder = Recorder()
        watcher = start(api, recorder)
        assert watcher.wait_synced(WAIT)
        assert api.wait_for_watch("services")
        assert api.wait_for_watch("endpointslices")
        api.put("endpointslices", endpoint_slice("db-x1", "db", {"addresses": ["203.0.113.9"]}))
        api.delete("services", "db", "shop")
        recorder.wait_for(recorder.seen(ChangeType.MODIFIED, "shop/db-x1"))
        changes = recorder.wait_for(recorder.seen(ChangeType.DELETED, "shop/db"))
        by_resource = {r: [c for c in changes if resource_of(c.obj) == r]
                       for r in ("services", "endpointslices")}
        assert [c.type for c in by_resource["services"]] == [ChangeType.ADDED, ChangeType.DELETED]
        assert [c.type for c in by_resource["endpointslices"]] == [ChangeType.ADDED, ChangeType.MODIFIED]
        modified = by_resource["endpointslices"][1].obj
        assert isinstance(modified, EndpointSlice)
        assert modified.endpoints[0].addresses == ("203.0.113.9",)

    def test_watched_objects_index_into_the_state(
        self, api: KubeAPI, start: Callable[[KubeAPI, Recorder], InventoryWatcher]
    ) -> None:
        """The listed Service and slice land in ClusterState: by name, and the slice under its Service."""
        recorder = Recorder()
        assert start(api, recorder).wait_synced(WAIT)
        state = ClusterState.build(c.obj for c in recorder.changes)
        assert state.service("shop", "db") is not None
        assert [s.name for s in state.service_slices("shop", "db")] == ["db-x1"]
        assert state.service_index.backends("shop", "db") == frozenset({"203.0.113.5"})


def test_record_carries_services_and_slices(api: KubeAPI, tmp_path: Path) -> None:
    """`auditor record` writes both kinds to the snapshot, and later changes as event lines."""
    def add_slice() -> None:
        api.put("endpointslices", endpoint_slice("db-x2", "db"))

    snapshot, events = record_until(api, tmp_path, 1, add_slice)
    recorded = {inventory_key(o) for o in load_manifests([str(snapshot)])}
    assert {("services", "shop/db"), ("endpointslices", "shop/db-x1")} <= recorded
    assert [(c.type, inventory_key(c.obj)) for c in load_cluster_events(str(events))] == [
        (ChangeType.ADDED, ("endpointslices", "shop/db-x2"))]
