"""Record a live GetFlows stream to a file in `hubble observe -o jsonpb` line shape.

Each kept response (flows, lost events, node status) is written as one protojson line with
proto field names, exactly what `FileFlowSource`, `auditor audit` and the replay server read.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import IO, Any

from google.protobuf import json_format

from auditor.errors import ConfigError
from auditor.hubble.client import HubbleClient
from auditor.hubble.config import HubbleConfig


class JsonpbWriter:
    """Writes one GetFlowsResponse per line; thread-safe; flushes every line."""

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle
        self._lock = threading.Lock()
        self.written = 0

    def __call__(self, response: Any) -> None:
        line = json_format.MessageToJson(response, preserving_proto_field_name=True, indent=None)
        with self._lock:
            self._handle.write(line + "\n")
            self._handle.flush()
            self.written += 1


@dataclass(frozen=True, slots=True)
class FlowRecording:
    """What a finished flow recording wrote."""

    responses: int
    flows: int
    lost_events: int
    reconnects: int


class FlowRecorder:
    """Streams flows from Hubble into a jsonpb file on its own thread until `stop()`."""

    def __init__(self, config: HubbleConfig, path: str) -> None:
        try:
            self._handle = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        except OSError as exc:
            raise ConfigError(f"cannot write flows file {path}: {exc}") from exc
        self._writer = JsonpbWriter(self._handle)
        self._client = HubbleClient(config, on_response=self._writer)
        self._thread = threading.Thread(target=self._drain, name="flow-recorder", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def _drain(self) -> None:
        try:
            for _event in self._client.events():
                pass
        except Exception as exc:  # reported by stop(); the recording ends
            self.error = exc

    def stop(self) -> FlowRecording:
        """Stop streaming, close the file and say what was written; re-raises a stream failure."""
        self._client.close()
        self._thread.join(timeout=10)
        self._handle.close()
        if self.error is not None:
            raise self.error
        stats = self._client.stats.snapshot()
        return FlowRecording(responses=self._writer.written, flows=stats.flows,
                             lost_events=sum(stats.lost_events.values()), reconnects=stats.reconnects)
