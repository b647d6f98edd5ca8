"""The image's layout, reproduced without Docker: the builder's COPY set is installed into a plain
virtualenv, and its `auditor` entry point runs with the root filesystem read-only except for a
store volume, HOME and the working directory read-only, as in the container."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.dockerfile_support import REPO, context_sources, load

# Re-mount every mount point read-only inside a private mount namespace (the host is untouched),
# then put a tmpfs on the store directory: the container's read-only root plus its one volume.
SANDBOX = r"""
store="$1"; shift
for m in $(awk '{print $5}' /proc/self/mountinfo); do
  case "$m" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|/mnt|/mnt/*) continue;; esac
  mount -o remount,bind,ro "$m" 2>/dev/null || true
done
mount -t tmpfs -o size=16m tmpfs "$store" || exit 97
exec "$@"
"""


def _build_venv(root: Path) -> Path:
    """Copy what the builder stage COPYs, install it into a fresh venv; return the venv."""
    src = root / "src"
    src.mkdir()
    for source in context_sources(load()[1][0]):
        origin = REPO / source
        if origin.is_dir():
            shutil.copytree(origin, src / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, src / source)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    # The dependencies come from the project's .venv (offline, fast); auditor itself is installed
    # into the new venv, which precedes the .pth path on sys.path.
    purelib = Path(sysconfig.get_paths()["purelib"])
    new_site = next((venv / "lib").glob("python3*/site-packages"))
    (new_site / "_auditor_test_deps.pth").write_text(f"{purelib}\n", encoding="utf-8")
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--ignore-installed", "--no-index", str(src)],
        check=True, timeout=180, capture_output=True,
    )
    return venv


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_venv(tmp_path_factory.mktemp("image-layout"))


def _sandbox_available() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           capture_output=True, timeout=30, check=False)
    return probe.returncode == 0


def _run_read_only(venv: Path, root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run argv with / read-only, HOME and cwd read-only, TMPDIR on a writable store."""
    home, cwd, store = root / "home", root / "cwd", root / "store"
    for directory in (home, cwd, store):
        directory.mkdir(exist_ok=True)
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "TMPDIR": str(store),
        "PYTHONDONTWRITEBYTECODE": "1",
        "LANG": "C.UTF-8",
    }
    command = ["unshare", "--mount", "--propagation", "private", "bash", "-c", SANDBOX, "sandbox", str(store),
               *argv]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


class TestPlainVenv:
    def test_entry_point_is_installed_from_the_copied_sources(self, venv: Path) -> None:
        """Installing exactly the builder's COPY set yields an `auditor` console script."""
        assert (venv / "bin" / "auditor").is_file()
        proc = subprocess.run([str(venv / "bin" / "python"), "-c", "import auditor; print(auditor.__file__)"],
                              cwd=venv, capture_output=True, text=True, timeout=60, check=True)
        assert proc.stdout.startswith(str(venv))

    def test_installed_distribution_carries_the_licence(self, venv: Path) -> None:
        """The wheel built from the copied sources ships LICENSE (Apache-2.0) in its dist-info."""
        site = next((venv / "lib").glob("python3*/site-packages"))
        licences = list(site.glob("cilium_auditor-*.dist-info/licenses/LICENSE"))
        assert len(licences) == 1
        assert "Apache License" in licences[0].read_text()
        assert licences[0].read_text() == (REPO / "LICENSE").read_text()

    def test_help_runs(self, venv: Path) -> None:
        """`auditor --help` exits 0 and names the program."""
        proc = subprocess.run([str(venv / "bin" / "auditor"), "--help"], cwd=venv, capture_output=True,
                              text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        assert "usage: auditor" in proc.stdout


class TestReadOnlyRoot:
    @pytest.fixture(autouse=True)
    def _needs_sandbox(self) -> None:
        if not _sandbox_available():
            pytest.skip("needs root and unshare to mount a read-only root in a private namespace")

    def test_sandbox_really_is_read_only(self, venv: Path, tmp_path: Path) -> None:
        """Inside the sandbox, writing to HOME, the cwd or the venv fails; the store is writable."""
        script = (
            "for d in \"$HOME\" \"$PWD\" \"$0\"; do touch \"$d/x\" 2>/dev/null && echo \"writable $d\"; done; "
            "touch \"$TMPDIR/x\" && echo store-ok"
        )
        proc = _run_read_only(venv, tmp_path, "bash", "-c", script, str(venv))
        assert proc.stdout.split() == ["store-ok"], proc.stdout + proc.stderr

    @pytest.mark.parametrize("argv", [["--help"], ["--version"]], ids=["help", "version"])
    def test_auditor_runs_with_read_only_root(self, venv: Path, tmp_path: Path, argv: list[str]) -> None:
        """`auditor --help` and `--version` succeed with / read-only and HOME and cwd read-only."""
        proc = _run_read_only(venv, tmp_path, "auditor", *argv)
        assert proc.returncode == 0, proc.stderr
        assert "auditor" in proc.stdout

    def test_run_help_with_read_only_root(self, venv: Path, tmp_path: Path) -> None:
        """`auditor run --help` (importing the daemon's modules) succeeds with a read-only root."""
        listing = _run_read_only(venv, tmp_path, "auditor", "--help")
        if " run " not in listing.stdout and "\n    run" not in listing.stdout:
            pytest.skip("auditor run is not registered yet")
        proc = _run_read_only(venv, tmp_path, "auditor", "run", "--help")
        assert proc.returncode == 0, proc.stderr
        assert "--hubble-server" in proc.stdout
