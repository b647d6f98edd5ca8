"""Scale-out end to end: three node-mode daemons (three identities, three replay servers, one node's
flows each) into one PostgreSQL give the report `auditor audit` gives over the union of the flows;
two sharded relay daemons judge every node exactly once; a second live writer is refused."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest

from auditor.app.audit import AuditOptions, run_audit
from auditor.app.demo import demo_files
from auditor.app.report import ReportOptions, run_report
from auditor.hubble.replay_server import ReplayServer
from auditor.hubble.shards import shard_of
from auditor.store import open_store
from tests.daemon_support import daemon_process, has_series, http_get, total, wait_until
from tests.pg_support import PgServer
from tests.test_pipeline_equivalence import audit_hours, facts, store_hours

NODES = ("node-a", "node-b", "node-c", "node-d", "node-e")


def split_by_node(tmp_path: Path, nodes: tuple[str, ...]) -> dict[str, Path]:
    """The demo's flows dealt to `nodes` by their address pair (each flow's node_name rewritten), so the
    two events Cilium emits for one denied packet stay on one node, as they do in a cluster."""
    _, flows = demo_files()
    lines: dict[str, list[str]] = {node: [] for node in nodes}
    for line in Path(flows).read_text().splitlines():
        record = json.loads(line)
        ip = record.get("flow", record).get("IP", {})
        node = nodes[zlib.crc32(f"{ip.get('source')}>{ip.get('destination')}".encode()) % len(nodes)]
        record["node_name"] = node
        record.get("flow", record)["node_name"] = node
        lines[node].append(json.dumps(record))
    out = {}
    for node, node_lines in lines.items():
        out[node] = tmp_path / f"{node}.jsonl"
        out[node].write_text("\n".join(node_lines) + "\n")
    return out


def metrics(base: str) -> str:
    return http_get(base + "/metrics")[1]


def flow_count(path: Path) -> int:
    return len(path.read_text().splitlines())


def run_flags(manifests: str, store: str) -> list[str]:
    return ["--manifests", manifests, "--store", store, "--flush-interval", "1s", "--enforce-node-traffic",
            "--workers", "1"]


def finish(daemon_dir: Path, daemon: object, expected: int) -> None:
    base = daemon.base  # type: ignore[attr-defined]
    wait_until(lambda: total(metrics(base), "auditor_flows_processed_total") == expected, 60,
               f"{expected} flows analysed by {daemon_dir.name}")


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    return pg_server.url_for(pg_server.new_schema())


def test_three_node_daemons_add_up_to_audit_of_the_union(tmp_path: Path, pg_url: str) -> None:
    """Three node-mode daemons into one PostgreSQL: report --store is audit over all flows, counters summed;
    exactly one of them (the cluster lease holder) exports the cluster-wide open findings."""
    manifests, _ = demo_files()
    files = split_by_node(tmp_path, NODES[:3])
    servers = [ReplayServer([files[node]]) for node in NODES[:3]]
    addresses = [server.start() for server in servers]
    try:
        procs = []
        for node, address in zip(NODES[:3], addresses, strict=True):
            workdir = tmp_path / node
            workdir.mkdir()
            flags = [*run_flags(manifests, pg_url), "--hubble-server", address, "--node-name", node]
            procs.append((workdir, daemon_process(workdir, *flags)))
        entered = [(workdir, ctx.__enter__(), ctx) for workdir, ctx in procs]
        try:
            for (workdir, daemon, _), node in zip(entered, NODES[:3], strict=True):
                finish(workdir, daemon, flow_count(files[node]))
            exporting = lambda: sum(has_series(metrics(d.base), "auditor_open_findings") for _, d, _ in entered)  # noqa: E731
            wait_until(lambda: exporting() == 1, 30, "the cluster lease holder exporting the open findings")
            codes = [daemon.terminate()[0] for _, daemon, _ in entered]
        finally:
            for _, _, ctx in entered:
                ctx.__exit__(None, None, None)
    finally:
        for server in servers:
            server.stop()
    assert codes == [0, 0, 0]
    union = tuple(str(files[node]) for node in NODES[:3])
    audit = run_audit(AuditOptions(manifests=(manifests,), flows=union, enforce_node_traffic=True))
    stored = run_report(ReportOptions(format="json", store=pg_url, manifests=(manifests,),
                                      enforce_node_traffic=True)).data
    with open_store(pg_url) as store:
        hours = store_hours(store)
    assert facts(stored.findings) == facts(audit.findings)
    assert hours == audit_hours(audit)
    assert stored.completeness.flows == audit.summary.flows


def test_sharded_relay_judges_each_node_once(tmp_path: Path, pg_url: str) -> None:
    """Two `--shards 2` daemons on one relay: each node's flows are judged by exactly one of them."""
    manifests, _ = demo_files()
    files = split_by_node(tmp_path, NODES)
    expected = [sum(flow_count(files[n]) for n in NODES if shard_of(n, 2) == k) for k in (0, 1)]
    assert all(expected), "the test's nodes must fall into both shards"
    # A follow request without `since` starts at Relay's newest flow, and a replay begins with its first
    # GetFlows: each shard gets its own replay of the same recording, so neither misses the start.
    servers = [ReplayServer([files[node] for node in NODES]) for _ in (0, 1)]
    addresses = [server.start() for server in servers]
    try:
        entered = []
        for shard, address in zip((0, 1), addresses, strict=True):
            workdir = tmp_path / f"shard-{shard}"
            workdir.mkdir()
            ctx = daemon_process(workdir, *run_flags(manifests, pg_url), "--hubble-server", address,
                                 "--shards", "2", "--shard", str(shard), "--instance", f"relay-{shard}")
            entered.append((workdir, ctx.__enter__(), ctx))
        try:
            for (workdir, daemon, _), count in zip(entered, expected, strict=True):
                finish(workdir, daemon, count)
            codes = [daemon.terminate()[0] for _, daemon, _ in entered]
        finally:
            for _, _, ctx in entered:
                ctx.__exit__(None, None, None)
    finally:
        for server in servers:
            server.stop()
    assert codes == [0, 0]
    audit = run_audit(AuditOptions(manifests=(manifests,), flows=tuple(str(files[n]) for n in NODES),
                                   enforce_node_traffic=True))
    with open_store(pg_url) as store:
        assert facts(store.findings()) == facts(audit.findings)
        assert store_hours(store) == audit_hours(audit)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_second_live_writer_refused_with_one_line(tmp_path: Path, backend: str,
                                                  request: pytest.FixtureRequest) -> None:
    """A second daemon with the identity of a live one exits non-zero with one line naming it."""
    manifests, _ = demo_files()
    url = f"sqlite:{tmp_path / 'a.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    _, flows = demo_files()
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    server = ReplayServer([flows])
    address = server.start()
    try:
        with daemon_process(first_dir, *run_flags(manifests, url), "--hubble-server", address,
                            "--instance", "node-a") as first:
            finish(first_dir, first, flow_count(Path(flows)))
            with daemon_process(second_dir, *run_flags(manifests, url), "--hubble-server", address,
                                "--instance", "node-a") as second:
                code = second.process.wait(timeout=60)
                log = second.log_lines()
            assert first.process.poll() is None
            first.terminate()
    finally:
        server.stop()
    assert code != 0
    refusals = [line for line in log if "writer identity 'node-a' is already live" in line]
    assert len(refusals) == 1, log
