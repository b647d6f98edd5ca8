"""List+watch of one resource, the way client-go's reflector does it, on the official client.

The list sets the state (ADDED for everything new; on a relist MODIFIED/DELETED diffs against
what was known, so changes during a gap are not lost); the watch resumes from the last
resourceVersion with bookmarks; `410 Gone` relists; any other failure backs off with jitter
and resumes.  Change times are the clock at receipt: watch events carry no effective time.

An optional resource (a CRD such as Cilium's) that the server answers with 404 at every version
is "not served": it counts as synced and empty (its known objects are reported DELETED), logs
one warning when it goes missing, and is listed again every `unserved_recheck_seconds`.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from auditor.errors import AuditorError, InventoryError, ManifestError
from auditor.kube.client import (
    NOT_FOUND,
    ResourceKind,
    inventory_error,
    list_served,
    not_served_message,
    resource_of,
    with_kind,
)
from auditor.kube.convert import object_from_dict
from auditor.kube.stats import ResourceStats
from auditor.log import get_logger
from auditor.model.k8s import Change, ChangeType, KubeObject

Sink = Callable[[Change], None]
GONE = 410


@dataclass(frozen=True, slots=True)
class WatchSettings:
    """Timing of list/watch calls and of the retry backoff."""

    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    watch_timeout_seconds: int = 300
    """Server-side timeoutSeconds of each watch call is this to twice this (random); then it re-watches."""
    read_slack_seconds: float = 30.0
    """The client's read timeout is the watch timeout plus this."""
    list_timeout_seconds: float = 60.0
    """Per list page."""
    list_page_size: int = 500
    """Objects per list page (limit/continue), as client-go's reflector pages; 0 lists in one response."""
    connect_timeout_seconds: float = 10.0
    unserved_recheck_seconds: float = 300.0
    """How often a resource the server does not serve (a CRD not installed) is listed again."""


class Backoff:
    """Exponential backoff with jitter: the n-th delay is uniform in [d/2, d], d = initial * 2**n, capped."""

    def __init__(self, settings: WatchSettings, rng: random.Random) -> None:
        self._settings = settings
        self._rng = rng
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = self._settings.backoff_initial_seconds * (2 ** min(self.attempt, 30))
        ceiling = min(ceiling, self._settings.backoff_max_seconds)
        self.attempt += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class ResourceGoneError(Exception):
    """The watch's resourceVersion is too old (HTTP 410 or an ERROR event with code 410): relist."""


def object_key(obj: KubeObject) -> str:
    """`namespace/name` or `name`: unique within one resource (matches `raw_key`), not across kinds."""
    namespace = getattr(obj, "namespace", "")
    return f"{namespace}/{obj.name}" if namespace else obj.name


def inventory_key(obj: KubeObject) -> tuple[str, str]:
    """(resource, object_key): unique across kinds (a CNP, a NetworkPolicy and a CCNP never collide)."""
    return resource_of(obj), object_key(obj)


def raw_key(raw: Mapping[str, Any]) -> str | None:
    metadata = raw.get("metadata")
    if not isinstance(metadata, Mapping) or not isinstance(metadata.get("name"), str):
        return None
    namespace = metadata.get("namespace")
    return f"{namespace}/{metadata['name']}" if isinstance(namespace, str) and namespace else metadata["name"]


def raw_resource_version(raw: Mapping[str, Any]) -> str:
    metadata = raw.get("metadata")
    version = metadata.get("resourceVersion") if isinstance(metadata, Mapping) else None
    return version if isinstance(version, str) else ""


def response_lines(response: Any) -> Iterator[str]:
    """Lines of a streaming urllib3 response, as they arrive."""
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield line.decode("utf-8", errors="replace")
    if buffer.strip():
        yield buffer.decode("utf-8", errors="replace")


def shutdown_response(response: Any) -> None:
    """Wake a thread blocked reading `response` by shutting its socket down (best effort)."""
    connection = getattr(response, "_connection", None) or getattr(response, "connection", None)
    sock = getattr(connection, "sock", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class Reflector:
    """Keeps one resource's objects in step with the API server and reports every change to `sink`."""

    def __init__(
        self,
        kind: ResourceKind,
        api_client: Any,
        sink: Sink,
        *,
        clock: Callable[[], float],
        settings: WatchSettings,
        stop: threading.Event,
        rng: random.Random,
    ) -> None:
        self.kind = kind
        self.stats = ResourceStats(kind.resource)
        self.synced = threading.Event()
        self._api = api_client
        self._sink = sink
        self._clock = clock
        self._settings = settings
        self._stop = stop
        self._rng = rng
        self._backoff = Backoff(settings, rng)
        self._known: dict[str, KubeObject] = {}
        self._served_kind: ResourceKind | None = kind
        """The version being listed and watched; None while the server serves none of them."""
        self._rv = ""
        self._response: Any = None
        self._response_lock = threading.Lock()
        self._log = get_logger("auditor.kube.watch").bind(resource=kind.resource)

    def run(self) -> None:
        """Loop until stopped: list when needed, watch, back off after failures.  Never raises."""
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list:
                    self._list()
                    need_list = False
                    self._backoff.reset()
                if self._served_kind is None:
                    need_list = True
                    self._stop.wait(self._settings.unserved_recheck_seconds)
                    continue
                if self._watch():
                    self._backoff.reset()
                    continue
            except ResourceGoneError:
                self._say("info", "inventory_watch_expired", resource_version=self._rv)
                need_list = True
                continue
            except Exception as exc:
                if self._stop.is_set():
                    break
                self._failed(exc)
            self._stop.wait(self._backoff.next_delay())

    def _say(self, level: str, event: str, **fields: Any) -> None:
        """Log, never raising: a broken log stream must not stop the watch."""
        with contextlib.suppress(Exception):
            getattr(self._log, level)(event, **fields)

    def abort(self) -> None:
        """Interrupt a blocked watch read (used by stop)."""
        with self._response_lock:
            response = self._response
        if response is not None:
            shutdown_response(response)

    def _now_ns(self) -> int:
        return int(self._clock() * 1_000_000_000)

    def _failed(self, exc: Exception) -> None:
        message = str(exc) if isinstance(exc, AuditorError) else f"{type(exc).__name__}: {exc}"
        with self.stats.lock:
            self.stats.errors += 1
            self.stats.up = False
            self.stats.last_error = message
        self._say("warning", "inventory_watch_failed", error=message, resource_version=self._rv)

    def _list(self) -> None:
        timeout = (self._settings.connect_timeout_seconds, self._settings.list_timeout_seconds)
        try:
            served = list_served(self._api, self.kind, timeout=timeout, page_size=self._settings.list_page_size)
        except ApiException as exc:
            raise inventory_error(exc, f"list {self.kind.resource}") from exc
        now = self._now_ns()
        was_unserved = self._served_kind is None
        self._served_kind, items, version = served if served is not None else (None, [], "")
        for change in self._diff(items, now):
            self._emit(change)
        self._rv = version
        with self.stats.lock:
            if self.stats.synced and served is not None and not was_unserved:
                self.stats.relists += 1
            self.stats.synced = self.stats.up = True
            self.stats.served = served is not None
            self.stats.resource_version = version
            self.stats.last_sync_time_ns = now
            self.stats.objects = len(self._known)
        self.synced.set()
        self._log_list(was_unserved, version)

    def _log_list(self, was_unserved: bool, version: str) -> None:
        """One warning when the resource goes missing (not one per recheck), info when it is listed."""
        if self._served_kind is None:
            if not was_unserved:
                self._say("warning", "inventory_resource_not_served", error=not_served_message(self.kind))
            return
        if was_unserved:
            self._say("info", "inventory_resource_served", api_version=self._served_kind.api_version)
        self._say("info", "inventory_listed", objects=len(self._known), resource_version=version)

    def _diff(self, items: list[Mapping[str, Any]], now: int) -> list[Change]:
        """Changes that bring the known state to the listed one."""
        changes: list[Change] = []
        seen: set[str] = set()
        for raw in items:
            key = raw_key(raw) if isinstance(raw, Mapping) else None
            if key is None:
                self._invalid(f"list item without metadata.name: {str(raw)[:80]}")
                continue
            seen.add(key)
            obj = self._convert(raw)
            previous = self._known.get(key)
            if obj is None or obj == previous:
                continue
            self._known[key] = obj
            if previous is None:
                changes.append(Change(now, ChangeType.ADDED, obj))
            elif previous.uid and obj.uid and previous.uid != obj.uid:
                changes += [Change(now, ChangeType.DELETED, previous), Change(now, ChangeType.ADDED, obj)]
            else:
                changes.append(Change(now, ChangeType.MODIFIED, obj))
        for key in [key for key in self._known if key not in seen]:
            changes.append(Change(now, ChangeType.DELETED, self._known.pop(key)))
        return changes

    def _watch(self) -> bool:
        """Watch from the current resourceVersion; True when the watch made progress."""
        # Spread re-watches over [timeout, 2*timeout) as client-go does, so watches do not align.
        timeout = int(self._settings.watch_timeout_seconds * self._rng.uniform(1.0, 2.0))
        read_timeout = timeout + self._settings.read_slack_seconds
        kind = self._served_kind or self.kind
        try:
            response = kind.list_call(self._api)(
                watch=True,
                resource_version=self._rv,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout,
                _preload_content=False,
                _request_timeout=(self._settings.connect_timeout_seconds, read_timeout),
            )
        except ApiException as exc:
            if exc.status == GONE or (exc.status == NOT_FOUND and kind.optional):
                raise ResourceGoneError() from exc  # a 404 here: the CRD went away; the relist says so
            raise inventory_error(exc, f"watch {self.kind.resource}") from exc
        self._set_response(response)
        self._mark_current()
        started, events = time.monotonic(), 0
        try:
            for line in response_lines(response):
                if self._stop.is_set():
                    break
                self._handle(line)
                events += 1
        finally:
            self._set_response(None)
            response.release_conn()
        self._mark_current()
        return events > 0 or time.monotonic() - started >= 1.0

    def _mark_current(self) -> None:
        """A watch that opened or ended cleanly means the state was current at this moment."""
        with self.stats.lock:
            self.stats.up = True
            self.stats.last_sync_time_ns = self._now_ns()

    def _set_response(self, response: Any) -> None:
        with self._response_lock:
            self._response = response
        if response is not None and self._stop.is_set():
            shutdown_response(response)

    def _handle(self, line: str) -> None:
        try:
            event = json.loads(line)
            event_type, raw = event["type"], event["object"]
        except (ValueError, TypeError, KeyError, RecursionError):
            self._invalid(f"undecodable watch event: {line[:80]}")
            return
        with self.stats.lock:
            self.stats.events[str(event_type)] += 1
        if event_type == "ERROR":
            self._watch_error(raw)
        if not isinstance(raw, Mapping):
            self._invalid(f"{event_type} event without an object")
            return
        kind = self._served_kind or self.kind
        if event_type in ("ADDED", "MODIFIED"):
            self._upsert(with_kind(dict(raw), kind), ChangeType(event_type))
        elif event_type == "DELETED":
            self._delete(with_kind(dict(raw), kind))
        elif event_type != "BOOKMARK":
            self._say("warning", "inventory_unknown_event_type", type=str(event_type)[:40])
        self._rv = raw_resource_version(raw) or self._rv
        with self.stats.lock:
            self.stats.resource_version = self._rv
            self.stats.last_sync_time_ns = self._now_ns()
            self.stats.objects = len(self._known)

    def _watch_error(self, raw: Any) -> None:
        status = raw if isinstance(raw, Mapping) else {}
        if status.get("code") == GONE:
            raise ResourceGoneError()
        message = str(status.get("message", ""))[:300]
        raise InventoryError(f"watch {self.kind.resource}: ERROR event {status.get('code')}: {message}")

    def _upsert(self, raw: Mapping[str, Any], change_type: ChangeType) -> None:
        obj = self._convert(raw)
        key = object_key(obj) if obj is not None else ""
        if obj is None or self._known.get(key) == obj:
            return  # unusable, or a replay of what is already known
        self._known[key] = obj
        self._emit(Change(self._now_ns(), change_type, obj))

    def _delete(self, raw: Mapping[str, Any]) -> None:
        key = raw_key(raw)
        previous = self._known.pop(key, None) if key is not None else None
        obj = self._convert(raw) or previous
        if obj is not None:
            self._emit(Change(self._now_ns(), ChangeType.DELETED, obj))

    def _convert(self, raw: Mapping[str, Any]) -> KubeObject | None:
        try:
            return object_from_dict(raw, where=f"{self.kind.resource} from the API")
        except ManifestError as exc:
            self._invalid(str(exc))
            return None

    def _invalid(self, message: str) -> None:
        with self.stats.lock:
            self.stats.invalid_objects[self.kind.kind] += 1
        self._say("warning", "inventory_invalid_object", kind=self.kind.kind, error=message)

    def _emit(self, change: Change) -> None:
        try:
            self._sink(change)
        except Exception as exc:
            with self.stats.lock:
                self.stats.sink_errors += 1
            self._say("error", "inventory_sink_failed", error=f"{type(exc).__name__}: {exc}", exc_info=True)
