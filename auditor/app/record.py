"""`auditor record`: capture a live cluster's inventory (and Hubble flows) for offline use.

With `--out DIR`: `DIR/cluster.yaml` (the state at the start), `DIR/cluster-events.jsonl` (every
change with its time) and `DIR/flows.jsonl` (the Hubble stream as jsonpb lines), so an incident
can be replayed with `audit`, `report` or the replay server.

Writes the state at the moment every initial list is in as a `kind: List` snapshot (YAML, or
JSON when the file name ends in `.json`), then appends every later change as a
`--cluster-events` line until the duration ends or SIGINT/SIGTERM arrives.  The pair is what
`auditor explain/audit/report --manifests SNAPSHOT --cluster-events EVENTS` read.  Objects are
written minimally (`auditor.kube.export`): no images, env or other pod spec fields.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import yaml

from auditor.errors import ConfigError, InputError, InventoryError
from auditor.hubble.config import HubbleConfig
from auditor.hubble.recorder import FlowRecorder, FlowRecording
from auditor.kube.client import DEFAULT_RESOURCES, ApiClientFactory, api_client_factory
from auditor.kube.events import write_cluster_event
from auditor.kube.export import object_to_dict
from auditor.kube.reflector import inventory_key
from auditor.kube.stats import InventoryStatus
from auditor.kube.watch import InventoryWatcher
from auditor.model.k8s import Change, ChangeType, KubeObject

_RESOURCE_ORDER = {resource: order for order, resource in enumerate(
    ("namespaces", "nodes", "pods", "services", "endpointslices", "networkpolicies", "ciliumcidrgroups",
     "ciliumclusterwidenetworkpolicies", "ciliumnetworkpolicies"))}


@dataclass(frozen=True, slots=True)
class RecordOptions:
    """What the command line asked for."""

    snapshot: str
    events: str
    duration_seconds: float | None = None
    """None records until stopped."""
    sync_timeout_seconds: float = 60.0
    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool | None = None
    resources: tuple[str, ...] = DEFAULT_RESOURCES
    flows: str | None = None
    """Where to record the Hubble stream (jsonpb lines); None records no flows."""
    hubble: HubbleConfig | None = None


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    objects: int
    """Objects in the snapshot."""
    changes: int
    """Change lines written after it."""
    status: InventoryStatus
    flows: FlowRecording | None = None


class Recording:
    """The watcher's sink: folds changes into the snapshot state until live, then writes event lines."""

    def __init__(self, events: IO[str]) -> None:
        self._events = events
        self._lock = threading.Lock()
        self._state: dict[tuple[str, str], KubeObject] = {}
        self._live = False
        self.changes = 0

    def __call__(self, change: Change) -> None:
        with self._lock:
            if self._live:
                write_cluster_event(self._events, change.time_ns, change.type, object_to_dict(change.obj))
                self._events.flush()
                self.changes += 1
                return
            key = inventory_key(change.obj)
            if change.type is ChangeType.DELETED:
                self._state.pop(key, None)
            else:
                self._state[key] = change.obj

    def go_live(self) -> list[KubeObject]:
        """Switch to writing events; return the snapshot state, sorted by kind and name."""
        with self._lock:
            self._live = True
            order = sorted(self._state, key=lambda k: (_RESOURCE_ORDER.get(k[0], 9), k[1]))
            return [self._state[k] for k in order]


def write_snapshot(path: str, objects: list[KubeObject]) -> None:
    """Write a `kind: List` of minimal manifests atomically (temp file, then rename)."""
    document = {"apiVersion": "v1", "kind": "List", "items": [object_to_dict(o) for o in objects]}
    temporary = f"{path}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            if path.endswith(".json"):
                json.dump(document, handle, indent=1)
            else:
                yaml.safe_dump(document, handle, sort_keys=False)
        os.replace(temporary, path)
    except OSError as exc:
        raise ConfigError(f"cannot write snapshot {path}: {exc}") from exc


def _unsynced(status: InventoryStatus) -> str:
    parts = [
        f"{name} ({resource.last_error or 'no answer'})"
        for name, resource in status.resources.items()
        if not resource.synced
    ]
    return ", ".join(parts)


def record(
    options: RecordOptions,
    *,
    factory: ApiClientFactory | None = None,
    stop: threading.Event | None = None,
    on_snapshot: Callable[[int], None] | None = None,
) -> RecordOutcome:
    """Record until the duration ends or `stop` is set.  InventoryError when the lists never come in."""
    factory = factory or api_client_factory(
        kubeconfig=options.kubeconfig, context=options.context, in_cluster=options.in_cluster
    )
    stop = stop or threading.Event()
    try:
        events = open(options.events, "w", encoding="utf-8")  # noqa: SIM115 - closed in finally below
    except OSError as exc:
        raise ConfigError(f"cannot write events file {options.events}: {exc}") from exc
    recording = Recording(events)
    watcher = InventoryWatcher(factory, recording, resources=options.resources)
    try:
        watcher.start()
        if not watcher.wait_synced(options.sync_timeout_seconds):
            waited = f"{options.sync_timeout_seconds:g}s"
            raise InventoryError(f"the inventory did not sync within {waited}: {_unsynced(watcher.status())}")
        objects = recording.go_live()
        write_snapshot(options.snapshot, objects)
        recorder = _start_flows(options)
        if on_snapshot is not None:
            on_snapshot(len(objects))
        _wait(stop, options.duration_seconds)
        flows = recorder.stop() if recorder is not None else None
    finally:
        watcher.stop()
        close_error = _close(events)
    status = watcher.status()
    _require_written(options.events, status, close_error)
    return RecordOutcome(objects=len(objects), changes=recording.changes, status=status, flows=flows)


def _close(handle: IO[str]) -> str:
    """Close the events file; what went wrong ("" when nothing did), without masking another error."""
    try:
        handle.close()
    except OSError as exc:
        return exc.strerror or str(exc)
    return ""


def _require_written(path: str, status: InventoryStatus, close_error: str) -> None:
    """Changes the sink could not write (disk full) fail the recording, naming the file."""
    failed = sum(resource.sink_errors for resource in status.resources.values())
    if failed or close_error:
        reason = close_error or "see inventory_sink_failed in the log"
        noun = "change" if failed == 1 else "changes"
        raise InputError(f"{failed} {noun} could not be written: {reason}", path=path)


def _start_flows(options: RecordOptions) -> FlowRecorder | None:
    """Flows are recorded from the snapshot on, so every flow has the state it was judged in."""
    if options.flows is None or options.hubble is None:
        return None
    recorder = FlowRecorder(options.hubble, options.flows)
    recorder.start()
    return recorder


def _wait(stop: threading.Event, duration: float | None) -> None:
    """Block until `stop` is set, the duration passes, or SIGINT/SIGTERM (main thread only)."""
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_args: stop.set())
    try:
        stop.wait(duration)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
