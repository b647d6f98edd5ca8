"""The PostgreSQL backend: psycopg 3 with a connection pool, libpq's URL rules, the shared SQL.

The URL goes to libpq as it is (`postgresql://user@host:port/db?sslmode=verify-full&...`, every libpq
parameter and `PG*` environment variable applies).  A password can come from the URL, libpq's own
`PGPASSWORD`/`passfile`, or a file named by `AUDITOR_STORE_PASSWORD_FILE` (a mounted Secret) or the value
of `AUDITOR_STORE_PASSWORD`; messages never show it.  Concurrent processes are safe: finding merges
take advisory key locks (see `Dialect.key_lock`), migrations and retention take one lock each.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from auditor.errors import ConfigError, StoreError
from auditor.store.schema import MIGRATIONS, POSTGRESQL, Migration, Row, migrate
from auditor.store.sql_findings import LOCK_CLASS
from auditor.store.sqlstore import SqlStore

PASSWORD_ENV = "AUDITOR_STORE_PASSWORD"
PASSWORD_FILE_ENV = "AUDITOR_STORE_PASSWORD_FILE"
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
POOL_SIZE = 4
CONNECT_TIMEOUT_S = 10.0
_VALUES = re.compile(r"VALUES \(\?(?:, \?)*\)")
_MIGRATION_LOCK = -1
_RETENTION_LOCK = -2


def conninfo(url: str, env: Mapping[str, str] | None = None,
             password_file: str = "") -> tuple[str, dict[str, Any]]:
    """The URL checked by libpq's own parser, and extra connection parameters (the password from
    `password_file`, the environment or a file it names, when the URL has none).  ConfigError names the
    URL, password hidden."""
    from psycopg import conninfo as pg_conninfo

    environ = dict(os.environ if env is None else env)
    if password_file:
        environ[PASSWORD_FILE_ENV] = password_file
    shown = redact(url)
    try:
        params = pg_conninfo.conninfo_to_dict(url)
    except Exception as exc:  # psycopg.ProgrammingError: libpq's message
        raise ConfigError(f"store URL {shown!r}: {str(exc).strip()}") from exc
    sslmode = params.get("sslmode")
    if sslmode is not None and sslmode not in SSLMODES:
        raise ConfigError(f"store URL {shown!r}: sslmode {sslmode!r} is not one of {', '.join(SSLMODES)}")
    extra: dict[str, Any] = {}
    if "password" not in params:
        password = _password(environ, shown)
        if password is not None:
            extra["password"] = password
    return url, extra


def _password(environ: Mapping[str, str], shown: str) -> str | None:
    path = environ.get(PASSWORD_FILE_ENV, "")
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"store URL {shown!r}: {PASSWORD_FILE_ENV}={path}: {exc.strerror}") from exc
    return environ.get(PASSWORD_ENV) or None


def redact(url: str) -> str:
    """The URL with any password replaced by ***."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if at and ":" in userinfo:
        authority = f"{userinfo.split(':', 1)[0]}:***@{host}"
    path, mark, query = tail.partition("?")
    hidden = "&".join("password=***" if p.startswith("password=") else p for p in query.split("&"))
    return f"{scheme}://{authority}{slash}{path}{mark}{hidden if mark else ''}"


class _Executor:
    """`schema.Executor` over one psycopg cursor: `?` markers become `%s`."""

    def __init__(self, cursor: Any) -> None:
        self._cur = cursor

    def query(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        self._cur.execute(POSTGRESQL.sql(sql), params or None)
        return [tuple(row) for row in self._cur.fetchall()]

    def run(self, sql: str, params: Sequence[object] = ()) -> int:
        self._cur.execute(POSTGRESQL.sql(sql), params or None)
        return int(self._cur.rowcount)

    def run_many(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        """An INSERT of one VALUES row becomes one INSERT ... SELECT FROM unnest(column arrays): one round
        trip and one parameter per column, however many rows (the callers' rows have distinct keys, as
        ON CONFLICT needs).  Other statements go row by row in psycopg's pipeline."""
        batch = list(rows)
        if not batch:
            return
        if _VALUES.search(sql) is None or not sql.lstrip().upper().startswith("INSERT"):
            self._cur.executemany(POSTGRESQL.sql(sql), batch)
            return
        self._cur.execute(*_unnest(sql, batch))

    def insert_new(self, sql: str, rows: Sequence[Sequence[object]]) -> list[object]:
        first = re.search(r"\(\s*(\w+)", sql)
        if not rows or first is None:
            return []
        self._cur.execute(*_unnest(sql, rows, f" RETURNING {first.group(1)}"))
        return [row[0] for row in self._cur.fetchall()]


def _unnest(sql: str, rows: Sequence[Sequence[object]], suffix: str = "") -> tuple[str, list[list[object]]]:
    """`INSERT ... VALUES (?, ...) rest` as `INSERT ... SELECT * FROM unnest(column arrays) rest`."""
    values = _VALUES.search(sql)
    if values is None:
        raise StoreError(f"not an INSERT of one VALUES row: {sql[:60]}")
    columns = list(zip(*rows, strict=True))
    arrays = ", ".join(f"CAST(? AS {_array_type(column[0])})" for column in columns)
    statement = f"{sql[:values.start()]}SELECT * FROM unnest({arrays}){sql[values.end():]}{suffix}"
    return POSTGRESQL.sql(statement), [list(column) for column in columns]


def _array_type(sample: object) -> str:
    """The array type of a column from one of its values (the store writes integers and text only)."""
    if isinstance(sample, bool) or not isinstance(sample, int | str):
        raise StoreError(f"cannot write a {type(sample).__name__} column: integers and text only")
    return "bigint[]" if isinstance(sample, int) else "text[]"


class PostgresStore(SqlStore):
    """A store in one PostgreSQL database, shared by any number of auditor processes."""

    dialect = POSTGRESQL

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE, migrations: Sequence[Migration] = MIGRATIONS,
                 env: Mapping[str, str] | None = None, password_file: str = "") -> None:
        """Connect (the pool opens its first connection now, so a bad URL or password fails here) and
        migrate under a lock, so daemons starting together migrate once."""
        from psycopg_pool import ConnectionPool

        target, extra = conninfo(url, env, password_file)
        self.url = redact(url)
        self._write_lock = threading.Lock()
        # No server-side prepared statements: they break behind PgBouncer in transaction pooling mode,
        # which a DaemonSet of thousands of pods needs (docs/deployment.md).
        self._pool = ConnectionPool(target, kwargs={"autocommit": False, "prepare_threshold": None, **extra},
                                    min_size=1,
                                    max_size=pool_size, open=False, timeout=CONNECT_TIMEOUT_S,
                                    name="auditor-store")
        self._check_connect(target, extra)
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except Exception as exc:
            self._pool.close()
            raise StoreError(f"{self._where}: cannot connect: {exc}") from exc
        try:
            with self._transaction("migrate schema", write=True) as tx:
                tx.query("SELECT pg_advisory_xact_lock(?, ?)", (LOCK_CLASS, _MIGRATION_LOCK))
                migrate(tx, self.dialect, self._where, time.time_ns(), migrations)
        except BaseException:
            self._pool.close()
            raise

    @property
    def _where(self) -> str:
        return f"store {self.url}"

    def _check_connect(self, target: str, extra: dict[str, Any]) -> None:
        """One direct connection first: the pool only says it timed out, libpq says why (auth, TLS, DNS)."""
        import psycopg

        try:
            psycopg.connect(target, connect_timeout=int(CONNECT_TIMEOUT_S), **extra).close()
        except psycopg.Error as exc:
            raise StoreError(f"{self._where}: cannot connect: {str(exc).strip()}") from exc

    @contextmanager
    def _transaction(self, operation: str, *, write: bool) -> Iterator[_Executor]:
        import psycopg

        try:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                if not write:
                    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield _Executor(cur)
        except psycopg.Error as exc:
            raise StoreError(f"{self._where}: {operation}: {str(exc).strip()}") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg_pool"):  # PoolTimeout, PoolClosed
                raise StoreError(f"{self._where}: {operation}: {exc}") from exc
            raise

    def _exclusive(self, tx: Any, name: str) -> bool:
        rows = tx.query("SELECT pg_try_advisory_xact_lock(?, ?)", (LOCK_CLASS, _RETENTION_LOCK))
        return bool(rows[0][0])

    def flush(self) -> None:
        """Nothing to do: every write is committed (and durable) when its call returns."""

    def close(self) -> None:
        self._pool.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r})"


def open_postgres(url: str) -> PostgresStore:
    return PostgresStore(url)
