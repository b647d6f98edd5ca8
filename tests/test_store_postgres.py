"""The PostgreSQL backend's own edges: libpq URLs, passwords from a file or the environment, sslmode,
errors naming the database without its password, migrations on a real server."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from auditor.app.daemon import open_daemon_store
from auditor.errors import ConfigError, StoreError
from auditor.store import LATEST_VERSION, open_store
from auditor.store.postgres import PASSWORD_ENV, PASSWORD_FILE_ENV, PostgresStore, conninfo, redact
from auditor.store.schema import MIGRATIONS
from tests.pg_support import PASSWORD, PgServer
from tests.test_store_helpers import finding


class TestUrl:
    def test_malformed_url_names_it(self) -> None:
        """A URL libpq cannot parse is a ConfigError naming the URL."""
        with pytest.raises(ConfigError, match=r"store URL 'postgresql://h/db\?nosuch=1'"):
            conninfo("postgresql://h/db?nosuch=1", env={})

    def test_bad_sslmode(self) -> None:
        """An sslmode libpq does not know is refused with the list of modes."""
        with pytest.raises(ConfigError, match="verify-full"):
            conninfo("postgresql://h/db?sslmode=strict", env={})

    def test_password_from_file(self, tmp_path: Path) -> None:
        """AUDITOR_STORE_PASSWORD_FILE gives the password (trailing newline dropped) when the URL has none."""
        secret = tmp_path / "pw"
        secret.write_text("s3cret\n")
        _, extra = conninfo("postgresql://u@h/db", env={PASSWORD_FILE_ENV: str(secret)})
        assert extra == {"password": "s3cret"}

    def test_password_from_env(self) -> None:
        """AUDITOR_STORE_PASSWORD supplies the password when the URL has none."""
        _, extra = conninfo("postgresql://u@h/db", env={PASSWORD_ENV: "pw"})
        assert extra == {"password": "pw"}

    def test_url_password_wins(self) -> None:
        """A password in the URL is used as it is; the environment does not override it."""
        _, extra = conninfo("postgresql://u:inurl@h/db", env={PASSWORD_ENV: "pw"})
        assert extra == {}

    def test_missing_password_file(self, tmp_path: Path) -> None:
        """A password file that cannot be read is a ConfigError naming the file."""
        with pytest.raises(ConfigError, match="nope"):
            conninfo("postgresql://u@h/db", env={PASSWORD_FILE_ENV: str(tmp_path / "nope")})

    def test_redact(self) -> None:
        """Passwords in the authority or the query never show in the URL the store reports."""
        assert redact("postgresql://u:pw@h:5/db?password=x&sslmode=require") == (
            "postgresql://u:***@h:5/db?password=***&sslmode=require")


class TestServer:
    def test_opens_and_migrates(self, pg_server: PgServer) -> None:
        """A new schema is migrated to the latest version and the store works."""
        with open_store(pg_server.url_for(pg_server.new_schema())) as store:
            assert store.schema_version() == LATEST_VERSION
            store.upsert_findings([finding()])
            assert store.findings()[0].count == 1

    def test_password_file_connects(self, pg_server: PgServer, tmp_path: Path) -> None:
        """The password from a file is what libpq authenticates with."""
        secret = tmp_path / "pw"
        secret.write_text(PASSWORD + "\n")
        url = pg_server.url_for(pg_server.new_schema(), password=False)
        with PostgresStore(url, env={PASSWORD_FILE_ENV: str(secret)}) as store:
            assert store.schema_version() == LATEST_VERSION

    def test_daemon_store_password_file(self, pg_server: PgServer, tmp_path: Path) -> None:
        """`run --store-password-file` (the mounted Secret) authenticates a URL without a password."""
        secret = tmp_path / "pw"
        secret.write_text(PASSWORD)
        url = pg_server.url_for(pg_server.new_schema(), password=False)
        with open_daemon_store(url, str(secret)) as store:
            assert store.schema_version() == LATEST_VERSION

    def test_wrong_password_is_store_error_without_password(self, pg_server: PgServer) -> None:
        """A failed login is a StoreError with libpq's reason; the password is not in the message."""
        url = f"postgresql://auditor:wrongpw@127.0.0.1:{pg_server.port}/auditor"
        with pytest.raises(StoreError, match="password authentication failed") as caught:
            open_store(url)
        assert "wrongpw" not in str(caught.value)

    def test_every_migration_step(self, pg_server: PgServer) -> None:
        """A store at each older version migrates to the latest, keeping its findings."""
        for version in range(1, LATEST_VERSION):
            url = pg_server.url_for(pg_server.new_schema())
            with PostgresStore(url, migrations=MIGRATIONS[:version]) as old:
                assert old.schema_version() == version
                old.upsert_findings([finding()])
            with open_store(url) as store:
                assert store.schema_version() == LATEST_VERSION
                assert [f.count for f in store.findings()] == [1]

    def test_text_orders_bytewise(self, pg_server: PgServer) -> None:
        """Text sorts by code point, as on SQLite, whatever the database's locale."""
        with open_store(pg_server.url_for(pg_server.new_schema())) as store:
            store.upsert_findings([finding(namespace=ns) for ns in ("b", "B", "a", "_x")])
            assert [f.namespace for f in store.findings()] == sorted(["b", "B", "a", "_x"])

    def test_closed_store_raises(self, pg_server: PgServer) -> None:
        """Calls after close raise StoreError naming the store."""
        store = open_store(pg_server.url_for(pg_server.new_schema()))
        store.close()
        with pytest.raises(StoreError, match="store postgresql://"):
            store.findings()

    def test_schema_is_tables_in_the_search_path(self, pg_server: PgServer) -> None:
        """libpq's options parameter (search_path) places the tables: another schema stays empty."""
        schema = pg_server.new_schema()
        open_store(pg_server.url_for(schema)).close()
        with psycopg.connect(pg_server.url) as conn:
            rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                                (schema,)).fetchall()
        assert {"findings", "counters", "leases", "schema_version"} <= {row[0] for row in rows}
