"""The `kubernetes` client at the edge: configuration, raw list/watch calls, error mapping.

Lists and watches ask for raw JSON (`_preload_content=False`) because auditor converts plain
dicts itself (`auditor.kube.convert`); the client's model deserialisation would only be
undone again.  Every ApiException leaving this package becomes an InventoryError.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from auditor.errors import ConfigError, InventoryError
from auditor.kube.convert import object_from_dict
from auditor.kube.fields import describe
from auditor.log import get_logger
from auditor.model.cilium import CiliumCIDRGroup, CiliumNetworkPolicy
from auditor.model.k8s import EndpointSlice, KubeObject, Namespace, NetworkPolicy, Node, Pod, Service

ApiClient = k8s_client.ApiClient
ApiClientFactory = Callable[[], Any]
"""Returns a new `kubernetes.client.ApiClient` (one per watcher thread)."""
_MAX_BODY = 300
NOT_FOUND = 404


@dataclass(frozen=True, slots=True)
class ResourceKind:
    """A watched collection: its plural resource name, the kind and apiVersion of its items."""

    resource: str
    kind: str
    api_version: str
    namespaced: bool
    _list: Callable[[Any], Callable[..., Any]]
    optional: bool = False
    """Served by a CRD that may not be installed: a 404 on the list means "not served", not a failure."""
    fallback: ResourceKind | None = None
    """The same resource at an older version, listed when this version answers 404."""

    def list_call(self, api_client: Any) -> Callable[..., Any]:
        """The cluster-wide list function of the official client (also used with watch=True)."""
        return self._list(api_client)

    def versions(self) -> tuple[ResourceKind, ...]:
        """This kind, then its fallbacks, in the order to try them."""
        return (self,) if self.fallback is None else (self, *self.fallback.versions())


CILIUM_GROUP = "cilium.io"


def _cilium(resource: str, kind: str, version: str, namespaced: bool,
            fallback: ResourceKind | None = None) -> ResourceKind:
    """A Cilium CRD, listed cluster-wide (all namespaces for namespaced ones) through CustomObjectsApi."""

    def bind(api_client: Any) -> Callable[..., Any]:
        custom = k8s_client.CustomObjectsApi(api_client)
        return functools.partial(custom.list_cluster_custom_object, CILIUM_GROUP, version, resource)

    return ResourceKind(resource, kind, f"{CILIUM_GROUP}/{version}", namespaced, bind, optional=True,
                        fallback=fallback)


RESOURCES: Mapping[str, ResourceKind] = {
    "namespaces": ResourceKind(
        "namespaces", "Namespace", "v1", False, lambda c: k8s_client.CoreV1Api(c).list_namespace
    ),
    "pods": ResourceKind(
        "pods", "Pod", "v1", True, lambda c: k8s_client.CoreV1Api(c).list_pod_for_all_namespaces
    ),
    "nodes": ResourceKind("nodes", "Node", "v1", False, lambda c: k8s_client.CoreV1Api(c).list_node),
    "networkpolicies": ResourceKind(
        "networkpolicies",
        "NetworkPolicy",
        "networking.k8s.io/v1",
        True,
        lambda c: k8s_client.NetworkingV1Api(c).list_network_policy_for_all_namespaces,
    ),
    # Services and their EndpointSlices resolve Cilium's toServices peers; Cilium reads backends from
    # EndpointSlices (discovery.k8s.io/v1, served since Kubernetes 1.21), not from v1 Endpoints.
    "services": ResourceKind(
        "services", "Service", "v1", True, lambda c: k8s_client.CoreV1Api(c).list_service_for_all_namespaces
    ),
    "endpointslices": ResourceKind(
        "endpointslices",
        "EndpointSlice",
        "discovery.k8s.io/v1",
        True,
        lambda c: k8s_client.DiscoveryV1Api(c).list_endpoint_slice_for_all_namespaces,
    ),
    "ciliumnetworkpolicies": _cilium("ciliumnetworkpolicies", "CiliumNetworkPolicy", "v2", True),
    "ciliumclusterwidenetworkpolicies": _cilium(
        "ciliumclusterwidenetworkpolicies", "CiliumClusterwideNetworkPolicy", "v2", False
    ),
    # Cilium 1.18 serves CiliumCIDRGroup as v2 (storage) and v2alpha1 (deprecated); older releases
    # only as v2alpha1 (pkg/k8s/apis/cilium.io/client/crds/v2/ciliumcidrgroups.yaml).
    "ciliumcidrgroups": _cilium(
        "ciliumcidrgroups", "CiliumCIDRGroup", "v2", False,
        fallback=_cilium("ciliumcidrgroups", "CiliumCIDRGroup", "v2alpha1", False),
    ),
}
CILIUM_RESOURCES: tuple[str, ...] = (
    "ciliumnetworkpolicies", "ciliumclusterwidenetworkpolicies", "ciliumcidrgroups"
)
SERVICE_RESOURCES: tuple[str, ...] = ("services", "endpointslices")
DEFAULT_RESOURCES: tuple[str, ...] = (
    "namespaces", "pods", "nodes", "networkpolicies", *SERVICE_RESOURCES, *CILIUM_RESOURCES
)
_RESOURCE_OF_TYPE: Mapping[type, str] = {
    Namespace: "namespaces", Pod: "pods", Node: "nodes", NetworkPolicy: "networkpolicies",
    CiliumCIDRGroup: "ciliumcidrgroups", Service: "services", EndpointSlice: "endpointslices",
}


def resource_of(obj: KubeObject) -> str:
    """The resource (a RESOURCES key) an object is listed from: a CCNP and a CNP differ."""
    if isinstance(obj, CiliumNetworkPolicy):
        return "ciliumclusterwidenetworkpolicies" if obj.clusterwide else "ciliumnetworkpolicies"
    return _RESOURCE_OF_TYPE[type(obj)]


def resource_kinds(names: Sequence[str]) -> tuple[ResourceKind, ...]:
    """Look up resource names; unknown ones are a ConfigError."""
    unknown = [name for name in names if name not in RESOURCES]
    if unknown:
        raise ConfigError(f"unknown inventory resources {unknown}; known: {sorted(RESOURCES)}")
    return tuple(RESOURCES[name] for name in names)


def load_configuration(
    *, kubeconfig: str | None = None, context: str | None = None, in_cluster: bool | None = None
) -> Any:
    """A `kubernetes.client.Configuration` from the in-cluster service account or a kubeconfig.

    `in_cluster=None` means: in-cluster when KUBERNETES_SERVICE_HOST is set and no kubeconfig
    was named, else the kubeconfig (`KUBECONFIG` or ~/.kube/config).
    """
    configuration = k8s_client.Configuration()
    if in_cluster is None:
        in_cluster = kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ
    try:
        if in_cluster:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
    # A kubeconfig that is not YAML, or YAML of the wrong shape, fails deep in the kubernetes client
    # (YAMLError, TypeError, AttributeError, KeyError): the user still gets one line naming the file.
    except (k8s_config.ConfigException, OSError, ValueError, yaml.YAMLError, TypeError, AttributeError,
            KeyError, RecursionError) as exc:
        source = "in-cluster service account" if in_cluster else f"kubeconfig {kubeconfig or '(default)'}"
        raise ConfigError(f"cannot load Kubernetes configuration from {source}: {_reason(exc)}") from exc
    return configuration


def _reason(exc: Exception) -> str:
    """One line: a YAML error as `line N: problem`, anything else with its whitespace collapsed."""
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.YAMLError) and mark is not None:
        return f"line {mark.line + 1}: not valid YAML: {getattr(exc, 'problem', None) or 'syntax error'}"
    return " ".join(str(exc).split()) or type(exc).__name__


def api_client_factory(
    *, kubeconfig: str | None = None, context: str | None = None, in_cluster: bool | None = None
) -> ApiClientFactory:
    """A factory of ApiClients sharing one loaded configuration."""
    configuration = load_configuration(kubeconfig=kubeconfig, context=context, in_cluster=in_cluster)
    return lambda: k8s_client.ApiClient(configuration)


def factory_for(configuration: Any) -> ApiClientFactory:
    """A factory of ApiClients for an existing Configuration (tests point one at a loopback server)."""
    return lambda: k8s_client.ApiClient(configuration)


def api_status(exc: ApiException) -> tuple[int, str]:
    """(HTTP status, the Status message from the body or the reason), body truncated."""
    message = str(exc.reason or "")
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, str) and body:
        try:
            parsed = json.loads(body)
            message = str(parsed.get("message") or message) if isinstance(parsed, dict) else body
        except ValueError:
            message = body
    return int(exc.status or 0), message[:_MAX_BODY]


def inventory_error(exc: ApiException, what: str) -> InventoryError:
    """Map an ApiException to InventoryError naming the operation."""
    status, message = api_status(exc)
    return InventoryError(f"{what}: HTTP {status}: {message}")


def list_raw(
    api_client: Any, kind: ResourceKind, *, timeout: float | tuple[float, float], page_size: int = 0
) -> tuple[list[Mapping[str, Any]], str]:
    """List a collection as raw dicts (kind/apiVersion filled in) and the list's resourceVersion.

    With `page_size` the list is fetched in pages (limit/continue); the pages form one
    consistent snapshot at the first page's resourceVersion.
    """
    items: list[Mapping[str, Any]] = []
    token, version = "", ""
    while True:
        paging = {"limit": page_size, "_continue": token or None} if page_size else {}
        response = kind.list_call(api_client)(_preload_content=False, _request_timeout=timeout, **paging)
        try:
            document = json.loads(response.data)
        finally:
            response.release_conn()
        if not isinstance(document, dict) or not isinstance(document.get("items") or [], list):
            raise InventoryError(f"list {kind.resource}: unexpected response {describe(document)}")
        metadata = document.get("metadata") or {}
        version = version or str(metadata.get("resourceVersion") or "")
        items.extend(with_kind(item, kind) for item in document.get("items") or ())
        token = str(metadata.get("continue") or "")
        if not token:
            return items, version


def with_kind(item: Any, kind: ResourceKind) -> Any:
    """List items omit kind and apiVersion; add them so the converter knows what it reads."""
    if isinstance(item, dict) and ("kind" not in item or "apiVersion" not in item):
        return {"kind": kind.kind, "apiVersion": kind.api_version, **item}
    return item


def list_served(
    api_client: Any, kind: ResourceKind, *, timeout: float | tuple[float, float], page_size: int = 0
) -> tuple[ResourceKind, list[Mapping[str, Any]], str] | None:
    """`list_raw` of the first version of `kind` the server serves, with that version.

    A 404 moves on to the kind's fallback version; None when an optional kind is served at none
    of its versions (its CRD is not installed).  Other ApiExceptions propagate.
    """
    for variant in kind.versions():
        try:
            items, version = list_raw(api_client, variant, timeout=timeout, page_size=page_size)
        except ApiException as exc:
            if exc.status == NOT_FOUND and variant.optional:
                continue
            raise
        return variant, items, version
    return None


def not_served_message(kind: ResourceKind) -> str:
    versions = " or ".join(variant.api_version for variant in kind.versions())
    return f"the API server does not serve {kind.resource} ({versions}): its CRD is not installed"


def list_inventory(api_client: Any, resources: Sequence[str] = DEFAULT_RESOURCES) -> list[KubeObject]:
    """One-shot snapshot of the inventory (no watch).  Raises InventoryError; invalid objects raise too.

    An optional resource the server does not serve (no Cilium CRDs) is skipped with a warning.
    """
    objects: list[KubeObject] = []
    for kind in resource_kinds(resources):
        try:
            served = list_served(api_client, kind, timeout=60.0)
        except ApiException as exc:
            raise inventory_error(exc, f"list {kind.resource}") from exc
        if served is None:
            get_logger("auditor.kube").warning("inventory_resource_not_served", resource=kind.resource,
                                               error=not_served_message(kind))
            continue
        objects.extend(object_from_dict(item, where=f"list {kind.resource}") for item in served[1])
    return objects
