"""Fixtures shared by the store suites: every store test runs on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg_support import PgServer, start_server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One throwaway PostgreSQL server for the session (skipped, or failed under CI, when it cannot start)."""
    server = start_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty store on each backend: a SQLite file, or a fresh schema on the test server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/auditor.db"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.url_for(server.new_schema())
