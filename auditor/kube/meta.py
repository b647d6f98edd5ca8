"""`metadata` of a raw Kubernetes object: identity, labels and bookkeeping every converter needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from auditor.kube.fields import Fields
from auditor.model.labels import EMPTY_LABELS

DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True, slots=True)
class Meta:
    """The metadata fields auditor keeps."""

    kind: str
    name: str
    namespace: str = ""
    """Empty for cluster-scoped kinds."""
    uid: str = ""
    resource_version: str = ""
    generation: int = 0
    labels: Mapping[str, str] = field(default_factory=lambda: EMPTY_LABELS, hash=False)
    owner_references: tuple[Mapping[str, Any], ...] = ()

    @property
    def ref(self) -> str:
        """How errors name the object: "Pod shop/api-1" or "Node worker-1"."""
        name = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {name}"


def _name_for_errors(obj: Mapping[str, Any], kind: str) -> str:
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping):
        name = metadata.get("name")
        namespace = metadata.get("namespace")
        if isinstance(name, str) and name:
            scoped = isinstance(namespace, str) and namespace
            return f"{kind} {namespace}/{name}" if scoped else f"{kind} {name}"
    return kind


def read_meta(obj: Mapping[str, Any], *, kind: str, where: str, namespaced: bool) -> Meta:
    """Read `metadata`; a missing name is an error, a missing namespace means `default`."""
    fields = Fields(where, _name_for_errors(obj, kind))
    metadata = fields.mapping(obj.get("metadata"), "metadata")
    name = fields.string(metadata.get("name"), "metadata.name", required=True)
    namespace = ""
    if namespaced:
        namespace = fields.string(metadata.get("namespace"), "metadata.namespace") or DEFAULT_NAMESPACE
    generation = fields.integer(metadata.get("generation"), "metadata.generation") or 0
    owners = fields.sequence(metadata.get("ownerReferences"), "metadata.ownerReferences")
    return Meta(
        kind=kind,
        name=name,
        namespace=namespace,
        uid=fields.string(metadata.get("uid"), "metadata.uid"),
        resource_version=fields.string(metadata.get("resourceVersion"), "metadata.resourceVersion"),
        generation=generation,
        labels=fields.string_map(metadata.get("labels"), "metadata.labels"),
        owner_references=tuple(
            fields.mapping(owner, f"metadata.ownerReferences[{index}]") for index, owner in enumerate(owners)
        ),
    )
