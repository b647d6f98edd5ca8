"""The live flow source: GetFlows (follow) from Hubble Relay or a node, reconnecting forever.

One connection is one `_Stream`; `HubbleClient.events()` is the small loop around it: dial,
yield events, on failure record the gap, wait with backoff and jitter, resume with `since` = the
time of the last flow received, and drop the flows at that instant it already delivered.  A
watchdog thread cancels a stream that sent nothing for `stall_timeout` seconds.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import structlog
from google.protobuf import timestamp_pb2
from google.protobuf.message import DecodeError

from auditor._proto.observer import observer_pb2
from auditor.errors import FlowSourceError, TLSConfigError
from auditor.hubble.config import HubbleConfig
from auditor.hubble.convert import event_from_response, light_event_from_response, timestamp_ns
from auditor.hubble.filters import parse_filter_json
from auditor.hubble.source import SourceStats
from auditor.hubble.tls import channel_credentials, channel_tls_options, tls_failure_hint
from auditor.model.events import FlowEvent, LostEvents, NodeStatus, RawFlow
from auditor.model.flows import Flow

GET_FLOWS = "/observer.Observer/GetFlows"
FAST_STREAM_OPTION = ("SingleThreadedUnaryStream", 1)
"""grpc.experimental.ChannelOptions.SingleThreadedUnaryStream: read the stream on the caller's thread."""
_FATAL_CODES = frozenset({
    grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT,
})
_VERSION_KEYS = frozenset({"hubble-server-version", "hubble-relay-version"})
_OVER_LIMIT = re.compile(r"larger than max \((\d+) vs\. (\d+)\)")
"""grpc's RESOURCE_EXHAUSTED text for a message over the receive limit: (its size vs. the limit)."""
PLAINTEXT_HINT = ("the server closes plaintext connections; if it serves TLS, use tls://host:port or --tls "
                  "(with --tls-ca-cert-files)")
RECEIVE_LIMIT_CEILING = 64 * 1024 * 1024
"""The largest receive limit the client raises itself to for one oversized message; past it, skip."""
log = structlog.get_logger(component="hubble.client")  # auditor.log.get_logger raises on the logger= key


@dataclass
class HubbleStats(SourceStats):
    """SourceStats plus what only a live stream has."""

    stalls: int = 0
    """Streams cancelled because nothing arrived for stall_timeout."""
    stalled: bool = False
    """True from a stall until the next response arrives."""
    last_error: str = ""
    received: int = 0
    """Every GetFlowsResponse read, of any kind (the watchdog's progress counter)."""


@dataclass
class ResumePoint:
    """The newest flow time delivered, and the flows delivered at exactly that time."""

    last_ns: int = 0
    at_last: list[Any] = field(default_factory=list)
    """Responses delivered at last_ns, turned into keys only when a reconnect needs them."""
    resuming: bool = False
    seen_keys: set[bytes | str] = field(default_factory=set)

    def start_resume(self) -> None:
        """A new stream starts at since=last_ns: remember what was already delivered at that instant."""
        self.resuming = self.last_ns > 0
        self.seen_keys = {flow_key(response) for response in self.at_last}

    def accept(self, time_ns: int, response: Any) -> bool:
        """Record a flow about to be delivered; False when it is a duplicate from the overlap."""
        if time_ns > self.last_ns:
            self.last_ns, self.at_last, self.resuming = time_ns, [response], False
            return True
        if not self.resuming:
            if time_ns == self.last_ns:
                self.at_last.append(response)
            return True
        if time_ns < self.last_ns or flow_key(response) in self.seen_keys:
            return False
        self.at_last.append(response)
        return True


def flow_key(response: Any) -> bytes | str:
    """A flow's identity for de-duplication: its uuid, else its exact serialized bytes."""
    flow = response.flow
    key: bytes | str = flow.uuid or flow.SerializeToString(deterministic=True)
    return key


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A GetFlowsResponse whose bytes do not parse: handed to the loop, skipped and counted there."""

    size: int
    error: str


def decode_response(data: bytes) -> Any:
    """The stream's deserializer: a message that does not parse becomes `Undecodable`, not a dead stream.

    grpc fails the whole call when a deserializer raises; resuming would fetch the same message again.
    """
    try:
        return observer_pb2.GetFlowsResponse.FromString(data)
    except DecodeError as exc:
        return Undecodable(len(data), str(exc))


CHANNEL_CLOSE_DELAY_S = 0.5
"""grpc's connectivity poller (behind `subscribe`) wakes every 0.2 s and raises on a closed
channel; closing after it has seen the unsubscribe avoids that race."""


def _close_later(channel: grpc.Channel) -> None:
    timer = threading.Timer(CHANNEL_CLOSE_DELAY_S, channel.close)
    timer.daemon = True
    timer.start()


def _timestamp(time_ns: int) -> Any:
    return timestamp_pb2.Timestamp(seconds=time_ns // 1_000_000_000, nanos=time_ns % 1_000_000_000)


class HubbleClient:
    """FlowSource over a live GetFlows stream.  `events()` runs until `close()`."""

    def __init__(
        self,
        config: HubbleConfig,
        *,
        sleep: Callable[[float], object] | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        rand: Callable[[], float] = random.random,
        on_attempt: Callable[[int], None] | None = None,
        on_response: Callable[[Any], None] | None = None,
        light: bool = False,
        raw: bool = False,
    ) -> None:
        self.config = config
        self._to_event = light_event_from_response if light else event_from_response
        self._raw = raw
        """raw: flows come back as RawFlow (node, time, wire bytes) for worker processes to convert."""
        self._raw_bytes = b""
        """light: flows the correlator only counts come back light (see convert.light_event_from_response)."""
        self._on_response = on_response
        """Called with each raw GetFlowsResponse kept after resume de-duplication (`auditor record`)."""
        self.stats = HubbleStats()
        self._credentials = channel_credentials(config)
        self._options = [FAST_STREAM_OPTION, *channel_tls_options(config)]
        self._receive_limit = config.max_message_bytes
        self._skip_to_ns = 0
        """After a message too large even for RECEIVE_LIMIT_CEILING: resume from this time instead."""
        self._allow = [parse_filter_json(text) for text in config.allow_filters]
        self._deny = [parse_filter_json(text) for text in config.deny_filters]
        self._closed = threading.Event()
        self._sleep = sleep or self._closed.wait
        self._clock_ns, self._rand, self._on_attempt = clock_ns, rand, on_attempt
        self._resume = ResumePoint(last_ns=0)
        self._call: Any = None
        self._ever_connected = False
        self._state_lock = threading.Lock()
        self._down_logged = False
        self._down_since_ns = 0
        self._tls_hinted = False
        self._refiltering = False

    def refilter(self, allow_filters: tuple[str, ...]) -> None:
        """New allow filters (sharded relay mode: the shard's nodes changed): the stream is re-dialled from
        its resume point with them; not an outage, so no gap is recorded."""
        self._allow = [parse_filter_json(text) for text in allow_filters]
        self._refiltering = True
        call = self._call
        if call is not None:
            call.cancel()

    def close(self) -> None:
        """Stop: cancel the open stream; `events()` returns soon after."""
        self._closed.set()
        call = self._call
        if call is not None:
            call.cancel()

    def events(self) -> Iterator[FlowEvent]:
        """Yield events forever, reconnecting with backoff; raises only on configuration errors."""
        watchdog = _Watchdog(self) if self.config.stall_timeout else None
        attempt = 0
        try:
            while not self._closed.is_set():
                if self._on_attempt is not None:
                    self._on_attempt(attempt)
                flows, limit = self.stats.flows, self._receive_limit
                yield from self._one_stream()
                if self._closed.is_set():
                    break
                if self.stats.flows > flows or self._receive_limit > limit:
                    attempt = 0  # new flows arrived (or a larger limit is worth a try): start the backoff over
                self.stats.reconnects += 1
                self._sleep(self.config.backoff.delay(attempt, self._rand))
                attempt += 1
        finally:
            self._closed.set()
            if watchdog is not None:
                watchdog.join()

    def request(self) -> Any:
        """The GetFlowsRequest for the next connection: follow, filters, and since when resuming."""
        since_ns = max(self._resume.last_ns, self._skip_to_ns) or self.config.since_ns
        request = observer_pb2.GetFlowsRequest(follow=True, whitelist=self._allow, blacklist=self._deny)
        if since_ns:
            request.since.CopyFrom(_timestamp(since_ns))
        return request

    def _channel(self) -> grpc.Channel:
        target = self.config.target
        options = [*self._options, ("grpc.max_receive_message_length", self._receive_limit)]
        if self._credentials is None:
            return grpc.insecure_channel(target, options=options)
        return grpc.secure_channel(target, self._credentials, options=options)

    def _one_stream(self) -> Iterator[FlowEvent]:
        """Dial once and yield until the stream ends; errors are classified, logged, maybe raised."""
        self._resume.start_resume()
        channel = self._channel()
        channel.subscribe(self._on_channel_state, try_to_connect=True)
        try:
            method = channel.unary_stream(
                GET_FLOWS,
                request_serializer=observer_pb2.GetFlowsRequest.SerializeToString,
                response_deserializer=None if self._raw else decode_response,
            )
            call: Any = method(self.request())
            self._call = call
            if self._closed.is_set():
                call.cancel()
            yield from self._consume(call)
            self._disconnected("stream ended by the server")
        except grpc.RpcError as err:
            self._on_rpc_error(err)
        finally:
            self._call = None
            channel.unsubscribe(self._on_channel_state)
            _close_later(channel)

    def _consume(self, call: Any) -> Iterator[FlowEvent]:
        """The hot loop: every response of one stream -> model events, with resume de-duplication."""
        accept: Callable[[int, Any], bool]  # becomes _GapUntilNextFlow after a skipped message
        to_event: Callable[[Any], FlowEvent | None]
        stats, accept, to_event = self.stats, self._resume.accept, self._to_event
        responses = call
        if self._raw:
            responses, to_event = self._keeping_bytes(call), self._raw_event
        for response in responses:
            stats.received += 1
            if not stats.connected:
                # Not call.initial_metadata(): it blocks holding the call's lock, so close() or the
                # watchdog could not cancel a server that never answers.
                self._connected(call)
            try:
                event = to_event(response)
            except Exception as exc:  # one odd message never ends the stream: counted and reported
                accept = self._skip_bad(response, exc, accept)
                continue
            if type(event) is Flow or type(event) is RawFlow:
                if not accept(event.time_ns, response):
                    stats.duplicates_dropped += 1
                    continue
                if self._on_response is not None:
                    self._on_response(response)
                stats.flows += 1
                stats.last_flow_time_ns = self._resume.last_ns
                yield event
            elif isinstance(event, LostEvents | NodeStatus):
                self._record(event)
                if self._on_response is not None:
                    self._on_response(response)
                yield event
            else:
                stats.ignored_events += 1

    def _keeping_bytes(self, call: Any) -> Iterator[Any]:
        """Raw mode: each message decoded here, its bytes kept for `_raw_event`."""
        for data in call:
            self._raw_bytes = data
            yield decode_response(data)

    def _raw_event(self, response: Any) -> FlowEvent | None:
        """Raw mode: a flow as RawFlow (only what routing and resume read), other events converted."""
        if response.WhichOneof("response_types") != "flow":
            return light_event_from_response(response)
        flow = response.flow
        ts = flow.time
        time_ns = ts.seconds * 1_000_000_000 + ts.nanos or timestamp_ns(response.time)
        return RawFlow(flow.node_name or response.node_name, time_ns, self._raw_bytes)

    def _skip_bad(self, response: Any, exc: Exception, accept: Callable[[int, Any], bool]
                  ) -> Callable[[int, Any], bool]:
        """Count and log one message that cannot be used; the gap it leaves closes at the next flow."""
        stats = self.stats
        what = (f"cannot decode {response.size} bytes: {response.error}" if isinstance(response, Undecodable)
                else f"cannot convert: {exc!r}")
        stats.record_error(f"{self.config.server}: response {stats.received}: {what}")
        log.warning("hubble_message_skipped", server=self.config.server, response=stats.received, error=what)
        return _GapUntilNextFlow(self._resume.accept, self._resume.last_ns, stats)

    def _record(self, event: LostEvents | NodeStatus) -> None:
        if isinstance(event, LostEvents):
            self.stats.record_lost(event)
            log.warning("hubble_events_lost", source=event.source.value, count=event.count,
                        node=event.node_name)
        else:
            self.stats.record_node_status(event)
            log.info("hubble_node_status", state=event.state.value, nodes=list(event.node_names))

    def _on_channel_state(self, state: grpc.ChannelConnectivity) -> None:
        """The transport is up (TCP, TLS, HTTP/2): the stream counts as connected even before data.

        A quiet node sends nothing on a follow stream; waiting for the first message would
        report a healthy connection as down.  An RPC the server then refuses ends the stream.
        """
        if state is grpc.ChannelConnectivity.READY and self._call is not None:
            self._mark_up({})

    def _connected(self, call: Any) -> None:
        metadata = call.initial_metadata()  # arrived before the first message: does not block now
        self._mark_up({key: value for key, value in metadata or () if key in _VERSION_KEYS})

    def _mark_up(self, versions: dict[str, str]) -> None:
        stats = self.stats
        with self._state_lock:
            if stats.connected:
                return
            stats.connected, stats.stalled, self._ever_connected = True, False, True
            self._down_logged = False
            if self._down_since_ns:
                stats.record_gap(self._down_since_ns, self._clock_ns())
                self._down_since_ns = 0
        log.info("hubble_connected", server=self.config.server, since_ns=self._resume.last_ns, **versions)

    def _disconnected(self, reason: str) -> None:
        """Mark the stream down; logged as a warning once per outage, retries after that at debug."""
        stats = self.stats
        with self._state_lock:
            stats.last_flow_time_ns = self._resume.last_ns
            if stats.connected:
                self._down_since_ns = self._clock_ns()
            stats.connected = False
        if not self._closed.is_set():
            stats.last_error = reason
            level = "debug" if self._down_logged else "warning"
            self._down_logged = True
            getattr(log, level)("hubble_disconnected", server=self.config.server, reason=reason)

    def _on_rpc_error(self, err: grpc.RpcError) -> None:
        code: grpc.StatusCode = err.code()
        details: str = err.details() or ""
        if self._refiltering and code is grpc.StatusCode.CANCELLED:
            self._refiltering = False
            return
        self._disconnected(f"{code.name}: {details}")
        if self._closed.is_set():
            return
        if code is grpc.StatusCode.RESOURCE_EXHAUSTED and (over := _OVER_LIMIT.search(details)):
            self._over_limit(int(over.group(1)))
            return
        if not self.config.use_tls and not self._ever_connected and _looks_like_tls(details):
            self._hint_tls(details)
        has_cert = bool(self.config.tls_client_cert_file)
        hint = tls_failure_hint(details, has_client_cert=has_cert) if self.config.use_tls else None
        if hint and self.config.fail_fast_tls and not self._ever_connected:
            raise TLSConfigError(
                f"TLS connection to {self.config.server} failed: {hint} (grpc: {details})"
            ) from err
        if code in _FATAL_CODES:
            raise FlowSourceError(f"GetFlows on {self.config.server} refused: {code.name}: {details}") from err


    def _over_limit(self, size: int) -> None:
        """A message over the receive limit: re-request with a limit that fits it, or skip past it."""
        if size <= RECEIVE_LIMIT_CEILING:
            log.warning("hubble_receive_limit_raised", server=self.config.server, message_bytes=size,
                        old_limit=self._receive_limit, new_limit=size)
            self._receive_limit = max(self._receive_limit, size)
            return
        now_ns = self._clock_ns()
        skipped_from = self._resume.last_ns or self.config.since_ns or now_ns
        self.stats.record_error(f"{self.config.server}: a message of {size} bytes is over the receive limit "
                                f"ceiling ({RECEIVE_LIMIT_CEILING}): skipped, resuming from now")
        self.stats.record_gap(skipped_from, now_ns)
        self._skip_to_ns = now_ns
        log.warning("hubble_message_skipped", server=self.config.server, message_bytes=size,
                    error="over the receive limit ceiling", gap_from_ns=skipped_from, gap_to_ns=now_ns)

    def _hint_tls(self, details: str) -> None:
        """A plaintext client whose server closes every connection: it may want TLS (logged once, and
        in `stats.last_error` while it lasts)."""
        self.stats.last_error = f"{self.stats.last_error} ({PLAINTEXT_HINT})"
        if self._tls_hinted:
            return
        self._tls_hinted = True
        log.warning("hubble_plaintext_refused", server=self.config.server, error=details, hint=PLAINTEXT_HINT)


def _looks_like_tls(details: str) -> bool:
    """A plaintext HTTP/2 client talking to a TLS server: the connection is closed before any frame."""
    lowered = details.lower()
    return any(needle in lowered for needle in ("socket closed", "connection reset", "ssl", "tls"))


class _GapUntilNextFlow:
    """`ResumePoint.accept` that, at the first flow after a skipped message, records the gap between."""

    def __init__(self, accept: Callable[[int, Any], bool], from_ns: int, stats: HubbleStats) -> None:
        self._accept, self._from_ns, self._stats, self._open = accept, from_ns, stats, True

    def __call__(self, time_ns: int, response: Any) -> bool:
        kept = self._accept(time_ns, response)
        if kept and self._open:
            self._open = False
            self._stats.record_gap(self._from_ns or time_ns, time_ns)
        return kept


class _Watchdog(threading.Thread):
    """Cancels the client's stream when no response arrived for stall_timeout seconds."""

    def __init__(self, client: HubbleClient) -> None:
        super().__init__(name="hubble-stall-watchdog", daemon=True)
        self.client = client
        self.start()

    def run(self) -> None:
        client = self.client
        timeout = client.config.stall_timeout
        seen, quiet_since, call = -1, time.monotonic(), None
        while not client._closed.wait(min(timeout / 4, 1.0)):
            now = time.monotonic()
            if client.stats.received != seen or client._call is not call or call is None:
                seen, quiet_since, call = client.stats.received, now, client._call
                continue
            if now - quiet_since >= timeout:
                stats = client.stats
                stats.stalls += 1
                stats.stalled = True
                log.warning("hubble_stream_stalled", server=client.config.server,
                            quiet_seconds=round(now - quiet_since, 1))
                call.cancel()
                quiet_since = now
