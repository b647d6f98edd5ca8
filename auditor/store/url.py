"""`open_store(url)`: the one way callers get a `Store`; backends are chosen by URL scheme."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from urllib.parse import quote, urlsplit

from auditor.errors import ConfigError, InputError
from auditor.store.base import Store
from auditor.store.sqlite import MEMORY, SqliteStore

Opener = Callable[[str], Store]
"""Builds a store from its full URL (raising ConfigError for a malformed one)."""

_BACKENDS: dict[str, Opener] = {}


def register_backend(scheme: str, opener: Opener) -> None:
    """Make `open_store` hand URLs of `scheme` (e.g. "postgresql") to `opener`."""
    _BACKENDS[scheme.lower()] = opener


def supported_schemes() -> tuple[str, ...]:
    return tuple(sorted(_BACKENDS))


def open_store(url: str) -> Store:
    """Open (and create or migrate) the store at `url`.

    `sqlite:///var/lib/auditor/auditor.db` (absolute), `sqlite:data/auditor.db` (relative),
    `sqlite:///:memory:`, `postgresql://auditor@db.example:5432/auditor?sslmode=verify-full` (libpq's rules).
    Raises ConfigError for a URL no backend takes, StoreError when the database is unusable.
    """
    scheme, sep, _ = url.partition(":")
    opener = _BACKENDS.get(scheme.lower()) if sep else None
    if opener is None:
        raise ConfigError(
            f"store URL {url!r}: unsupported scheme; supported: "
            + ", ".join(f"{name}://" for name in supported_schemes())
            + " (e.g. sqlite:///var/lib/auditor/auditor.db)"
        )
    return opener(url)


def sqlite_path(url: str) -> str:
    """The file path of a sqlite URL, read as a file URL (RFC 8089) reads its path.

    `sqlite:///var/lib/a.db` is the absolute path /var/lib/a.db (empty host, then the path);
    `sqlite:data/a.db` is relative to the working directory; `sqlite:///:memory:` is in memory.
    SQLAlchemy's four-slash spelling `sqlite:////var/lib/a.db` is accepted and means the same.
    """
    parts = urlsplit(url)
    if parts.netloc:
        raise ConfigError(
            f"store URL {url!r}: a sqlite URL has no host; write sqlite:///abs/path.db or sqlite:rel/path.db"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"store URL {url!r}: sqlite URLs take no query or fragment")
    if parts.path in ("", "/"):
        raise ConfigError(f"store URL {url!r}: no database path; write sqlite:///path/to/auditor.db")
    if parts.path == "/" + MEMORY or parts.path == MEMORY:
        return MEMORY
    path = "/" + parts.path.lstrip("/") if parts.path.startswith("/") else parts.path
    if path.endswith("/"):
        raise ConfigError(f"store URL {url!r}: the path names a directory, not a database file")
    return path


def require_existing_store(url: str) -> None:
    """InputError when `url` names a SQLite file that does not exist: a reader (report, whatif,
    recommend) reads a store the daemon wrote, and a mistyped path must not create an empty one."""
    if url.partition(":")[0].lower() != "sqlite":
        return
    path = sqlite_path(url)
    if path == MEMORY:
        return
    if not os.path.exists(path):
        raise InputError("no such store file (auditor run creates it; check --store)", path=path)
    problem = _not_a_store(path)
    if problem:
        raise InputError(f"{problem}; a read-only command leaves it as it is (check --store)", path=path)


SQLITE_HEADER = b"SQLite format 3\x00"


def _not_a_store(path: str) -> str:
    """Why an existing file is not an auditor store ("" when it is one): never written to here."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        return f"cannot read: {exc.strerror}"
    if not header:
        return "an empty file, not an auditor store"
    if header != SQLITE_HEADER:
        return "not a SQLite database"
    try:
        uri = f"file:{quote(os.path.abspath(path))}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
            tables = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_version'").fetchall()
    except sqlite3.Error as exc:
        return f"not a readable SQLite database ({exc})"
    return "" if tables else "a SQLite database, but not an auditor store (no schema_version table)"


def _open_sqlite(url: str) -> Store:
    path = sqlite_path(url)
    return SqliteStore(MEMORY if path == MEMORY else path, url=url)


def _open_postgres(url: str) -> Store:
    from auditor.store.postgres import PostgresStore  # psycopg is imported only when used

    return PostgresStore(url)


register_backend("sqlite", _open_sqlite)
register_backend("postgresql", _open_postgres)
register_backend("postgres", _open_postgres)
