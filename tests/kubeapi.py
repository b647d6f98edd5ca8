"""A small Kubernetes-API-shaped HTTP server on loopback, for testing the real `kubernetes` client.

Serves cluster-wide list and watch for namespaces, pods, nodes, networkpolicies, services,
endpointslices and Cilium's
ciliumnetworkpolicies, ciliumclusterwidenetworkpolicies and ciliumcidrgroups (at v2 and v2alpha1,
one store, as a CRD serving two versions does); `unserve(path)` answers 404 there, as a cluster
without the CRD does:
lists return `{kind}List` JSON with a resourceVersion; `?watch=true` streams one JSON event per
chunk (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR) from the requested resourceVersion.  Tests
script it: write objects (delivered or lost), push bookmarks, expire watches with 410, drop
connections, fail the next request with any HTTP status, hold lists back.
"""

from __future__ import annotations

import contextlib
import copy
import json
import socket
import threading
import uuid
from collections.abc import Generator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kubernetes import client as k8s_client

PATHS = {
    "/api/v1/namespaces": ("namespaces", "NamespaceList", "v1"),
    "/api/v1/pods": ("pods", "PodList", "v1"),
    "/api/v1/nodes": ("nodes", "NodeList", "v1"),
    "/apis/networking.k8s.io/v1/networkpolicies": (
        "networkpolicies",
        "NetworkPolicyList",
        "networking.k8s.io/v1",
    ),
    "/api/v1/services": ("services", "ServiceList", "v1"),
    "/apis/discovery.k8s.io/v1/endpointslices": ("endpointslices", "EndpointSliceList", "discovery.k8s.io/v1"),
}
CILIUM_PATHS = {
    "/apis/cilium.io/v2/ciliumnetworkpolicies": (
        "ciliumnetworkpolicies",
        "CiliumNetworkPolicyList",
        "cilium.io/v2",
    ),
    "/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies": (
        "ciliumclusterwidenetworkpolicies",
        "CiliumClusterwideNetworkPolicyList",
        "cilium.io/v2",
    ),
    "/apis/cilium.io/v2/ciliumcidrgroups": ("ciliumcidrgroups", "CiliumCIDRGroupList", "cilium.io/v2"),
    "/apis/cilium.io/v2alpha1/ciliumcidrgroups": (
        "ciliumcidrgroups",
        "CiliumCIDRGroupList",
        "cilium.io/v2alpha1",
    ),
}
PATHS.update(CILIUM_PATHS)
RESOURCES = tuple(dict.fromkeys(resource for resource, _, _ in PATHS.values()))


@dataclass(frozen=True)
class Request:
    """One request the server saw."""

    resource: str
    watch: bool
    resource_version: str
    path: str = ""


@dataclass(frozen=True)
class _Event:
    rv: int
    type: str
    obj: dict[str, Any]
    replayable: bool = True


@dataclass(frozen=True)
class _Fault:
    status: int
    on: str  # "list", "watch" or "any"


def _key(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


class KubeAPI:
    """The server's state and the test's handle on it."""

    def __init__(self, *, unserved: tuple[str, ...] = ()) -> None:
        self._cond = threading.Condition()
        self._unserved = set(unserved)
        self._rv = 100
        self._store: dict[str, dict[str, dict[str, Any]]] = {r: {} for r in RESOURCES}
        self._events: dict[str, list[_Event]] = {r: [] for r in RESOURCES}
        self._compacted: dict[str, int] = dict.fromkeys(RESOURCES, 0)
        self._drops: dict[str, int] = dict.fromkeys(RESOURCES, 0)
        self._faults: dict[str, list[_Fault]] = {r: [] for r in RESOURCES}
        self._holds: dict[str, threading.Event] = {}
        self._active: dict[str, int] = dict.fromkeys(RESOURCES, 0)
        self._stopping = False
        self.requests: list[Request] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="kubeapi", daemon=True
        )

    @property
    def url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> KubeAPI:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for hold in self._holds.values():
            hold.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def configuration(self) -> Any:
        """A kubernetes.client.Configuration pointing at this server."""
        configuration = k8s_client.Configuration()
        configuration.host = self.url
        return configuration

    @property
    def resource_version(self) -> str:
        with self._cond:
            return str(self._rv)

    # --- scripting -------------------------------------------------------------------------

    def put(self, resource: str, obj: dict[str, Any], *, deliver: bool = True) -> dict[str, Any]:
        """Create or update an object (ADDED or MODIFIED); `deliver=False` loses the event."""
        with self._cond:
            obj = copy.deepcopy(obj)
            self._rv += 1
            meta = obj.setdefault("metadata", {})
            key = _key(obj)
            stored = self._store[resource].get(key)
            meta.setdefault("uid", stored["metadata"]["uid"] if stored else str(uuid.uuid4()))
            meta["resourceVersion"] = str(self._rv)
            event_type = "MODIFIED" if key in self._store[resource] else "ADDED"
            self._store[resource][key] = obj
            if deliver:
                self._events[resource].append(_Event(self._rv, event_type, copy.deepcopy(obj)))
            self._cond.notify_all()
            return obj

    def delete(self, resource: str, name: str, namespace: str = "", *, deliver: bool = True) -> None:
        with self._cond:
            obj = self._store[resource].pop(f"{namespace}/{name}")
            self._rv += 1
            obj["metadata"]["resourceVersion"] = str(self._rv)
            if deliver:
                self._events[resource].append(_Event(self._rv, "DELETED", obj))
            self._cond.notify_all()

    def bookmark(self, resource: str) -> str:
        """Send live watchers a BOOKMARK at a new resourceVersion (other resources moved on)."""
        with self._cond:
            self._rv += 1
            bookmark = {"kind": "Bookmark", "metadata": {"resourceVersion": str(self._rv)}}
            self._events[resource].append(_Event(self._rv, "BOOKMARK", bookmark, replayable=False))
            self._cond.notify_all()
            return str(self._rv)

    def expire(self, resource: str) -> None:
        """Compact history: live watches get an ERROR 410 event, older resourceVersions get 410."""
        with self._cond:
            self._compacted[resource] = self._rv
            self._events[resource].append(_Event(self._rv, "ERROR", _status(410, "Expired"), replayable=False))
            self._cond.notify_all()

    def drop(self, resource: str) -> None:
        """Cut live watch connections without ending the chunked stream."""
        with self._cond:
            self._drops[resource] += 1
            self._cond.notify_all()

    def fail_next(self, resource: str, status: int, *, on: str = "any") -> None:
        """Answer the next list/watch/any request for `resource` with this HTTP status."""
        with self._cond:
            self._faults[resource].append(_Fault(status, on))

    def hold(self, resource: str) -> threading.Event:
        """Block list requests for `resource` until the returned event is set."""
        event = self._holds.setdefault(resource, threading.Event())
        event.clear()
        return event

    def unserve(self, *paths: str) -> None:
        """Answer 404 on these paths (list and watch), as for a CRD that is not installed."""
        with self._cond:
            self._unserved.update(paths)

    def serve(self, *paths: str) -> None:
        """Serve these paths again (the CRD was installed)."""
        with self._cond:
            self._unserved.difference_update(paths)

    def wait_for_watch(self, resource: str, *, count: int = 1, timeout: float = 5.0) -> bool:
        """Wait until `count` watches of `resource` are connected."""
        with self._cond:
            return self._cond.wait_for(lambda: self._active[resource] >= count, timeout)

    def watch_requests(self, resource: str) -> list[Request]:
        with self._cond:
            return [r for r in self.requests if r.resource == resource and r.watch]

    def list_requests(self, resource: str) -> list[Request]:
        with self._cond:
            return [r for r in self.requests if r.resource == resource and not r.watch]

    # --- serving ---------------------------------------------------------------------------

    def _take_fault(self, resource: str, watch: bool) -> _Fault | None:
        with self._cond:
            for fault in self._faults[resource]:
                if fault.on == "any" or fault.on == ("watch" if watch else "list"):
                    self._faults[resource].remove(fault)
                    return fault
        return None

    def _list_body(
        self, resource: str, list_kind: str, api_version: str, query: dict[str, str]
    ) -> dict[str, Any]:
        """One list page; `continue` is "<offset>:<resourceVersion>" (pages are not snapshots here)."""
        hold = self._holds.get(resource)
        if hold is not None:
            hold.wait(10)
        with self._cond:
            offset, _, version = query.get("continue", "").partition(":")
            start = int(offset or 0)
            limit = int(query.get("limit") or 0) or len(self._store[resource]) + 1
            page = sorted(self._store[resource].items())[start : start + limit]
            items = [
                {k: v for k, v in copy.deepcopy(obj).items() if k not in ("kind", "apiVersion")}
                for _, obj in page
            ]
            metadata = {"resourceVersion": version or str(self._rv)}
            if start + limit < len(self._store[resource]):
                metadata["continue"] = f"{start + limit}:{metadata['resourceVersion']}"
            return {"kind": list_kind, "apiVersion": api_version, "metadata": metadata, "items": items}

    def _watch_events(self, resource: str, since: int) -> Generator[dict[str, Any] | None, None, None]:
        """Events for one watch; None means "drop the connection"."""
        with self._cond:
            expired = since < self._compacted[resource]
            cursor = len(self._events[resource])
            backlog = [e for e in self._events[resource] if e.replayable and e.rv > since]
            drops = self._drops[resource]
        if expired:
            yield {"type": "ERROR", "object": _status(410, "too old resource version")}
            return
        with self._cond:
            self._active[resource] += 1
            self._cond.notify_all()
        try:
            for event in backlog:
                yield {"type": event.type, "object": event.obj}
            while True:
                fresh, dropped = self._next_events(resource, cursor, drops)
                if dropped:
                    yield None
                    return
                if fresh is None:
                    return
                cursor += len(fresh)
                for event in fresh:
                    yield {"type": event.type, "object": event.obj}
                    if event.type == "ERROR":
                        return
        finally:
            with self._cond:
                self._active[resource] -= 1

    def _next_events(self, resource: str, cursor: int, drops: int) -> tuple[list[_Event] | None, bool]:
        """(events after `cursor`, dropped); events None when the server stops."""
        with self._cond:
            self._cond.wait_for(
                lambda: (
                    self._stopping or self._drops[resource] != drops or len(self._events[resource]) > cursor
                ),
                timeout=1.0,
            )
            if self._stopping:
                return None, False
            if self._drops[resource] != drops:
                return [], True
            return self._events[resource][cursor:], False


def _status(code: int, reason: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"{reason} (test server)",
        "reason": reason,
        "code": code,
    }


class _Handler(BaseHTTPRequestHandler):
    """Serves one request against `api` (set on the per-server subclass)."""

    protocol_version = "HTTP/1.1"
    api: KubeAPI

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        api = self.api
        parts = urlsplit(self.path)
        route = PATHS.get(parts.path)
        with api._cond:
            unserved = parts.path in api._unserved
        if unserved and route is not None:
            with api._cond:
                api.requests.append(Request(route[0], "watch=true" in parts.query, "", parts.path))
            self._send_not_found()
            return
        if route is None:
            self._send_json(404, _status(404, "NotFound"))
            return
        resource, list_kind, api_version = route
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        watch = query.get("watch", "").lower() in ("true", "1")
        since = query.get("resourceVersion", "")
        with api._cond:
            api.requests.append(Request(resource, watch, since, parts.path))
        fault = api._take_fault(resource, watch)
        if fault is not None:
            self._send_json(fault.status, _status(fault.status, "InjectedFault"))
        elif watch:
            self._stream(api._watch_events(resource, int(since or 0)))
        else:
            self._send_json(200, api._list_body(resource, list_kind, api_version, query))

    def _send_not_found(self) -> None:
        """What kube-apiserver answers for a group/version/resource nobody serves: plain text, no Status."""
        data = b"404 page not found\n"
        self.send_response(404)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, events: Generator[dict[str, Any] | None, None, None]) -> None:
        """A chunked JSON-lines stream; None from `events` cuts the connection without the last chunk."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True
        try:
            for event in events:
                if event is None:
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                data = json.dumps(event).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            return
        finally:
            events.close()


def _handler_for(api: KubeAPI) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"api": api})
