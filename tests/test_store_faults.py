"""A real SQLite store whose files are made immutable under it: an error to count, never a signal."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

WRITER = r"""
import sys
from auditor.errors import StoreError
from auditor.store import open_store
from tests.test_store_helpers import finding

store = open_store(f"sqlite:///{sys.argv[1]}")
store.upsert_findings([finding(port=p) for p in range(300)])
print("ready", flush=True)
sys.stdin.readline()
try:
    store.upsert_findings([finding(port=p) for p in range(300, 3000)])
    print("written", flush=True)
except StoreError as exc:
    print("store error:", exc, flush=True)
"""


def chattr(flag: str, paths: list[Path]) -> bool:
    if shutil.which("chattr") is None:
        return False
    done = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, check=False)
    return done.returncode == 0


@pytest.fixture
def frozen(tmp_path: Path) -> Iterator[list[Path]]:
    frozen_paths: list[Path] = []
    yield frozen_paths
    chattr("-i", frozen_paths)


def test_immutable_store_files_are_a_store_error_not_sigbus(tmp_path: Path, frozen: list[Path]) -> None:
    """chattr +i on every store file (as on `-shm`) makes the next write a StoreError; the process lives."""
    database = tmp_path / "a.db"
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(database)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent)
    assert child.stdout is not None
    assert child.stdin is not None
    assert child.stdout.readline().strip() == "ready"
    frozen.extend(sorted(tmp_path.glob("a.db*")))
    if not chattr("+i", frozen):
        child.kill()
        child.wait()
        pytest.skip("chattr +i is not available here (needs root on ext4/xfs)")
    out, _ = child.communicate("go\n", timeout=30)
    assert child.returncode == 0, f"the writer died with signal {-child.returncode}"
    assert out.startswith("store error:")
    assert "a.db" in out
