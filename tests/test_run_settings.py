"""The typed settings of run/record/demo, and the daemon writing what the edges collected."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from auditor.app import settings as settings_mod
from auditor.app.demo import DemoOptions, run_demo
from auditor.app.settings import HUBBLE_OPTIONS, HubbleSettings, RunSettings, check_hubble_address
from auditor.cli import build_parser
from auditor.errors import ConfigError
from auditor.store import open_store
from tests.daemon_support import DEMO_FLOWS, DEMO_MANIFESTS, build, daemon_settings

SCENARIO = Path(__file__).parent / "fixtures" / "scenarios" / "policy-narrowed"
NS = 1_000_000_000


class TestHubbleAddress:
    @pytest.mark.parametrize("address", ["localhost", "http://relay:4245", "relay:0", "unix://relative", ""])
    def test_bad_hubble_address_is_one_clear_error(self, address: str) -> None:
        """An address grpc would dial wrongly or retry forever is refused at start, naming the forms."""
        with pytest.raises(ConfigError, match=r"host:port|unix:///"):
            check_hubble_address(address)

    @pytest.mark.parametrize("address", ["relay:4245", "tls://relay.kube-system.svc:443", "[::1]:4245",
                                         "unix:///var/run/cilium/hubble.sock"])
    def test_good_hubble_address_passes(self, address: str) -> None:
        """host:port, tls://host:port, [v6]:port and unix:///path are accepted as given."""
        assert check_hubble_address(address) == address

    def test_run_refuses_a_bad_address_before_dialling(self) -> None:
        """`auditor run --hubble-server localhost` exits 1 with one line instead of dialling :443."""
        done = subprocess.run([sys.executable, "-m", "auditor", "run", "--hubble-server", "localhost",
                               "--store", "sqlite::memory:"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 1
        assert done.stderr.count("\n") == 1
        assert "host:port" in done.stderr


class TestEveryFlagHonouredOrRejected:
    def test_tls_allow_insecure_is_rejected(self) -> None:
        """The flag nothing honoured is no longer accepted (argparse refuses it, exit 2)."""
        with pytest.raises(SystemExit) as exited:
            build_parser().parse_args(["run", "--tls-allow-insecure"])
        assert exited.value.code == 2

    def test_record_takes_run_hubble_flags_with_the_same_defaults(self) -> None:
        """record reads --hubble-server and a `60s` --stall-timeout like run, with run's default."""
        args = build_parser().parse_args(["record", "--out", "x", "--hubble-server", "relay:4245",
                                          "--stall-timeout", "90s"])
        assert HubbleSettings.from_args(args, env={}) == HubbleSettings("relay:4245", stall_timeout=90.0)
        default = build_parser().parse_args(["record", "--out", "x"])
        assert HubbleSettings.from_args(default, env={}).stall_timeout == HubbleSettings().stall_timeout

    def test_hubble_options_are_a_subset_of_run_options(self) -> None:
        """One table: the shared Hubble options are run's own rows."""
        assert all(option in settings_mod.RUN_OPTIONS for option in HUBBLE_OPTIONS)

    def test_policy_enforcement_reaches_the_daemons_engine(self, tmp_path: Path) -> None:
        """--policy-enforcement and --cidr-match-nodes are honoured: the engine judges with them."""
        daemon = build(tmp_path, ["--manifests", str(DEMO_MANIFESTS), "--flows", str(DEMO_FLOWS),
                                  "--policy-enforcement", "always", "--cidr-match-nodes"])
        try:
            engine = daemon.session.options.engine()
            assert (engine.policy_enforcement, engine.cidr_match_nodes) == ("always", True)
        finally:
            daemon.store.close()

    def test_settings_are_typed_and_frozen(self) -> None:
        """The daemon gets one frozen object, not a dict."""
        settings = RunSettings.from_values(daemon_settings(["--flows", "a.jsonl", "--manifests", "m.yaml"]))
        assert settings.flows == ("a.jsonl",)
        with pytest.raises(AttributeError):
            settings.flows = ()  # type: ignore[misc]


class TestDaemonWritesWhatTheEdgesCollected:
    def test_manifests_and_cluster_events_reach_the_policy_history(self, tmp_path: Path) -> None:
        """`run --manifests --cluster-events` records the policies and every policy event in the store."""
        daemon = build(tmp_path, ["--manifests", str(SCENARIO / "manifests.yaml"),
                                  "--cluster-events", str(SCENARIO / "cluster-events.jsonl"),
                                  "--flows", str(SCENARIO / "flows.jsonl")])
        try:
            daemon.analyzer.flush()
            changes = daemon.store.policy_changes()
        finally:
            daemon.store.close()
        assert ("MODIFIED", "api-in", "11") in {(c.change_type, c.name, c.revision) for c in changes}
        assert any(c.change_type == "ADDED" and c.time_ns == 0 for c in changes)

    def test_stream_outage_the_source_recorded_reaches_the_store(self, tmp_path: Path) -> None:
        """A disconnection the Hubble source recorded is a stream-down gap in the store at the next flush."""
        daemon = build(tmp_path, ["--manifests", str(DEMO_MANIFESTS), "--flows", str(DEMO_FLOWS)])
        try:
            daemon.source.stats.record_gap(5 * NS, 9 * NS)
            assert daemon._flush()
            gaps = daemon.store.coverage(0, 10 * NS).gaps
        finally:
            daemon.store.close()
        assert [(g.from_ns, g.to_ns, g.reason) for g in gaps] == [(5 * NS, 9 * NS, "stream-down")]

    def test_replay_older_than_retention_keeps_its_findings(self, tmp_path: Path) -> None:
        """Retention counts from the files' newest flow: a capture older than --retention is not pruned."""
        daemon = build(tmp_path, ["--manifests", str(DEMO_MANIFESTS), "--flows", str(DEMO_FLOWS),
                                  "--retention", "1h"])
        daemon.clock_ns = lambda: 4_000_000_000 * NS  # 2096: the capture is decades older than 1h
        try:
            for event in daemon.source.events():
                daemon.analyzer.handle(event)
            daemon._periodic(retention=True)
            runtime = [f for f in daemon.store.findings() if not f.kind.is_static]
        finally:
            daemon.store.close()
        assert runtime


class TestDemo:
    def test_demo_prints_its_settings_and_the_equivalent_audit_command(self, tmp_path: Path) -> None:
        """The demo says which non-default setting it judges with and how to get its numbers offline."""
        out = io.StringIO()
        run_demo(DemoOptions(out=tmp_path, metrics_address="127.0.0.1:0"), out)
        assert "auditor audit --manifests" in out.getvalue()
        assert "--enforce-node-traffic" in out.getvalue()


def test_store_file_of_the_demo_has_counters(tmp_path: Path) -> None:
    """The demo's store has hourly counters (the daemon's flushes went through Store.apply)."""
    run_demo(DemoOptions(out=tmp_path, metrics_address="127.0.0.1:0"), io.StringIO())
    with open_store(f"sqlite://{(tmp_path / 'auditor-demo.db').resolve()}") as store:
        assert store.counts(0, 2**62, ("hour",))

