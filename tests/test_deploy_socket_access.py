"""Node mode's permission model, reproduced on this machine: cilium-agent's hubble.sock is mode
0660 owned by root, so the DaemonSet's non-root user reaches it through supplemental group 0,
with no capability, through a read-only bind mount of the directory (docs/deployment.md)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy_support import pod_spec, render

CLIENT = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_UNIX)\n"
    "try:\n"
    "    s.connect(sys.argv[1]); print('connected', s.recv(2).decode())\n"
    "except OSError as exc:\n"
    "    print('refused', exc.errno)\n"
)
# A Python any user can execute (the test interpreter may live under root's home).
SYSTEM_PYTHON = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if os.access(p, os.X_OK)), None)


@pytest.fixture
def agent_socket() -> Iterator[Path]:
    """A stand-in for cilium-agent's socket: root-owned, mode 0660, in a 0775 directory."""
    if os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("unshare") or not SYSTEM_PYTHON:
        pytest.skip("needs root, setpriv, unshare and a system python3")
    top = Path(tempfile.mkdtemp(prefix="auditor-sock-", dir="/tmp"))
    run = top / "run"
    run.mkdir()
    top.chmod(0o755)
    run.chmod(0o775)
    path = run / "hubble.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    path.chmod(0o660)
    server.listen(4)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.sendall(b"ok")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()
        shutil.rmtree(top)


def _connect_as(path: Path, uid: int, groups: list[int], read_only_mount: bool) -> str:
    """Connect to the socket as uid with these supplementary groups and no capabilities."""
    as_user = ["setpriv", f"--reuid={uid}", f"--regid={uid}"]
    as_user += [f"--groups={','.join(map(str, groups))}"] if groups else ["--clear-groups"]
    as_user += ["--inh-caps=-all", "--bounding-set=-all", str(SYSTEM_PYTHON), "-c", CLIENT, str(path)]
    command = as_user
    if read_only_mount:
        directory = str(path.parent)
        mount = f"mount --bind {directory} {directory} && mount -o remount,bind,ro {directory} && exec \"$@\""
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, "sh", *as_user]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    return proc.stdout.strip() or proc.stderr.strip()


class TestNodeModeSocketAccess:
    def test_manifest_user_reaches_socket_through_read_only_mount(self, agent_socket: Path) -> None:
        """The DaemonSet's runAsUser plus supplementalGroups connects through a read-only mount."""
        ctx = pod_spec(render("node"))["securityContext"]
        result = _connect_as(agent_socket, ctx["runAsUser"], ctx["supplementalGroups"], read_only_mount=True)
        assert result == "connected ok"

    def test_without_the_group_access_is_denied(self, agent_socket: Path) -> None:
        """The same user without group 0 is refused (EACCES): the group is what grants access."""
        uid = pod_spec(render("node"))["securityContext"]["runAsUser"]
        assert _connect_as(agent_socket, uid, [], read_only_mount=False) == "refused 13"
