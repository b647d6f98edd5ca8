"""A minimal plaintext HTTP/2 gRPC feeder for benchmarks: answers every stream with pre-framed messages.

grpcio's Python server pays a thread hop per streamed message (~15-25k messages/s here), so it
cannot show what the client does.  This feeder speaks just enough HTTP/2 (RFC 9113) to be a gRPC
server for one unary-stream call per stream: SETTINGS exchange and ACKs, PING ACKs (grpc's BDP
probe relies on them), connection and stream flow control, RST_STREAM/GOAWAY.  It ignores the
request headers and body (HPACK is not decoded): every stream gets the same responses, packed into
large DATA frames, then `grpc-status: 0`.  Benchmark use only; the product's server is ReplayServer.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Sequence

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE = 4, 5
# HPACK: ":status: 200" (static index 8); "content-type: application/grpc" (literal, indexed name 31).
RESPONSE_HEADERS = b"\x88" + b"\x0f\x10" + bytes([16]) + b"application/grpc"
TRAILERS = b"\x00" + bytes([11]) + b"grpc-status" + bytes([1]) + b"0"
SEND_CHUNK = 1 << 18


def frame(kind: int, flags: int, stream: int, payload: bytes | memoryview = b"") -> bytes:
    head = struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream)
    return head + bytes(payload)


def grpc_framed(messages: Sequence[bytes]) -> bytes:
    """Length-prefixed gRPC messages, concatenated: the body of the response stream."""
    return b"".join(b"\x00" + struct.pack(">I", len(message)) + message for message in messages)


class _Connection:
    """One client connection: a reader thread for control frames, the caller writes the stream."""

    def __init__(self, sock: socket.socket, body: bytes, repeat: int) -> None:
        self.sock, self.body, self.repeat = sock, body, repeat
        self.cond = threading.Condition()
        self.conn_window = 65535
        self.stream_windows: dict[int, int] = {}
        self.initial_window = 65535
        self.max_frame = 16384
        self.pending_streams: list[int] = []
        self.closed = False
        self.write_lock = threading.Lock()

    def send(self, data: bytes) -> None:
        with self.write_lock:
            self.sock.sendall(data)

    def read_exact(self, count: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < count:
            chunk = self.sock.recv(count - len(chunks))
            if not chunk:
                raise ConnectionError("peer closed")
            chunks += chunk
        return bytes(chunks)

    def reader(self) -> None:
        try:
            if self.read_exact(len(PREFACE)) != PREFACE:
                raise ConnectionError("not an HTTP/2 client")
            while True:
                header = self.read_exact(9)
                length = int.from_bytes(header[:3], "big")
                kind, flags, stream = header[3], header[4], int.from_bytes(header[5:9], "big") & 0x7FFFFFFF
                self.handle(kind, flags, stream, self.read_exact(length) if length else b"")
        except (ConnectionError, OSError):
            pass
        finally:
            with self.cond:
                self.closed = True
                self.cond.notify_all()

    def handle(self, kind: int, flags: int, stream: int, payload: bytes) -> None:
        with self.cond:
            if kind == SETTINGS and not flags & ACK:
                for offset in range(0, len(payload), 6):
                    ident, value = struct.unpack(">HI", payload[offset:offset + 6])
                    if ident == SETTINGS_INITIAL_WINDOW_SIZE:
                        delta, self.initial_window = value - self.initial_window, value
                        for key in self.stream_windows:
                            self.stream_windows[key] += delta
                    elif ident == SETTINGS_MAX_FRAME_SIZE:
                        self.max_frame = value
                self.send(frame(SETTINGS, ACK, 0))
            elif kind == PING and not flags & ACK:
                self.send(frame(PING, ACK, 0, payload))
            elif kind == WINDOW_UPDATE:
                increment = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
                if stream == 0:
                    self.conn_window += increment
                elif stream in self.stream_windows:
                    self.stream_windows[stream] += increment
            elif kind == HEADERS and stream not in self.stream_windows:
                self.stream_windows[stream] = self.initial_window
                self.pending_streams.append(stream)
            elif kind == RST_STREAM:
                self.stream_windows.pop(stream, None)
            elif kind == GOAWAY:
                raise ConnectionError("goaway")
            self.cond.notify_all()

    def window(self, stream: int, wanted: int) -> int:
        """Block until both windows allow sending; returns how many bytes may go (0: stream gone)."""
        with self.cond:
            while True:
                if self.closed or stream not in self.stream_windows:
                    return 0
                allowed = min(wanted, self.conn_window, self.stream_windows[stream])
                if allowed > 0:
                    self.conn_window -= allowed
                    self.stream_windows[stream] -= allowed
                    return allowed
                self.cond.wait()

    def serve_stream(self, stream: int) -> None:
        self.send(frame(HEADERS, END_HEADERS, stream, RESPONSE_HEADERS))
        view = memoryview(self.body)
        for _ in range(self.repeat):
            offset = 0
            while offset < len(view):
                allowed = self.window(stream, min(SEND_CHUNK, len(view) - offset))
                if not allowed:
                    return
                out = bytearray()
                end = offset + allowed
                while offset < end:
                    step = min(self.max_frame, end - offset)
                    out += frame(DATA, 0, stream, view[offset:offset + step])
                    offset += step
                self.send(bytes(out))
        self.send(frame(HEADERS, END_STREAM | END_HEADERS, stream, TRAILERS))

    def run(self) -> None:
        self.send(frame(SETTINGS, 0, 0))
        threading.Thread(target=self.reader, daemon=True).start()
        while True:
            with self.cond:
                while not self.pending_streams and not self.closed:
                    self.cond.wait()
                if self.closed:
                    return
                stream = self.pending_streams.pop(0)
            try:
                self.serve_stream(stream)
            except OSError:
                return


def serve(listener: socket.socket, messages: Sequence[bytes], repeat: int) -> None:
    """Accept connections forever; each stream gets `messages` `repeat` times, then OK trailers."""
    body = grpc_framed(messages)
    while True:
        sock, _address = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_Connection(sock, body, repeat).run, daemon=True).start()
