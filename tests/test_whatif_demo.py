"""`auditor demo` prints a `recommend` and a `whatif` command that work as printed."""

from __future__ import annotations

import io
import shlex
from pathlib import Path

import pytest

from auditor.app.demo import DemoOptions, run_demo
from auditor.cli import main


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """The demo's example commands, by their label, as argv lists (without the program name)."""
    out = io.StringIO()
    run_demo(DemoOptions(out=tmp_path_factory.mktemp("demo"), metrics_address="127.0.0.1:0"), out)
    commands = {}
    for line in out.getvalue().splitlines():
        label, _, command = line.partition(":")
        if label in ("Recommend", "Whatif"):
            argv = shlex.split(command)
            assert argv[0] == "auditor"
            commands[label] = argv[1:]
    return commands


def test_recommend_then_whatif_work_as_printed(printed: dict[str, list[str]],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The printed recommend writes a verified file; the printed whatif over it passes its gate."""
    assert main(printed["Recommend"]) == 0
    assert Path(printed["Recommend"][printed["Recommend"].index("--output") + 1]).is_file()
    assert main(printed["Whatif"]) == 0
    assert "0 newly-denied" in capsys.readouterr().out
