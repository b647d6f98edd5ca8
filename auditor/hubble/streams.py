"""Open a flow input for reading without ever seeking: files, `-` (stdin), `/dev/stdin`, FIFOs, `<(...)`.

gzip is recognised by its magic bytes: the first two bytes are read and handed back in front of
the rest of the stream (no `seek`), so `hubble observe ... | gzip | auditor audit --flows -`
and process substitution work like a file.  Reads return what has arrived so far, so an endless
`hubble observe --follow` pipe is processed line by line as it comes.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import sys
from typing import IO

from auditor.errors import InputError

STDIN = "-"
STDIN_NAME = "<stdin>"
"""How `-` is named in messages (`<stdin>:12: invalid JSON ...`)."""
GZIP_MAGIC = b"\x1f\x8b"


def is_stdin(path: str) -> bool:
    return path == STDIN


def is_stream(path: str) -> bool:
    """stdin, a FIFO or a character device: an input that may never end (a regular file always does)."""
    if is_stdin(path):
        return True
    try:
        return not stat.S_ISREG(os.stat(path).st_mode) and not stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:
        return False


def display_name(path: str) -> str:
    """The name messages use for an input: the path, or `<stdin>` for `-`."""
    return STDIN_NAME if is_stdin(path) else path


class _Prefixed(io.RawIOBase):
    """The bytes already read from a stream, then the rest of it; reads return what is available."""

    def __init__(self, head: bytes, rest: IO[bytes], *, close_rest: bool) -> None:
        super().__init__()
        self._head = head
        self._rest = rest
        self._close_rest = close_rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        if self._head:
            count = min(len(view), len(self._head))
            view[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        read1 = getattr(self._rest, "read1", None)
        data = read1(len(view)) if read1 is not None else self._rest.read(len(view))
        view[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed and self._close_rest:
            self._rest.close()
        super().close()


class _GzipStream(gzip.GzipFile):
    """A GzipFile that also closes the stream it decompresses."""

    def __init__(self, raw: _Prefixed) -> None:
        super().__init__(fileobj=raw, mode="rb")
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def check_flow_path(path: str) -> None:
    """Raise InputError naming `path` when it cannot be a flow input; never reads from it.

    Regular files are opened once (permissions); FIFOs and devices are only stat'ed, since opening
    a FIFO would wait for its writer and consume data.
    """
    if is_stdin(path):
        return
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as exc:
        raise InputError("no such file", path=path) from exc
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror or exc}", path=path) from exc
    if stat.S_ISDIR(mode):
        raise InputError("is a directory, not a flow file", path=path)
    if stat.S_ISREG(mode):
        open_flow_file(path).close()


def _open_raw(path: str) -> tuple[IO[bytes], bool]:
    """(binary stream, whether closing it is ours to do)."""
    if is_stdin(path):
        return sys.stdin.buffer, False
    try:
        return open(path, "rb"), True
    except FileNotFoundError as exc:
        raise InputError("no such file", path=path) from exc
    except IsADirectoryError as exc:
        raise InputError("is a directory, not a flow file", path=path) from exc
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror or exc}", path=path) from exc


def open_flow_file(path: str | os.PathLike[str]) -> IO[bytes] | gzip.GzipFile:
    """Open a flow input for binary line reading, gunzipping when it starts with the gzip magic.

    `-` is stdin (left open on close).  InputError names the input when it cannot be opened.
    """
    name = str(path)
    raw, ours = _open_raw(name)
    try:
        head = raw.read(len(GZIP_MAGIC))
    except OSError as exc:
        if ours:
            raw.close()
        raise InputError(f"cannot read: {exc.strerror or exc}", path=display_name(name)) from exc
    stream = _Prefixed(head, raw, close_rest=ours)
    if head == GZIP_MAGIC:
        return _GzipStream(stream)
    return io.BufferedReader(stream)
