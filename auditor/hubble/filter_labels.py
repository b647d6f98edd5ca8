"""Label selectors of FlowFilter.source_label / destination_label / node_labels, as Hubble reads them.

Hubble (cilium pkg/hubble/filters/labels.go, labelparser.go) parses a Kubernetes label selector
whose keys may carry a Cilium source prefix (`k8s:app=web`, `reserved:host`); a key without one
matches labels of any source (`app=web` matches `k8s:app=web`).  The flow's labels are Cilium
labels (`source:key=value`, pkg/labels ParseLabel); a label without a source has source `unspec`.
`cidr:` keys match by prefix containment (pkg/labels Label.HasKey).  Requirements: `k`, `!k`,
`k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k > n`, `k < n`; commas AND them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from auditor.errors import ConfigError

ANY = "any"
_SET_RE = re.compile(r"^\s*(\S+?)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_OP_RE = re.compile(r"^\s*(!?)\s*([^\s=!<>,()]+)\s*(?:(==|=|!=|>|<)\s*([^\s,()]*))?\s*$")
_VALUE_RE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


@dataclass(frozen=True, slots=True)
class Label:
    source: str
    key: str
    value: str = ""


def parse_label(text: str) -> Label:
    """A flow label `source:key=value` (no `:` = source unspec; `$key` = reserved)."""
    if text.startswith("$"):
        source, rest = "reserved", text[1:]
    elif ":" in text:
        source, _, rest = text.partition(":")
    else:
        source, rest = "unspec", text
    key, _, value = rest.partition("=")
    return Label(source or "unspec", key, value)


def _network(key: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(key.replace("-", ":"), strict=False)
    except ValueError:
        return None


def _has_key(label: Label, target: Label) -> bool:
    if target.source != ANY and label.source != target.source:
        return False
    if target.source == "cidr" and label.source == "cidr":
        wanted, have = _network(target.key), _network(label.key)
        return (wanted is not None and have is not None and wanted.version == have.version
                and wanted.prefixlen <= have.prefixlen and have.network_address in wanted)
    return label.key == target.key


def _lookup(labels: Sequence[Label], target: Label) -> str | None:
    for label in labels:
        if _has_key(label, target):
            return label.value
    return None


def _target(key: str) -> Label:
    source, colon, name = key.partition(":")
    if not colon:
        return Label(ANY, key)
    if not source or not name:
        raise ConfigError(f"label filter: invalid key {key!r}")
    return Label(source, name)


Requirement = Callable[[Sequence[Label]], bool]


def _values(text: str, raw: Sequence[str]) -> frozenset[str]:
    for value in raw:
        if not _VALUE_RE.match(value):
            raise ConfigError(f"label filter {text.strip()!r}: invalid value {value!r}")
    return frozenset(raw)


def _set_requirement(text: str, found: re.Match[str]) -> Requirement:
    target, op = _target(found.group(1)), found.group(2)
    values = _values(text, [v.strip() for v in found.group(3).split(",")])
    if op == "in":
        return lambda labels: _lookup(labels, target) in values
    return lambda labels: _lookup(labels, target) not in values


def _requirement(text: str) -> Requirement:
    if found := _SET_RE.match(text):
        return _set_requirement(text, found)
    found = _OP_RE.match(text)
    if not found:
        raise ConfigError(f"label filter: cannot parse requirement {text.strip()!r}")
    negated, key, op, value = found.groups()
    target = _target(key)
    if op is None:
        if negated:
            return lambda labels: _lookup(labels, target) is None
        return lambda labels: _lookup(labels, target) is not None
    if negated:
        raise ConfigError(f"label filter: '!' only negates a bare key, got {text.strip()!r}")
    if op in (">", "<"):
        return _numeric(text, target, op, value)
    wanted = next(iter(_values(text, [value])))
    if op == "!=":
        return lambda labels: _lookup(labels, target) != wanted
    return lambda labels: _lookup(labels, target) == wanted


def _numeric(text: str, target: Label, op: str, value: str) -> Requirement:
    try:
        bound = int(value)
    except ValueError as exc:
        raise ConfigError(f"label filter {text.strip()!r}: {value!r} is not an integer") from exc

    def match(labels: Sequence[Label]) -> bool:
        have = _lookup(labels, target)
        try:
            number = int(have) if have is not None else None
        except ValueError:
            return False
        return number is not None and (number > bound if op == ">" else number < bound)

    return match


def _split(selector: str) -> list[str]:
    """Requirements: split on commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def compile_selector(selector: str) -> Callable[[Sequence[Label]], bool]:
    """One selector -> predicate over parsed labels; an empty selector matches everything."""
    if not selector.strip():
        return lambda _labels: True
    requirements = [_requirement(part) for part in _split(selector)]
    return lambda labels: all(requirement(labels) for requirement in requirements)


def compile_selectors(selectors: Sequence[str]) -> Callable[[Sequence[str]], bool]:
    """Selectors (OR'ed) -> predicate over a flow's raw label strings."""
    compiled = [compile_selector(selector) for selector in selectors]

    def match(raw: Sequence[str]) -> bool:
        labels = [parse_label(text) for text in raw]
        return any(selector(labels) for selector in compiled)

    return match
