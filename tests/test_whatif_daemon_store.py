"""`auditor run --flows ... --store sqlite:...` then `auditor whatif --store ...`: the daemon's connections.

Every capture is a synthetic scenario of tests/fixtures/whatif/ (labelled SYNTHETIC).  The daemon is a
real `python -m auditor run` process writing a real SQLite file; whatif reads that file.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from auditor.app.recommend import RecommendOptions, run_recommend
from auditor.app.recommend_format import render
from auditor.app.whatif import EXIT_FAIL_ON, WhatifOptions, WhatifResult, run_whatif
from auditor.app.whatif_store import STORE_NOTE
from auditor.cli import main
from auditor.findings.whatif import Change
from tests.daemon_support import daemon_process, http_get, total, wait_until

FIXTURES = Path(__file__).parent / "fixtures" / "whatif"
CAPTURES = sorted(p.name for p in FIXTURES.iterdir() if (p / "flows.jsonl").exists())
NODE_TRAFFIC = {"probe-break": True}
"""Captures whose scenario is judged with node traffic enforced (the kubelet's probes)."""


def _flows(name: str) -> int:
    return sum(1 for line in (FIXTURES / name / "flows.jsonl").read_text().splitlines() if line.strip())


def _daemon_store(workdir: Path, name: str) -> str:
    """Run the daemon over the capture until every flow is analysed, stop it (it flushes); the store URL."""
    folder = FIXTURES / name
    url = f"sqlite:{workdir / 'auditor.db'}"
    flags = ["--flows", str(folder / "flows.jsonl"), "--manifests", str(folder / "manifests.yaml"),
             "--store", url, "--workers", "1", "--flush-interval", "1s"]
    with daemon_process(workdir, *flags) as daemon:
        try:
            wait_until(lambda: _processed(daemon.base) == _flows(name), 90, f"the daemon to analyse {name}")
        except AssertionError as exc:
            raise AssertionError("\n".join([str(exc), *daemon.log_lines()[-20:]])) from None
        code, _ = daemon.terminate()
    assert code == 0, "\n".join(daemon.log_lines())
    return url


def _processed(base: str) -> float:
    """Flows the daemon analysed (0 while it is not listening yet)."""
    return total(http_get(base + "/metrics")[1], "auditor_flows_processed_total")


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One daemon-written store per capture."""
    return {name: _daemon_store(tmp_path_factory.mktemp(name), name) for name in CAPTURES}


def _whatif(name: str, **source: object) -> WhatifResult:
    folder = FIXTURES / name
    return run_whatif(WhatifOptions(manifests=(str(folder / "manifests.yaml"),),
                                    proposed=(str(folder / "proposed.yaml"),),
                                    enforce_node_traffic=NODE_TRAFFIC.get(name, False), **source))  # type: ignore[arg-type]


def _rows(result: WhatifResult) -> list[tuple[object, ...]]:
    return sorted((str(r.key), r.change.value, r.flows, r.first_ns, r.last_ns, r.before, r.after)
                  for r in result.rows)


def test_a_change_that_breaks_an_allowed_connection_is_seen(stores: dict[str, str]) -> None:
    """DNS the current policy admits as expected (no finding) is newly denied when judged from the store."""
    result = _whatif("dns-break", store=stores["dns-break"])
    denied = [str(r.key) for r in result.rows if r.change is Change.NEWLY_DENIED]
    assert denied == ["shop/web -> kube-system/coredns 53/UDP"]


def test_a_daemon_store_needs_no_findings_note(stores: dict[str, str]) -> None:
    """A store with connections is the whole picture: no note that admitted connections are missing."""
    assert STORE_NOTE not in _whatif("dns-break", store=stores["dns-break"]).notes


@pytest.mark.parametrize("name", CAPTURES)
def test_store_and_flows_judge_the_same_connections(stores: dict[str, str], name: str) -> None:
    """Per connection key: the same change, flows, first/last seen and verdicts from store and file."""
    from_file = _whatif(name, flows=(str(FIXTURES / name / "flows.jsonl"),))
    assert _rows(_whatif(name, store=stores[name])) == _rows(from_file)


def test_fail_on_newly_denied_from_the_store_exits_3(stores: dict[str, str]) -> None:
    """`auditor whatif --store URL --fail-on newly-denied` is a CI gate on the daemon's evidence."""
    folder = FIXTURES / "dns-break"
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["whatif", "--manifests", str(folder / "manifests.yaml"), "--proposed",
                     str(folder / "proposed.yaml"), "--store", stores["dns-break"], "--output", "json",
                     "--fail-on", "newly-denied"])
    assert code == EXIT_FAIL_ON
    assert json.loads(out.getvalue())["summary"]["connection_keys"]["newly-denied"] == 1


@pytest.mark.parametrize("name", CAPTURES)
def test_recommend_from_the_store_is_the_one_from_the_file(stores: dict[str, str], name: str) -> None:
    """`auditor recommend --store` learns the same policies, with the same evidence, as from the capture."""
    folder = FIXTURES / name

    def printed(store: str | None = None, flows: tuple[str, ...] = ()) -> str:
        options = RecommendOptions(manifests=(str(folder / "manifests.yaml"),), store=store, flows=flows,
                                   enforce_node_traffic=NODE_TRAFFIC.get(name, False))
        result = run_recommend(options)
        assert result.verification.ok
        return render(result).split("\n", 1)[1]  # evidence, checks and YAML: all but the line naming the source
    assert printed(store=stores[name]) == printed(flows=(str(folder / "flows.jsonl"),))
