"""The SQLite backend: one file, a small connection pool, errors mapped to StoreError.

No shared memory and no mmap: WAL mode keeps its index in a memory-mapped `-shm` file, and when that
file stops being writable (a full or read-only filesystem, `chattr +i`) the kernel answers a write to
the mapping with SIGBUS, which kills the process without a log line.  So the store uses a rollback
journal (`journal_mode = DELETE`, `synchronous = FULL`) and `mmap_size = 0`: every fault is an I/O
error that becomes a StoreError, which the daemon counts, reports on /readyz and retries.  Readers
in other processes (`auditor report --store`) still open the file while the daemon runs.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

from auditor.errors import StoreError
from auditor.store.schema import MIGRATIONS, SQLITE, Migration, Row, current_version, migrate
from auditor.store.sqlstore import SqlStore

MEMORY = ":memory:"
JOURNAL_MODE = "DELETE"
DEFAULT_BUSY_TIMEOUT_MS = 10_000
_MAX_IDLE = 4


class _Executor:
    """`schema.Executor` over one sqlite3 connection (SQLite takes `?` markers as they are)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def query(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        return self._conn.execute(sql, params).fetchall()

    def run(self, sql: str, params: Sequence[object] = ()) -> int:
        return self._conn.execute(sql, params).rowcount

    def run_many(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        self._conn.executemany(sql, rows)

    def insert_new(self, sql: str, rows: Sequence[Sequence[object]]) -> list[object]:
        return [row[0] for row in rows if self._conn.execute(sql, row).rowcount == 1]


class _Pool:
    """Connections handed to one transaction at a time.

    A file database gets as many connections as there are concurrent transactions (readers
    run while a writer prepares its transaction) and keeps a few idle ones; per-request threads (HTTP scrapes)
    therefore
    do not leak connections.  An in-memory database lives in its single connection: `limit=1`.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection], limit: int | None, where: str) -> None:
        self._connect = connect
        self._where = where
        self._limit = limit
        self._idle: list[sqlite3.Connection] = []
        self._open = 0
        self._closed = False
        self._cond = threading.Condition()

    def add(self, conn: sqlite3.Connection) -> None:
        with self._cond:
            self._open += 1
            self._idle.append(conn)

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        conn = self._take()
        try:
            yield conn
        finally:
            self._give_back(conn)

    def _take(self) -> sqlite3.Connection:
        with self._cond:
            while True:
                if self._closed:
                    raise StoreError(f"{self._where}: store is closed")
                if self._idle:
                    return self._idle.pop()
                if self._limit is None or self._open < self._limit:
                    self._open += 1
                    break
                self._cond.wait()
        try:
            return self._connect()
        except BaseException:
            with self._cond:
                self._open -= 1
                self._cond.notify()
            raise

    def _give_back(self, conn: sqlite3.Connection) -> None:
        with self._cond:
            if self._closed or len(self._idle) >= _MAX_IDLE:
                self._open -= 1
                conn.close()
            else:
                self._idle.append(conn)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            conn.close()


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back what is open; after an I/O error SQLite may already have, or may fail to (the error
    that got us here is the one to report)."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


class SqliteStore(SqlStore):
    """A store in one SQLite file (rollback journal, no mmap, busy timeout) or in memory (`path=":memory:"`)."""

    dialect = SQLITE

    def __init__(
        self,
        path: str,
        *,
        url: str = "",
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        """Open (creating the file and its directories) and migrate; `migrations` is for tests and tools."""
        self.path = path
        self.url = url or f"sqlite:///{path}"
        self._busy_timeout_ms = busy_timeout_ms
        self._write_lock = threading.Lock()
        memory = path == MEMORY
        if not memory:
            self._make_parent()
        self._pool = _Pool(self._connect, limit=1 if memory else None, where=self._where)
        first = self._connect()
        self._pool.add(first)
        try:
            if not memory:
                self._set_journal(first)
            if self._stored_version() != migrations[-1].version:
                with self._transaction("migrate schema", write=True) as tx:
                    migrate(tx, self.dialect, self._where, time.time_ns(), migrations)
        except BaseException:
            self._pool.close()
            raise

    def _stored_version(self) -> int:
        """The version without taking the write lock, so readers open while a writer writes (-1: none)."""
        with self._transaction("read schema version", write=False) as tx:
            if not tx.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"):
                return -1
            return current_version(tx)

    @property
    def _where(self) -> str:
        return f"store {self.path}" if self.path == MEMORY else f"store file {os.path.abspath(self.path)}"

    def _make_parent(self) -> None:
        parent = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self._where}: cannot create directory {parent}: {exc.strerror}") from exc

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout_ms / 1000,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # the pool hands a connection to one thread at a time
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            conn.execute("PRAGMA synchronous = FULL")  # a rollback journal needs FULL to survive power loss
            conn.execute("PRAGMA mmap_size = 0")  # reads and writes are syscalls: a fault is an error
            return conn
        except sqlite3.Error as exc:
            raise StoreError(f"{self._where}: cannot open: {exc}") from exc

    def _set_journal(self, conn: sqlite3.Connection) -> None:
        """A rollback journal, no `-shm` mapping (see the module docstring); a WAL store converts once."""
        try:
            mode = conn.execute(f"PRAGMA journal_mode = {JOURNAL_MODE}").fetchone()[0]
        except sqlite3.Error as exc:
            raise StoreError(f"{self._where}: cannot open: {exc}") from exc
        if str(mode).lower() != JOURNAL_MODE.lower():
            raise StoreError(f"{self._where}: cannot switch to the {JOURNAL_MODE} journal (still {mode!r}): "
                             "another process has it open in WAL mode; stop it and retry")

    @contextmanager
    def _transaction(self, operation: str, *, write: bool) -> Iterator[_Executor]:
        with self._pool.connection() as conn:
            if write:
                with self._write_lock:
                    yield from self._run(conn, operation, "BEGIN IMMEDIATE")
            else:
                yield from self._run(conn, operation, "BEGIN")

    def _run(self, conn: sqlite3.Connection, operation: str, begin: str) -> Iterator[_Executor]:
        try:
            conn.execute(begin)
            try:
                yield _Executor(conn)
            except BaseException:
                _rollback(conn)
                raise
            conn.execute("COMMIT")
        except (sqlite3.Error, OverflowError) as exc:  # OverflowError: an int beyond 64 bits
            _rollback(conn)
            raise StoreError(f"{self._where}: {operation}: {exc}") from exc

    def flush(self) -> None:
        """Nothing to do: every committed write is already in the database file (no WAL to checkpoint)."""

    def close(self) -> None:
        self._pool.close()

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"
