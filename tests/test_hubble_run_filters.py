"""`auditor run` narrowed with hubble's filter flags: applied to --flows (and --flows -) and sent to Hubble."""

from __future__ import annotations

import json
from pathlib import Path

from auditor.hubble.replay_server import ReplayServer
from tests.daemon_support import DEMO_FLOWS, DEMO_MANIFESTS, daemon_process, http_get, total, wait_until

VERDICTS = [json.loads(line)["flow"].get("verdict") for line in DEMO_FLOWS.read_text().splitlines() if line]
DROPPED = sum(1 for verdict in VERDICTS if verdict == "DROPPED")


def analysed(base: str, expected: int) -> bool:
    status, text = http_get(base + "/metrics")
    return status == 200 and total(text, "auditor_flows_processed_total") == expected


def test_file_source_keeps_only_the_filtered_flows(tmp_path: Path) -> None:
    """`run --flows F --verdict DROPPED` analyses exactly the DROPPED flows of F."""
    assert 0 < DROPPED < len(VERDICTS)
    flags = ("--manifests", str(DEMO_MANIFESTS), "--flows", str(DEMO_FLOWS), "--store", "sqlite:auditor.db",
             "--verdict", "DROPPED")
    with daemon_process(tmp_path, *flags) as daemon:
        wait_until(lambda: analysed(daemon.base, DROPPED), 30, f"{DROPPED} dropped flows analysed")
        _status, text = http_get(daemon.base + "/metrics")
        assert total(text, "auditor_flows_processed_total", verdict="FORWARDED") == 0
        assert daemon.terminate()[0] == 0


def test_live_stream_filters_are_sent_to_hubble(tmp_path: Path) -> None:
    """`run --hubble-server ... --not --verdict FORWARDED`: the server filters, the daemon sees the rest."""
    expected = sum(1 for verdict in VERDICTS if verdict != "FORWARDED")
    with ReplayServer([DEMO_FLOWS]) as replay:
        flags = ("--manifests", str(DEMO_MANIFESTS), "--hubble-server", replay.address, "--store",
                 "sqlite:auditor.db", "--not", "--verdict", "FORWARDED")
        with daemon_process(tmp_path, *flags) as daemon:
            wait_until(lambda: analysed(daemon.base, expected), 30, f"{expected} flows analysed")
            assert daemon.terminate()[0] == 0
