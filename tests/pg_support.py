"""A throwaway PostgreSQL server for the tests: initdb + pg_ctl in a temporary directory, loopback port.

initdb refuses to run as root, so as root the cluster belongs to the `postgres` user (Debian's package
creates it) and the server commands run through `runuser`.  Without the binaries the tests that need
the server are skipped with the reason, except under CI (CI=true), where that is a failure.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

PASSWORD = "auditor-test-pw"
USER = "auditor"
DATABASE = "auditor"


def _bindir() -> str | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    found = shutil.which("initdb")
    return os.path.dirname(found) if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PgServer:
    bindir: str
    root: Path
    port: int
    run_as: str | None

    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def url_for(self, schema: str, *, password: bool = True) -> str:
        """A URL whose connections use their own schema (libpq's `options` parameter)."""
        auth = f"{USER}:{PASSWORD}" if password else USER
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{DATABASE}?options=-csearch_path%3D{schema}"

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *args] if self.run_as else list(args)

    def run(self, *args: str) -> None:
        result = subprocess.run(self._cmd(*args), capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {result.stdout}{result.stderr}")

    def start(self) -> None:
        data, sockets = self.root / "data", self.root / "sock"
        sockets.mkdir()
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD)
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            for path in (self.root, sockets, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.run(f"{self.bindir}/initdb", "-D", str(data), "-U", USER, "--pwfile", str(pwfile), "-A",
                 "scram-sha-256", "-E", "UTF8", "--locale", "C.UTF-8" if _has_c_utf8() else "C", "--no-sync")
        options = (f"-p {self.port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self.run(f"{self.bindir}/pg_ctl", "-D", str(data), "-l", str(self.root / "log"), "-o", options,
                 "-w", "-t", "60", "start")
        import psycopg

        with psycopg.connect(self.url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")  # type: ignore[arg-type,unused-ignore]

    def stop(self) -> None:
        subprocess.run(self._cmd(f"{self.bindir}/pg_ctl", "-D", str(self.root / "data"), "-m", "immediate",
                                 "-w", "stop"), capture_output=True, timeout=60, check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type,unused-ignore]

    def new_schema(self) -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        self.execute(f"CREATE SCHEMA {name}")
        return name


def _has_c_utf8() -> bool:
    result = subprocess.run(["locale", "-a"], capture_output=True, text=True, check=False)
    return any(line.lower() in ("c.utf8", "c.utf-8") for line in result.stdout.splitlines())


def start_server() -> PgServer:
    """Start one server, or skip (fail under CI) saying why not."""
    bindir = _bindir()
    if bindir is None:
        _unavailable("PostgreSQL's initdb/pg_ctl are not installed (apt-get install postgresql)")
    run_as = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no postgres user for initdb")
        run_as = "postgres"
    server = PgServer(bindir=str(bindir), root=Path(tempfile.mkdtemp(prefix="auditor-pg-")), port=_free_port(),
                      run_as=run_as)
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        server.stop()
        _unavailable(f"PostgreSQL did not start: {exc}")
    return server


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI: {reason}", pytrace=False)
    pytest.skip(reason)
