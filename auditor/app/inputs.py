"""Useless input is an error: flow files that yield no flow, manifests that yield no object.

A CI gate must not pass on the wrong file, so `audit` and `report` exit non-zero with one line that
says what the file looked like ("cluster.yaml: no line is a Hubble flow (looks like a Kubernetes
manifest; swapped --flows and --manifests?)").  `--allow-empty` is for pipelines that expect nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from auditor.errors import InputError
from auditor.hubble.source import SourceStats
from auditor.hubble.streams import open_flow_file

SNIFF_LINES = 20
"""Lines read from the start of a file to say what it looks like."""
_COMPACT = re.compile(rb"^[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d(\.\d+)?[:\s]")
"""`hubble observe -o compact`: "Nov 20 10:00:01.000: shop/web-1:43210 (ID:1000) -> ..."."""
_YAML_KEYS = (b"apiVersion:", b"kind:", b"metadata:", b"spec:", b"items:", b"---")
ALLOW_EMPTY_HINT = "(--allow-empty accepts it)"


def looks_like(path: str) -> str:
    """What the start of a flow file looks like, when it is not Hubble flows ("" when it may be)."""
    if path == "-":
        return ""
    try:
        with open_flow_file(path) as stream:
            head = [stream.readline(65536) for _ in range(SNIFF_LINES)]
        lines = [line.strip() for line in head if line.strip()]
    except (OSError, EOFError, ValueError, InputError):
        return ""
    if not lines:
        return "the file is empty"
    first = lines[0]
    if first.startswith(b"["):
        return "looks like a JSON array; flows are one JSON object per line, as hubble observe -o jsonpb writes"
    if _COMPACT.match(first):
        return "looks like `hubble observe -o compact` text; record flows with -o jsonpb"
    if any(line.startswith(_YAML_KEYS) for line in lines) or _json_manifest(first):
        return "looks like a Kubernetes manifest; swapped --flows and --manifests?"
    return ""


def _json_manifest(line: bytes) -> bool:
    try:
        document = json.loads(line)
    except ValueError:
        return False
    return isinstance(document, dict) and "apiVersion" in document and "kind" in document


def require_flows(paths: Sequence[str], stats: SourceStats, *, allow_empty: bool) -> None:
    """InputError when flow files were given and none of their lines is a usable Hubble flow."""
    if allow_empty or not paths or stats.flows or stats.lost_events:
        return
    described = [f"{path}: no line is a Hubble flow ({looks_like(path) or _bad_lines(stats)})"
                 for path in paths]
    raise InputError(f"{'; '.join(described)} {ALLOW_EMPTY_HINT}")


def _bad_lines(stats: SourceStats) -> str:
    if not stats.bad_lines:
        return "no flow events in it" if not stats.ignored_events else \
            f"{stats.ignored_events} events, none of them a flow"
    first = f"; first: {stats.errors[0]}" if stats.errors else ""
    return f"{stats.bad_lines} unusable lines{first}"


def require_objects(paths: Sequence[str], objects: int, *, allow_empty: bool) -> None:
    """InputError when the manifests hold no Kubernetes object (every flow would be unresolved)."""
    if allow_empty or objects:
        return
    what = ", ".join(paths)
    raise InputError(f"{what}: no Kubernetes object in the manifests (empty?), so every flow would be "
                     f"unresolved {ALLOW_EMPTY_HINT}")
