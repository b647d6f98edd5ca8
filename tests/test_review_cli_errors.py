"""Every command on unusable input: one clear line naming the file or flag, a non-zero exit, no traceback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditor.cli import main
from tests.daemon_support import DEMO_FLOWS, DEMO_MANIFESTS

M, F = str(DEMO_MANIFESTS), str(DEMO_FLOWS)
LOCAL = ("--metrics-address", "127.0.0.1:0")


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def files(tmp_path: Path, busy_port: int) -> dict[str, str]:
    """Named bad inputs: {name} placeholders in the cases below."""
    bad = {
        "bad_yaml": "a: [1,\n  b",
        "bad_jsonl": "not json\n",
        "list_kube": "- 1\n- 2\n",
        "shape_kube": "contexts: 5\ncurrent-context: [1]\n",
        "inf_cfg": "history_window: .inf\n",
        "nan_cfg": "flush_interval: .nan\n",
        "neg_cfg": "flush_interval: -3\n",
        "frac_cfg": "queue_size: 5.7\n",
        "bad_cfg": "store: [\n",
        "deep_cfg": "store: " + "[" * 100_000 + "]" * 100_000 + "\n",
        "deep_jsonl": '{"time": "2026-11-20T10:00:00Z", "type": "ADDED", "object": ' + "[" * 100_000
                      + "]" * 100_000 + "}\n",
    }
    paths = {name: tmp_path / f"{name}.txt" for name in bad}
    for name, text in bad.items():
        paths[name].write_text(text)
    (tmp_path / "dir").mkdir()
    names = {name: str(path) for name, path in paths.items()}
    names.update(dir=str(tmp_path / "dir"), missing=str(tmp_path / "missing"), tmp=str(tmp_path),
                 under_file=str(paths["bad_yaml"] / "out"), busy=f"127.0.0.1:{busy_port}",
                 store=f"sqlite:{tmp_path / 'a.db'}")
    return names


CASES: dict[str, tuple[str, ...]] = {
    # auditor run
    "run-missing-manifests": ("run", "--manifests", "{missing}", "--flows", F, "--store", "{store}", *LOCAL),
    "run-flows-directory": ("run", "--manifests", M, "--flows", "{dir}", "--store", "{store}", *LOCAL),
    "run-bad-yaml-manifests": ("run", "--manifests", "{bad_yaml}", "--flows", F, "--store", "{store}", *LOCAL),
    "run-bad-config-yaml": ("run", "--config", "{bad_cfg}", "--manifests", M),
    "run-config-missing": ("run", "--config", "{missing}", "--manifests", M),
    "run-config-nested-too-deep": ("run", "--config", "{deep_cfg}", "--manifests", M),
    "run-kubeconfig-nested-too-deep": ("run", "--kubeconfig", "{deep_cfg}", "--flows", F, "--store", "{store}",
                                       *LOCAL),
    "run-config-infinite-duration": ("run", "--config", "{inf_cfg}", "--manifests", M, "--flows", F,
                                     "--store", "{store}", *LOCAL),
    "run-config-nan-duration": ("run", "--config", "{nan_cfg}", "--manifests", M, "--flows", F,
                                "--store", "{store}", *LOCAL),
    "run-config-negative-duration": ("run", "--config", "{neg_cfg}", "--manifests", M, "--flows", F,
                                     "--store", "{store}", *LOCAL),
    "run-config-fractional-int": ("run", "--config", "{frac_cfg}", "--manifests", M, "--flows", F,
                                  "--store", "{store}", *LOCAL),
    "run-bad-store-url": ("run", "--manifests", M, "--flows", F, "--store", "postgres://x", *LOCAL),
    "run-store-is-directory": ("run", "--manifests", M, "--flows", F, "--store", "sqlite:{dir}", *LOCAL),
    "run-store-not-a-database": ("run", "--manifests", M, "--flows", F, "--store", "sqlite:{bad_yaml}", *LOCAL),
    "run-metrics-port-busy": ("run", "--manifests", M, "--flows", F, "--store", "{store}",
                              "--metrics-address", "{busy}"),
    "run-bad-metrics-address": ("run", "--manifests", M, "--flows", F, "--store", "{store}",
                                "--metrics-address", "nonsense"),
    "run-bad-duration": ("run", "--manifests", M, "--flows", F, "--store", "{store}", "--history-window", "abc",
                         *LOCAL),
    "run-zero-queue": ("run", "--manifests", M, "--flows", F, "--store", "{store}", "--queue-size", "0",
                       *LOCAL),
    "run-series-cap-too-small": ("run", "--manifests", M, "--flows", F, "--store", "{store}",
                                 "--max-series-per-metric", "1", *LOCAL),
    "run-bad-cluster-events": ("run", "--manifests", M, "--cluster-events", "{bad_jsonl}", "--flows", F,
                               "--store", "{store}", *LOCAL),
    "run-kubeconfig-bad-yaml": ("run", "--kubeconfig", "{bad_yaml}", "--flows", F, "--store", "{store}",
                                *LOCAL),
    "run-kubeconfig-a-list": ("run", "--kubeconfig", "{list_kube}", "--flows", F, "--store", "{store}", *LOCAL),
    "run-kubeconfig-bad-shape": ("run", "--kubeconfig", "{shape_kube}", "--flows", F, "--store", "{store}",
                                 *LOCAL),
    "run-missing-tls-ca": ("run", "--manifests", M, "--tls", "--tls-ca-cert-files", "{missing}",
                           "--store", "{store}", *LOCAL),
    # auditor audit
    "audit-missing-manifests": ("audit", "--manifests", "{missing}"),
    "audit-flows-directory": ("audit", "--manifests", M, "--flows", "{dir}"),
    "audit-bad-yaml": ("audit", "--manifests", "{bad_yaml}"),
    "audit-bad-events": ("audit", "--manifests", M, "--cluster-events", "{bad_jsonl}"),
    "audit-events-directory": ("audit", "--manifests", M, "--cluster-events", "{dir}"),
    "audit-events-nested-too-deep": ("audit", "--manifests", M, "--cluster-events", "{deep_jsonl}"),
    "audit-flows-under-a-file": ("audit", "--manifests", M, "--flows", "{under_file}"),
    # auditor explain
    "explain-missing-manifests": ("explain", "--manifests", "{missing}", "--from", "a/b", "--to", "c/d",
                                  "--port", "80"),
    "explain-bad-time": ("explain", "--manifests", M, "--at", "yesterday", "--from", "a/b", "--to", "c/d",
                         "--port", "80"),
    "explain-bad-port": ("explain", "--manifests", M, "--from", "a/b", "--to", "c/d", "--port", "99999"),
    "explain-queries-directory": ("explain", "--manifests", M, "--queries", "{dir}"),
    "explain-bad-queries": ("explain", "--manifests", M, "--queries", "{bad_jsonl}"),
    "explain-queries-nested-too-deep": ("explain", "--manifests", M, "--queries", "{deep_jsonl}"),
    # auditor report
    "report-bad-since": ("report", "--manifests", M, "--flows", F, "--since", "forever", "--format", "json",
                         "--output", "-"),
    "report-bad-from": ("report", "--manifests", M, "--flows", F, "--from", "nope", "--format", "json",
                        "--output", "-"),
    "report-from-after-to": ("report", "--manifests", M, "--flows", F, "--from", "2026-01-02T00:00:00Z",
                             "--to", "2026-01-01T00:00:00Z", "--format", "json", "--output", "-"),
    "report-bad-store-url": ("report", "--store", "mysql://x", "--format", "json", "--output", "-",
                             "--no-live-cluster"),
    "report-missing-store-file": ("report", "--store", "sqlite:{missing}", "--format", "json", "--output", "-",
                                  "--no-live-cluster"),
    "report-store-not-a-database": ("report", "--store", "sqlite:{bad_yaml}", "--format", "json",
                                    "--output", "-", "--no-live-cluster"),
    "report-output-under-a-file": ("report", "--manifests", M, "--flows", F, "--format", "json",
                                   "--output", "{under_file}"),
    "report-output-directory": ("report", "--manifests", M, "--flows", F, "--format", "json",
                                "--output", "{dir}"),
    "report-output-disk-full": ("report", "--manifests", M, "--flows", F, "--format", "html",
                                "--output", "/dev/full"),
    "report-flows-directory": ("report", "--manifests", M, "--flows", "{dir}", "--format", "json",
                               "--output", "-"),
    # auditor record
    "record-out-under-a-file": ("record", "--out", "{under_file}", "--kubeconfig", "{missing}",
                                "--duration", "1s"),
    "record-bad-duration": ("record", "--out", "{tmp}", "--duration", "soon"),
    "record-kubeconfig-bad-yaml": ("record", "--snapshot", "{tmp}/s.yaml", "--events", "{tmp}/e.jsonl",
                                   "--kubeconfig", "{bad_yaml}", "--duration", "1s"),
    "record-missing-kubeconfig": ("record", "--snapshot", "{tmp}/s.yaml", "--events", "{tmp}/e.jsonl",
                                  "--kubeconfig", "{missing}", "--duration", "1s"),
    # auditor replay-server
    "replay-missing-flows": ("replay-server", "--flows", "{missing}", "--listen", "127.0.0.1:0"),
    "replay-flows-directory": ("replay-server", "--flows", "{dir}", "--listen", "127.0.0.1:0"),
    "replay-port-busy": ("replay-server", "--flows", F, "--listen", "{busy}"),
    "replay-bad-rate": ("replay-server", "--flows", F, "--listen", "127.0.0.1:0", "--rate", "-3"),
    "replay-missing-cert": ("replay-server", "--flows", F, "--listen", "127.0.0.1:0", "--tls-cert-file",
                            "{missing}", "--tls-key-file", "{missing}"),
    # auditor demo
    "demo-out-under-a-file": ("demo", "--out", "{under_file}", "--metrics-address", "127.0.0.1:0"),
    "demo-metrics-port-busy": ("demo", "--out", "{tmp}/demo", "--metrics-address", "{busy}"),
    "demo-bad-metrics-address": ("demo", "--out", "{tmp}/demo", "--metrics-address", "nonsense"),
}


class TestCliErrors:
    @pytest.mark.timeout(60)
    @pytest.mark.parametrize("case", sorted(CASES))
    def test_one_line_error_non_zero_exit_no_traceback(
        self, case: str, files: dict[str, str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The command exits non-zero with `auditor CMD: error: ...` on stderr and never a traceback."""
        argv = [part.format(**files) for part in CASES[case]]
        code = main(argv)
        err = capsys.readouterr().err
        assert code != 0, err
        assert "Traceback" not in err
        last = err.strip().splitlines()[-1] if err.strip() else ""
        assert last.startswith(f"auditor {argv[0]}: error: "), err
        assert len(last) < 400, last
