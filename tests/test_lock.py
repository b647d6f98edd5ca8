"""requirements.lock, the image's hash-pinned dependencies: in step with pyproject.toml, every pin
hashed, and `scripts/lock.py --check` failing on drift (offline part always; re-resolution when the
package index can be reached)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "lock.py"


def _lock_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lock_script", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


lock = _lock_module()


def _copy(tmp_path: Path) -> Path:
    for name in ("pyproject.toml", "requirements.lock"):
        shutil.copy2(ROOT / name, tmp_path / name)
    return tmp_path


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "--check", "--offline", "--root", str(root)],
                          capture_output=True, text=True, timeout=60, check=False)


class TestLockFile:
    def test_repository_lock_is_fresh_offline(self) -> None:
        """The committed lock passes the offline check against the committed pyproject.toml."""
        proc = _check(ROOT)
        assert proc.returncode == 0, proc.stderr

    def test_every_pin_is_hashed(self) -> None:
        """Each pinned package has sha256 hashes, and the runtime dependencies are all there."""
        pins = lock.parse_lock((ROOT / "requirements.lock").read_text())
        direct = {"grpcio", "protobuf", "prometheus-client", "kubernetes", "structlog", "pyyaml", "setuptools"}
        assert direct <= set(pins)
        assert all(pin.hashes > 0 for pin in pins.values())

    def test_pins_are_exact(self) -> None:
        """Every requirement line pins one version with ==."""
        for line in (ROOT / "requirements.lock").read_text().splitlines():
            if line and not line.startswith((" ", "#")):
                assert re.fullmatch(r"[a-z0-9._-]+==\S+ \\", line), line


class TestDriftFails:
    def test_new_dependency_in_pyproject(self, tmp_path: Path) -> None:
        """A dependency added to pyproject.toml and not locked fails the check, named."""
        root = _copy(tmp_path)
        text = (root / "pyproject.toml").read_text()
        text = text.replace('    "PyYAML>=6.0",\n', '    "PyYAML>=6.0",\n    "six>=1.16",\n')
        (root / "pyproject.toml").write_text(text)
        proc = _check(root)
        assert proc.returncode == 1
        assert "six>=1.16 is declared in pyproject.toml but not pinned" in proc.stderr

    def test_raised_lower_bound(self, tmp_path: Path) -> None:
        """A pyproject.toml bound the locked version no longer satisfies fails the check."""
        root = _copy(tmp_path)
        text = (root / "pyproject.toml").read_text().replace('"grpcio>=1.60"', '"grpcio>=99"')
        (root / "pyproject.toml").write_text(text)
        proc = _check(root)
        assert proc.returncode == 1
        assert "does not satisfy pyproject.toml's grpcio>=99" in proc.stderr

    def test_removed_dependency(self, tmp_path: Path) -> None:
        """A dependency dropped from pyproject.toml but still locked as its own fails the check."""
        root = _copy(tmp_path)
        text = (root / "pyproject.toml").read_text().replace('    "structlog>=23.2",\n', "")
        (root / "pyproject.toml").write_text(text)
        proc = _check(root)
        assert proc.returncode == 1
        assert "structlog is marked in requirements.lock as from pyproject.toml" in proc.stderr

    def test_pin_without_hash(self, tmp_path: Path) -> None:
        """A pin whose hashes were removed fails the check."""
        root = _copy(tmp_path)
        text = (root / "requirements.lock").read_text()
        text = re.sub(r"(structlog==\S+) \\\n(\s+--hash=\S+( \\)?\n)+", r"\1\n", text)
        (root / "requirements.lock").write_text(text)
        proc = _check(root)
        assert proc.returncode == 1
        assert "has no --hash" in proc.stderr

    def test_hand_written_lock(self, tmp_path: Path) -> None:
        """A lock not written by scripts/lock.py (header) fails the check."""
        root = _copy(tmp_path)
        text = (root / "requirements.lock").read_text()
        text = text.replace("#    python scripts/lock.py", "#    pip freeze")
        (root / "requirements.lock").write_text(text)
        assert "was not written by" in _check(root).stderr

    def test_missing_lock(self, tmp_path: Path) -> None:
        """No lock at all fails with the command to write one."""
        shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
        proc = _check(tmp_path)
        assert proc.returncode == 1
        assert "python scripts/lock.py" in proc.stderr


@pytest.mark.slow
class TestResolution:
    def test_hand_edited_version_fails_re_resolution(self, tmp_path: Path) -> None:
        """A transitive pin changed by hand (hashes of another release) fails the re-resolution."""
        if shutil.which("pip-compile", path=str(Path(sys.executable).parent)) is None:
            pytest.skip("pip-tools is not installed (dev extra)")
        root = _copy(tmp_path)
        shutil.copy2(ROOT / "README.md", root / "README.md")
        shutil.copytree(ROOT / "auditor", root / "auditor", ignore=shutil.ignore_patterns("__pycache__"))
        text = (root / "requirements.lock").read_text()
        text = re.sub(r"^idna==\S+", "idna==3.6", text, flags=re.MULTILINE)
        (root / "requirements.lock").write_text(text)
        problems = lock.resolution_problems(root)
        if problems is None:
            pytest.skip("package index unreachable")
        assert problems
        assert "requirements.lock" in problems[0]
