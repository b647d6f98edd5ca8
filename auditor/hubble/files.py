"""Flow files: `hubble observe -o jsonpb|json` output, Hubble exporter files, legacy bare-Flow lines.

One JSON object per line, plain or gzip (recognised by its magic bytes, whatever the file is
called), from a file, `-` (stdin), a FIFO or process substitution (see auditor.hubble.streams:
nothing is ever seeked, and lines are handed on as they arrive).  Blank lines are skipped.  A
line that cannot be decoded is reported as `path:line: what is wrong` and the rest of the file
is still read; see docs/flows.md.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from auditor.errors import FlowParseError, InputError
from auditor.hubble.convert import event_from_response, light_event_from_response, response_from_json
from auditor.hubble.source import SourceStats
from auditor.hubble.streams import STDIN, check_flow_path, display_name, open_flow_file
from auditor.model.events import FlowEvent, LostEvents, NodeStatus
from auditor.model.flows import Flow

MAX_LINE_BYTES = 16 * 1024 * 1024
"""Longer lines are reported and skipped (a flow is ~1 KB; this catches binary files without newlines)."""

ErrorSink = Callable[[str], None]
"""Receives one `path:line: what is wrong` message per bad line."""
FlowPredicate = Callable[[Any], bool]
"""Takes a flow_pb2.Flow, says whether to keep it (see auditor.hubble.filters)."""


Report = Callable[[int, str], None]
"""(line number, what is wrong): how the line reader reports problems to iter_responses."""


def _lines(path: str, report: Report) -> Iterator[tuple[int, bytes]]:
    """(line number, line) for every non-blank line; over-long lines and read errors are reported."""
    stream = open_flow_file(path)
    number = 0
    try:
        while True:
            line = stream.readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            number += 1
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                report(number, f"line longer than {MAX_LINE_BYTES} bytes (binary data?), skipped")
                while line and not line.endswith(b"\n"):
                    line = stream.readline(MAX_LINE_BYTES + 1)
                continue
            line = line.strip()
            if line:
                yield number, line
    except (OSError, EOFError, zlib.error) as exc:
        report(number + 1, f"cannot read further ({exc}); rest of the file skipped")
    finally:
        stream.close()


def describe_error(exc: Exception) -> str:
    """What is wrong with a line, from the exception decoding it raised."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (binary data?) at byte {exc.start + 1} of the line"
    if isinstance(exc, json.JSONDecodeError):
        if exc.pos >= len(exc.doc.rstrip()) or exc.msg.startswith("Unterminated"):
            return f"invalid JSON: line ends early (truncated?) after {len(exc.doc.rstrip())} characters"
        return f"invalid JSON: {exc.msg} at column {exc.colno}"
    return str(exc) or type(exc).__name__


def iter_responses(
    path: str | os.PathLike[str], on_error: ErrorSink | None = None
) -> Iterator[tuple[int, Any]]:
    """Yield (line number, GetFlowsResponse) for every decodable line of one flow file.

    Each bad line goes to `on_error` as `path:line: what is wrong` (default: raise
    FlowParseError).  Lines with an unknown enum name are yielded (the field left unset) *and*
    reported.  A missing or unreadable file raises InputError naming it.
    """
    name = display_name(str(path))

    def report(number: int, reason: str) -> None:
        if on_error is None:
            raise FlowParseError(reason, path=name, line=number)
        on_error(f"{name}:{number}: {reason}")

    for number, line in _lines(str(path), report):
        notes: list[str] = []
        try:
            response = response_from_json(line, notes)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, JsonShapeError
            report(number, describe_error(exc))
            continue
        for note in notes:
            report(number, note)
        yield number, response


class FileFlowSource:
    """A FlowSource over flow inputs, read in the order given; stops at the end of the last one.

    An input may be `-` (stdin, at most once) or a pipe: it is read as it arrives, so an endless
    `hubble observe --follow -o jsonpb` pipe is processed incrementally.  `keep` (a predicate on
    flow_pb2.Flow, e.g. from auditor.hubble.filters) drops flows before they are converted or counted.
    """

    def __init__(self, paths: Iterable[str | os.PathLike[str]], stats: SourceStats | None = None, *,
                 light: bool = False, keep: FlowPredicate | None = None,
                 stop_on_interrupt: bool = False) -> None:
        self.paths = [str(path) for path in paths]
        self._to_event = light_event_from_response if light else event_from_response
        """light: flows the correlator only counts come back light (see convert.light_event_from_response)."""
        self.stats = stats if stats is not None else SourceStats()
        self._keep = keep
        self._stop_on_interrupt = stop_on_interrupt
        """Ctrl-C ends the events like the end of the input (`audit --follow`; main thread only)."""
        self._closed = False
        self._reading = False
        if self.paths.count(STDIN) > 1:
            raise InputError("stdin (-) can be read only once", path=STDIN)
        for path in self.paths:  # fail early, naming the file, before any event is produced
            check_flow_path(path)

    def events(self) -> Iterator[FlowEvent]:
        """Every flow, lost-events and node-status event in file order."""
        if not self._stop_on_interrupt or threading.current_thread() is not threading.main_thread():
            yield from self._events()
            return
        previous = signal.signal(signal.SIGINT, self._on_interrupt)
        try:
            yield from self._events()
        except KeyboardInterrupt:
            return
        finally:
            signal.signal(signal.SIGINT, previous)

    def _on_interrupt(self, _signum: int, _frame: object) -> None:
        """Ctrl-C: end at the next line; a read waiting for the next line ends at once."""
        self._closed = True
        if self._reading:
            raise KeyboardInterrupt

    def _events(self) -> Iterator[FlowEvent]:
        stats, to_event, keep = self.stats, self._to_event, self._keep
        for path in self.paths:
            name = display_name(path)
            responses = iter_responses(path, stats.record_error)
            while not self._closed:
                self._reading = True
                try:
                    item = next(responses, None)
                finally:
                    self._reading = False
                if item is None:
                    break
                number, response = item
                if keep is not None and response.HasField("flow") and not keep(response.flow):
                    continue
                try:
                    event = to_event(response)
                except Exception as exc:  # never let one odd message stop the run
                    stats.record_error(f"{name}:{number}: cannot convert: {exc!r}")
                    continue
                if event is None:
                    stats.ignored_events += 1
                    continue
                self._count(event)
                yield event
            if self._closed:
                return

    def _count(self, event: FlowEvent) -> None:
        stats = self.stats
        if isinstance(event, Flow):
            stats.flows += 1
            if event.time_ns > stats.last_flow_time_ns:
                stats.last_flow_time_ns = event.time_ns
        elif isinstance(event, LostEvents):
            stats.record_lost(event)
        elif isinstance(event, NodeStatus):
            stats.record_node_status(event)

    def close(self) -> None:
        """Make `events()` stop at the next line."""
        self._closed = True
