"""The SQLite backend: a WAL-mode file, a small connection pool, errors mapped to StoreError."""

from __future__ import annotations

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


class _Pool:
    """Connections handed to one transaction at a time.

    A file database gets as many connections as there are concurrent transactions (WAL lets readers
    run while a writer writes) and keeps a few idle ones; per-request threads (HTTP scrapes) therefore
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


class SqliteStore(SqlStore):
    """A store in one SQLite file (WAL, busy timeout) or in memory (`path=":memory:"`)."""

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
                self._enable_wal(first)
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
            conn.execute("PRAGMA synchronous = NORMAL")  # safe in WAL mode: no corruption on crash
            return conn
        except sqlite3.Error as exc:
            raise StoreError(f"{self._where}: cannot open: {exc}") from exc

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.Error as exc:
            raise StoreError(f"{self._where}: cannot open: {exc}") from exc
        if str(mode).lower() != "wal":
            raise StoreError(f"{self._where}: cannot switch to WAL journal mode (got {mode!r})")

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
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except (sqlite3.Error, OverflowError) as exc:  # OverflowError: an int beyond 64 bits
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"{self._where}: {operation}: {exc}") from exc

    def flush(self) -> None:
        """Checkpoint the WAL into the main file (every write is already committed)."""
        if self.path == MEMORY:
            return
        with self._pool.connection() as conn:
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"{self._where}: flush: {exc}") from exc

    def close(self) -> None:
        self._pool.close()

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"
