"""Offline inventory: Kubernetes manifests from YAML or JSON files and directories.

Accepts what people keep in git and what `kubectl get ns,pods,nodes,netpol,cnp,ccnp,ccg -A -o yaml`
prints: multi-document YAML, `kind: List` and typed lists (`PodList`, `CiliumNetworkPolicyList`,
whose items may omit kind/apiVersion, as raw API responses do).  Directories are read recursively
(`.yaml`, `.yml`, `.json`, sorted, hidden entries skipped); a file named explicitly is read
whatever its extension.  Kinds auditor does not track are skipped and counted by
`apiVersion/kind`; workloads whose pods are not in the manifests contribute a representative
pod from their template (auditor.kube.templates).  Errors name the file and the line where the
document or list item starts.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from auditor.errors import ManifestError
from auditor.kube.convert import is_supported, kind_of, object_from_dict
from auditor.kube.fields import TOO_DEEP, describe, manifest_error, nesting_line
from auditor.kube.templates import is_workload, template_pods
from auditor.model.k8s import KubeObject

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json", ".yaml.gz", ".yml.gz", ".json.gz")
GZIP_MAGIC = b"\x1f\x8b"
"""A gzip file is recognised by its first two bytes, whatever its name (like flow files)."""
STDIN = "-"
"""`--manifests -` reads the documents from stdin."""
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class ManifestLoad:
    """What `load_manifests_report` read."""

    objects: tuple[KubeObject, ...]
    skipped_kinds: Mapping[str, int] = field(default_factory=dict, hash=False)
    """Objects of kinds auditor does not track, by `apiVersion/kind` (workloads included)."""
    files: int = 0
    template_pods: int = 0
    """Representative pods made from workload templates (see auditor.kube.templates)."""


def load_manifests(paths: Sequence[str]) -> list[KubeObject]:
    """Every supported object in `paths`, in file and document order (unsupported kinds skipped)."""
    return list(load_manifests_report(paths).objects)


def load_manifests_report(paths: Sequence[str]) -> ManifestLoad:
    """Load `paths` and report what was skipped.  Raises ManifestError naming file and line."""
    objects: list[KubeObject] = []
    workloads: list[tuple[str, Mapping[str, Any]]] = []
    skipped: Counter[str] = Counter()
    files = list(manifest_files(paths))
    for path in files:
        for where, raw in _raw_objects(path):
            if is_supported(raw):
                objects.append(object_from_dict(raw, where=where))
                continue
            skipped[kind_of(raw)] += 1
            if is_workload(raw):
                workloads.append((where, raw))
    templates = template_pods(workloads, objects)
    return ManifestLoad(objects=(*objects, *templates), skipped_kinds=dict(skipped), files=len(files),
                        template_pods=len(templates))


def manifest_files(paths: Sequence[str]) -> Iterator[str]:
    """The files to read: named files as given, directories walked recursively in sorted order."""
    for path in paths:
        if os.path.isfile(path) or path == STDIN:
            yield path
        elif os.path.isdir(path):
            yield from _walk(path)
        else:
            raise ManifestError("no such file or directory", path=path)


def _walk(directory: str) -> Iterator[str]:
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(name for name in dirs if not name.startswith("."))
        for name in sorted(names):
            if name.endswith(MANIFEST_SUFFIXES) and not name.startswith("."):
                yield os.path.join(root, name)


def _read_text(path: str) -> str:
    if path == STDIN:  # `--manifests -`: YAML or JSON documents on stdin (kubectl get -o yaml | ...)
        try:
            return sys.stdin.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError(f"cannot read: {exc}", path=path) from exc
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        if data.startswith(GZIP_MAGIC):
            data = gzip.decompress(data)
        return data.decode("utf-8")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read: {exc}", path=path) from exc


def _raw_objects(path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(where, object) for every object in the file, list items flattened."""
    text = _read_text(path)
    if path.endswith((".json", ".json.gz")):
        yield from _json_objects(path, text)
        return
    for line, document, node in _yaml_documents(path, text):
        if document is None:
            continue
        yield from _flatten(document, f"{path}:{line}", _item_wheres(path, node))


def _yaml_documents(path: str, text: str) -> Iterator[tuple[int, Any, yaml.Node]]:
    too_deep = nesting_line(text)
    if too_deep:
        raise ManifestError(f"invalid YAML: {TOO_DEEP}", path=path, line=too_deep)
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            yield node.start_mark.line + 1, loader.construct_document(node), node
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise ManifestError(f"invalid YAML: {exc.problem or exc.context}", path=path, line=line) from exc
    except yaml.YAMLError as exc:
        raise ManifestError(f"invalid YAML: {exc}", path=path) from exc
    finally:
        loader.dispose()


def _item_wheres(path: str, node: yaml.Node) -> list[str]:
    """`file:line` of each entry of a list document's `items`."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            is_items = isinstance(key, yaml.ScalarNode) and key.value == "items"
            if is_items and isinstance(value, yaml.SequenceNode):
                return [f"{path}:{item.start_mark.line + 1}" for item in value.value]
    return []


def _json_objects(path: str, text: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Objects of one JSON document, or of several concatenated (`kubectl get -o json >> file`).

    List items are reported at the line where their document starts (errors also name the object).
    """
    decoder = json.JSONDecoder()
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return
        line = text.count("\n", 0, position) + 1
        try:
            document, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            message = f"invalid JSON: {exc.msg} (column {exc.colno})"
            raise ManifestError(message, path=path, line=exc.lineno) from exc
        except RecursionError as exc:
            raise ManifestError(f"invalid JSON: {TOO_DEEP}", path=path, line=line) from exc
        where = f"{path}:{line}"
        items = document.get("items") if isinstance(document, Mapping) else None
        count = len(items) if isinstance(items, list) else 0
        yield from _flatten(document, where, [where] * count)


def _flatten(document: Any, where: str, item_wheres: list[str]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if not isinstance(document, Mapping):
        raise _error(where, f"expected a Kubernetes object, got {describe(document)}")
    kind = document.get("kind")
    if not isinstance(kind, str) or not kind:
        raise _error(where, "document has no kind")
    if not kind.endswith("List"):
        yield where, document
        return
    items = document.get("items")
    if items is None:
        return
    if not isinstance(items, list):
        raise _error(where, f"{kind}: items: expected a list, got {describe(items)}")
    for index, item in enumerate(items):
        item_where = item_wheres[index] if index < len(item_wheres) else f"{where}: items[{index}]"
        if not isinstance(item, Mapping):
            raise _error(item_where, f"{kind}: items[{index}]: expected an object, got {describe(item)}")
        yield item_where, _typed_item(document, kind, item)


def _typed_item(document: Mapping[str, Any], kind: str, item: Mapping[str, Any]) -> Mapping[str, Any]:
    """Items of typed lists (`PodList`) may omit kind and apiVersion; take them from the list."""
    if kind == "List" or ("kind" in item and "apiVersion" in item):
        return item
    return {"kind": kind[: -len("List")], "apiVersion": document.get("apiVersion"), **item}


def _error(where: str, message: str) -> ManifestError:
    return manifest_error(where, message)
