"""Store lifecycle: URLs, the SQLite file, restarts, schema versions and migrations, errors."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from auditor.errors import ConfigError, StoreError
from auditor.store import LATEST_VERSION, SqliteStore, Store, open_store, register_backend, supported_schemes
from auditor.store import url as store_url
from auditor.store.schema import MIGRATIONS
from tests.test_store_helpers import finding


class TestUrl:
    def test_relative_path(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """sqlite:rel/path.db opens a file relative to the working directory, creating directories."""
        monkeypatch.chdir(tmp_path)
        open_store("sqlite:var/lib/auditor.db").close()
        assert (tmp_path / "var" / "lib" / "auditor.db").is_file()

    def test_absolute_path(self, tmp_path: Path) -> None:
        """sqlite:///abs/path.db opens an absolute path, as the default store URL expects."""
        target = tmp_path / "abs" / "auditor.db"
        open_store(f"sqlite://{target}").close()
        assert str(target).startswith("/")
        assert target.is_file()

    def test_four_slashes_also_absolute(self, tmp_path: Path) -> None:
        """SQLAlchemy's sqlite:////abs/path.db spelling means the same absolute path."""
        target = tmp_path / "four" / "auditor.db"
        open_store(f"sqlite:///{target}").close()
        assert target.is_file()

    def test_memory(self) -> None:
        """sqlite:///:memory: is a working store that writes no file."""
        with open_store("sqlite:///:memory:") as store:
            store.upsert_findings([finding()])
            assert len(store.findings()) == 1
        assert not os.path.exists(":memory:")

    def test_unknown_scheme_names_url_and_schemes(self) -> None:
        """An unsupported scheme is a ConfigError naming the URL and the supported schemes."""
        with pytest.raises(ConfigError, match=r"mysql://db/auditor.*sqlite://"):
            open_store("mysql://db/auditor")

    def test_postgresql_is_a_supported_scheme(self) -> None:
        """postgresql:// and postgres:// are registered backends and listed in the unsupported-scheme error."""
        assert {"postgresql", "postgres", "sqlite"} <= set(supported_schemes())

    def test_missing_scheme(self) -> None:
        """A bare path is not a URL."""
        with pytest.raises(ConfigError, match=r"auditor\.db"):
            open_store("/var/lib/auditor/auditor.db")

    @pytest.mark.parametrize(
        "url", ["sqlite://host/a.db", "sqlite:///", "sqlite:///a.db?mode=ro", "sqlite:///d/"]
    )
    def test_malformed_sqlite_urls(self, url: str) -> None:
        """Hosts, empty paths, queries and directory paths are ConfigErrors naming the URL."""
        with pytest.raises(ConfigError, match="store URL"):
            open_store(url)

    def test_registered_backend_receives_url(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A backend registered for a scheme gets the whole URL and its store is returned."""
        monkeypatch.setattr(store_url, "_BACKENDS", dict(store_url._BACKENDS))
        seen: list[str] = []

        def opener(url: str) -> Store:
            seen.append(url)
            return SqliteStore(str(tmp_path / "x.db"), url=url)

        register_backend("teststore", opener)
        assert "teststore" in supported_schemes()
        with open_store("teststore://anything") as store:
            assert store.url == "teststore://anything"
            assert seen == ["teststore://anything"]


class TestFile:
    def test_rollback_journal_without_shared_memory(self, tmp_path: Path) -> None:
        """The file uses a rollback journal and no mmap, so no `-shm` mapping can raise SIGBUS."""
        with open_store(f"sqlite:///{tmp_path}/a.db") as store:
            store.upsert_findings([finding()])
            assert not (tmp_path / "a.db-shm").exists()
        with closing(sqlite3.connect(tmp_path / "a.db")) as conn, conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"

    def test_wal_store_is_converted(self, tmp_path: Path) -> None:
        """A store an older version left in WAL mode is switched to the rollback journal, data kept."""
        url = f"sqlite:///{tmp_path}/a.db"
        with open_store(url) as store:
            store.upsert_findings([finding(count=2)])
        with closing(sqlite3.connect(tmp_path / "a.db")) as conn:
            conn.execute("PRAGMA journal_mode = WAL")
        with open_store(url) as store:
            assert [f.count for f in store.findings()] == [2]
        with closing(sqlite3.connect(tmp_path / "a.db")) as conn, conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"

    def test_restart_keeps_findings(self, tmp_path: Path) -> None:
        """Findings written before close are there after reopening, and still not new."""
        url = f"sqlite:///{tmp_path}/a.db"
        with open_store(url) as store:
            store.upsert_findings([finding(count=3)])
        with open_store(url) as store:
            assert [f.count for f in store.findings()] == [3]
            assert store.upsert_findings([finding()]) == []

    def test_closed_store_refuses_calls(self, tmp_path: Path) -> None:
        """Using a closed store raises StoreError naming the file; closing again is harmless."""
        store = open_store(f"sqlite:///{tmp_path}/a.db")
        store.close()
        store.close()
        with pytest.raises(StoreError, match=r"a\.db.*closed"):
            store.findings()

    def test_not_a_database(self, tmp_path: Path) -> None:
        """A file that is not SQLite is a StoreError naming it, caused by the sqlite3 error."""
        bogus = tmp_path / "notes.db"
        bogus.write_text("this is not a database, just text " * 100)
        with pytest.raises(StoreError, match=r"notes\.db") as info:
            open_store(f"sqlite:///{bogus}")
        assert isinstance(info.value.__cause__, sqlite3.Error)

    def test_uncreatable_directory(self, tmp_path: Path) -> None:
        """A parent path that is a file is a StoreError naming the directory."""
        (tmp_path / "file").write_text("x")
        with pytest.raises(StoreError, match="cannot create directory"):
            open_store(f"sqlite:///{tmp_path}/file/sub/a.db")

    def test_flush_leaves_everything_in_the_database_file(self, tmp_path: Path) -> None:
        """After flush() another connection reads every committed row from the file alone."""
        with open_store(f"sqlite:///{tmp_path}/a.db") as store:
            store.upsert_findings([finding(port=p) for p in range(200)])
            store.flush()
            assert sorted(p.name for p in tmp_path.iterdir()) == ["a.db"]


class TestSchema:
    def test_versions_recorded(self, tmp_path: Path) -> None:
        """Every migration leaves a row in schema_version; the store reports the latest."""
        with open_store(f"sqlite:///{tmp_path}/a.db") as store:
            assert store.schema_version() == LATEST_VERSION
        with closing(sqlite3.connect(tmp_path / "a.db")) as conn, conn:
            versions = [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY version")]
        assert versions == [m.version for m in MIGRATIONS]

    def test_old_database_migrates_keeping_data(self, tmp_path: Path) -> None:
        """A database at version 1 is brought to the latest version with its findings intact."""
        path = str(tmp_path / "a.db")
        with SqliteStore(path, migrations=MIGRATIONS[:1]) as old:
            assert old.schema_version() == 1
            old.upsert_findings([finding(count=5)])
        with SqliteStore(path) as store:
            assert store.schema_version() == LATEST_VERSION
            store.record_window(1, 2)
            assert [f.count for f in store.findings()] == [5]
            assert len(store.coverage(0, 3).windows) == 1

    def test_version_3_policy_history_migrates_as_network_policies(self, tmp_path: Path) -> None:
        """Policy history written before the kind column reads back as NetworkPolicy changes, in order."""
        path = str(tmp_path / "a.db")
        SqliteStore(path, migrations=MIGRATIONS[:3]).close()
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.executemany("INSERT INTO policy_changes (time_ns, change_type, namespace, name, revision, "
                             "spec_json) VALUES (?, 'ADDED', 'shop', ?, '1', '{}')",
                             [(5, "b"), (1, "a"), (1, "c")])
        with SqliteStore(path) as store:
            assert [(c.name, c.kind) for c in store.policy_changes()] == [
                ("a", "NetworkPolicy"), ("c", "NetworkPolicy"), ("b", "NetworkPolicy")]
            assert store.record_policy_change(1, "ADDED", "shop", "a", "1", "{}") is False
            assert store.record_policy_change(1, "ADDED", "shop", "a", "1", "{}", kind="CiliumNetworkPolicy")

    def test_newer_schema_refused(self, tmp_path: Path) -> None:
        """A database written by a newer auditor is refused with a clear StoreError."""
        open_store(f"sqlite:///{tmp_path}/a.db").close()
        with closing(sqlite3.connect(tmp_path / "a.db")) as conn, conn:
            conn.execute("INSERT INTO schema_version VALUES (?, 'from the future', 0)", (LATEST_VERSION + 1,))
        with pytest.raises(StoreError, match=rf"a\.db.*version {LATEST_VERSION + 1} is newer.*upgrade"):
            open_store(f"sqlite:///{tmp_path}/a.db")
