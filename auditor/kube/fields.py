"""Typed reads of raw Kubernetes JSON, failing with a ManifestError that names where, what and which field.

Kubernetes objects reach us as plain dicts (YAML, JSON lines, the API's raw JSON).  Every
converter reads them through `Fields`, so a wrong type anywhere gives the same kind of message:
``shop.yaml:12: Pod shop/api-1: spec.containers[0].ports[0].containerPort: expected an integer,
got str 'http'``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NoReturn

from auditor.errors import ManifestError
from auditor.model.labels import EMPTY_LABELS

EMPTY_MAPPING: Mapping[str, Any] = MappingProxyType({})
_WHERE_WITH_LINE = re.compile(r"^(?P<path>.+):(?P<line>\d+)$")
_MAX_SHOWN = 40


def describe(value: Any) -> str:
    """A short, truncated description of an unexpected value for error messages."""
    shown = repr(value)
    if len(shown) > _MAX_SHOWN:
        shown = shown[: _MAX_SHOWN - 3] + "..."
    return f"{type(value).__name__} {shown}" if value is not None else "null"


MAX_NESTING = 500
"""Deepest bracket nesting accepted in YAML and JSON inputs (Kubernetes objects nest ~20 deep)."""
TOO_DEEP = f"nested more than {MAX_NESTING} levels deep (not a Kubernetes object)"


def nesting_line(text: str) -> int:
    """The 1-based line where flow brackets (`[`, `{`) first nest deeper than MAX_NESTING, or 0.

    A cheap upper bound (brackets inside strings count too) that runs before YAML parsing:
    libyaml overflows its C stack, killing the process, on a few ten thousand nested brackets.
    """
    if text.count("[") + text.count("{") <= MAX_NESTING:
        return 0
    depth = 0
    for match in re.finditer(r"[\[\]{}]", text):
        depth += 1 if match.group() in "[{" else -1
        if depth > MAX_NESTING:
            return text.count("\n", 0, match.start()) + 1
    return 0


def manifest_error(where: str, message: str) -> ManifestError:
    """A ManifestError for `where` ("file:line", "file:doc 3", or empty)."""
    match = _WHERE_WITH_LINE.match(where)
    if match:
        return ManifestError(message, path=match["path"], line=int(match["line"]))
    return ManifestError(message, path=where)


@dataclass(frozen=True, slots=True)
class Fields:
    """Reads fields of one object; `ref` is how errors name it ("Pod shop/api-1")."""

    where: str
    ref: str

    def fail(self, path: str, message: str) -> NoReturn:
        raise manifest_error(self.where, f"{self.ref}: {path}: {message}")

    def mapping(self, value: Any, path: str) -> Mapping[str, Any]:
        """An object field; absent or null reads as empty."""
        if value is None:
            return EMPTY_MAPPING
        if not isinstance(value, Mapping):
            self.fail(path, f"expected an object, got {describe(value)}")
        return value

    def sequence(self, value: Any, path: str) -> Sequence[Any]:
        """A list field; absent or null reads as empty."""
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            self.fail(path, f"expected a list, got {describe(value)}")
        return value

    def string(self, value: Any, path: str, *, required: bool = False) -> str:
        if value is None or (required and value == ""):
            if required:
                self.fail(path, "required field is missing")
            return ""
        if not isinstance(value, str):
            self.fail(path, f"expected a string, got {describe(value)}")
        return value

    def integer(self, value: Any, path: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"expected an integer, got {describe(value)}")
        return value

    def int_or_string(self, value: Any, path: str) -> int | str | None:
        """An IntOrString field, kept as written (a numeric string stays a string, as the API does)."""
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | str):
            self.fail(path, f"expected an integer or a string, got {describe(value)}")
        return value

    def boolean(self, value: Any, path: str) -> bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            self.fail(path, f"expected true or false, got {describe(value)}")
        return value

    def string_map(self, value: Any, path: str) -> Mapping[str, str]:
        """A map of string to string (labels, matchLabels), returned read-only."""
        raw = self.mapping(value, path)
        if not raw:
            return EMPTY_LABELS
        for key, item in raw.items():
            if not isinstance(key, str):
                self.fail(path, f"keys must be strings, got {describe(key)}")
            if not isinstance(item, str):
                self.fail(f"{path}.{key}", f"expected a string, got {describe(item)}")
        return MappingProxyType(dict(raw))

    def strings(self, value: Any, path: str) -> tuple[str, ...]:
        items = self.sequence(value, path)
        return tuple(self.string(item, f"{path}[{index}]") for index, item in enumerate(items))
