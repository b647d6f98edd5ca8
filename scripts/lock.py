"""Write requirements.lock (the image's hash-pinned dependencies) from pyproject.toml; `--check` fails on drift.

    python scripts/lock.py              # re-resolve, keeping current pins where they still fit
    python scripts/lock.py --upgrade    # re-resolve every package to its newest release
    python scripts/lock.py --check      # exit 1 when requirements.lock no longer matches pyproject.toml

The lock is pip-tools output (`pip-compile --generate-hashes`): the runtime dependencies of
`[project].dependencies` and the build backend of `[build-system].requires`, every file of each
pinned release by sha256. The Dockerfile installs it with `pip install --require-hashes`.

`--check` has two parts. The offline part always runs: every direct requirement of pyproject.toml
is pinned in the lock at a version it accepts, nothing else claims to come from pyproject.toml,
and every pin carries hashes. The resolution part re-runs pip-compile on a copy of the lock (pins
kept, hashes re-fetched) and compares byte for byte, which also catches hand edits and transitive
drift; it needs the package index, and is skipped with a notice when the index cannot be reached
(`--offline` skips it outright). pip is run without the machine's pip configuration, so local
wheel caches or constraint files never leak into the lock.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = "requirements.lock"
COMMAND = "python scripts/lock.py"
SOURCE = "cilium-auditor (pyproject.toml"  # pip-tools' annotation; "::build-system.requires" may follow
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
_HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")
_VIA = re.compile(r"^\s*#\s+(?:via\s+|\s*)(\S.*)$")
_NETWORK = re.compile(r"NewConnectionError|Max retries exceeded|Name or service not known|"
                      r"Temporary failure in name resolution|Network is unreachable|ConnectTimeout")


@dataclass(frozen=True)
class Pin:
    """One locked package: version, its hash count and the annotations naming who needs it."""

    version: str
    hashes: int
    via: tuple[str, ...]


def parse_lock(text: str) -> dict[str, Pin]:
    """The pins of a pip-compile output, keyed by canonical name."""
    pins: dict[str, Pin] = {}
    name, version, hashes = "", "", 0
    via: list[str] = []
    for line in [*text.splitlines(), ""]:
        pin = _PIN.match(line)
        if pin or not line.strip():
            if name:
                pins[name] = Pin(version, hashes, tuple(via))
            name, version, hashes, via = "", "", 0, []
        if pin:
            name, version = canonicalize_name(pin.group(1)), pin.group(2)
            hashes += len(_HASH.findall(line))
        elif name and _HASH.search(line):
            hashes += len(_HASH.findall(line))
        elif name and (annotation := _VIA.match(line)) and annotation.group(1) != "via":
            via.append(annotation.group(1))
    return pins


def direct_requirements(pyproject: str) -> list[Requirement]:
    """The runtime dependencies and build-system requirements pyproject.toml declares."""
    data = tomllib.loads(pyproject)
    declared = [*data["project"].get("dependencies", []), *data["build-system"].get("requires", [])]
    return [Requirement(item) for item in declared]


def offline_problems(pyproject: str, lock: str) -> list[str]:
    """What makes the lock disagree with pyproject.toml, without asking the index."""
    pins = parse_lock(lock)
    problems: list[str] = []
    direct: dict[str, Requirement] = {canonicalize_name(r.name): r for r in direct_requirements(pyproject)}
    for name, requirement in sorted(direct.items()):
        pin = pins.get(name)
        if pin is None:
            problems.append(f"{requirement} is declared in pyproject.toml but not pinned in {LOCK}")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{name}=={pin.version} in {LOCK} does not satisfy pyproject.toml's {requirement}")
    for name, pin in sorted(pins.items()):
        if pin.hashes == 0:
            problems.append(f"{name}=={pin.version} in {LOCK} has no --hash")
        if name not in direct and any(v.startswith(SOURCE) for v in pin.via):
            problems.append(f"{name} is marked in {LOCK} as from pyproject.toml, which does not declare it")
    if f"#    {COMMAND}" not in lock:
        problems.append(f"{LOCK} was not written by `{COMMAND}` (header differs)")
    return problems


def _pip_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_DEFAULT_TIMEOUT="60",
               PIP_RETRIES="2", CUSTOM_COMPILE_COMMAND=COMMAND)
    return env


def compile_lock(root: Path, output: Path, *, upgrade: bool = False) -> subprocess.CompletedProcess[str]:
    """Run pip-compile for root/pyproject.toml into output (existing pins there are kept unless upgrade)."""
    binary = shutil.which("pip-compile", path=str(Path(sys.executable).parent)) or "pip-compile"
    argv = [binary, "--quiet", "--generate-hashes", "--no-reuse-hashes", "--allow-unsafe", "--strip-extras",
            "--no-emit-index-url", "--build-deps-for", "wheel", "--output-file", str(output), "pyproject.toml"]
    if upgrade:
        argv.insert(1, "--upgrade")
    return subprocess.run(argv, cwd=root, env=_pip_env(), capture_output=True, text=True, timeout=900,
                          check=False)


def resolution_problems(root: Path) -> list[str] | None:
    """Differences between the lock and a fresh resolution of it; None when pip-compile cannot run or
    the index is unreachable."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / LOCK
        shutil.copy2(root / LOCK, fresh)
        try:
            proc = compile_lock(root, fresh)
        except (OSError, subprocess.TimeoutExpired):  # no pip-tools installed, or the index hangs
            return None
        if proc.returncode != 0:
            if _NETWORK.search(proc.stderr):
                return None
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            return [f"{LOCK} does not re-resolve as it stands (run `{COMMAND}`); pip-compile said:\n{tail}"]
        old, new = (root / LOCK).read_text(), fresh.read_text()
    if old == new:
        return []
    diff = difflib.unified_diff(old.splitlines(), new.splitlines(), LOCK, "re-resolved", lineterm="", n=1)
    return [f"{LOCK} differs from a fresh resolution (run `{COMMAND}`):\n" + "\n".join(diff)]


def check(root: Path, *, offline: bool) -> int:
    """Print each problem found; 0 when the lock is fresh."""
    lock = root / LOCK
    if not lock.is_file():
        print(f"lock: {lock} is missing (run `{COMMAND}`)", file=sys.stderr)
        return 1
    problems = offline_problems((root / "pyproject.toml").read_text(), lock.read_text())
    if not problems and not offline:
        resolved = resolution_problems(root)
        if resolved is None:
            print("lock: pip-compile or the package index unavailable; resolution check skipped "
                  "(offline checks passed)")
        problems = resolved or []
    for problem in problems:
        print(f"lock: {problem}", file=sys.stderr)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail (exit 1) if requirements.lock is stale")
    parser.add_argument("--offline", action="store_true", help="with --check: skip the re-resolution")
    parser.add_argument("--upgrade", action="store_true", help="re-resolve every package to its newest release")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.check:
        return check(args.root, offline=args.offline)
    proc = compile_lock(args.root, args.root / LOCK, upgrade=args.upgrade)
    sys.stderr.write(proc.stderr)
    if proc.returncode == 0:
        print(f"lock: wrote {LOCK} ({len(parse_lock((args.root / LOCK).read_text()))} packages)")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
