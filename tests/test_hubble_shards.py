"""Sharded relay mode: the stable node hash, the shard's GetFlows filters, re-balancing as nodes come and
go (against the real replay server over gRPC), and the daemon's writer identity and shard defaults."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from auditor.app.scaleout import shard_index, writer_identity
from auditor.app.settings import RunSettings
from auditor.errors import ConfigError
from auditor.hubble.config import HubbleConfig
from auditor.hubble.filters import parse_filter_json
from auditor.hubble.replay_server import ReplayServer
from auditor.hubble.shards import NO_NODES, ShardedRelay, nodes_for, relay_nodes, shard_filters, shard_of
from auditor.model.events import NodeStatus
from tests.daemon_support import daemon_settings
from tests.test_scaleout import NODES, split_by_node

MANY = tuple(f"ip-10-0-{n // 250}-{n % 250}.ec2.internal" for n in range(1000))


class TestHash:
    def test_stable_across_processes(self) -> None:
        """A node's shard is a fixed function of its name (not Python's per-process hash)."""
        assert [shard_of(name, 3) for name in ("node-a", "node-b", "node-c")] == [
            shard_of("node-a", 3), shard_of("node-b", 3), shard_of("node-c", 3)]
        assert shard_of("node-a", 7) == int.from_bytes(__import__("hashlib").sha256(b"node-a").digest()[:8],
                                                       "big") % 7

    def test_every_node_in_exactly_one_shard(self) -> None:
        """The shards of N partition the nodes: none judged twice, none never."""
        parts = [set(nodes_for(MANY, 4, k)) for k in range(4)]
        assert sum(len(p) for p in parts) == len(MANY)
        assert set().union(*parts) == set(MANY)

    def test_balanced(self) -> None:
        """1,000 nodes over 4 shards: each shard gets within 20% of its fair share."""
        sizes = [len(nodes_for(MANY, 4, k)) for k in range(4)]
        assert all(200 <= size <= 300 for size in sizes), sizes

    def test_a_joining_node_moves_nothing_else(self) -> None:
        """Adding a node changes only that node's shard's list."""
        before = [nodes_for(MANY, 4, k) for k in range(4)]
        after = [nodes_for((*MANY, "new-node"), 4, k) for k in range(4)]
        changed = [k for k in range(4) if before[k] != after[k]]
        assert changed == [shard_of("new-node", 4)]


class TestFilters:
    def test_nodes_anded_into_each_allow_filter(self) -> None:
        """Each allow filter keeps its fields and gets the shard's node list."""
        allow = ('{"source_pod": ["shop/"]}', '{"verdict": ["DROPPED"]}')
        parsed = [parse_filter_json(text) for text in shard_filters(allow, ("n1", "n2"))]
        assert [list(f.node_name) for f in parsed] == [["n1", "n2"], ["n1", "n2"]]
        assert (list(parsed[0].source_pod), list(parsed[1].verdict)) == (["shop/"], [2])  # DROPPED

    def test_no_filter_becomes_node_filter(self) -> None:
        """Without user filters the shard asks for its nodes only."""
        [only] = [parse_filter_json(text) for text in shard_filters((), ("n1",))]
        assert list(only.node_name) == ["n1"]

    def test_empty_shard_matches_nothing(self) -> None:
        """A shard without nodes asks for a node that does not exist, not for every node."""
        [only] = [parse_filter_json(text) for text in shard_filters((), ())]
        assert list(only.node_name) == [NO_NODES]


@pytest.fixture
def relay(tmp_path: Path) -> tuple[ReplayServer, dict[str, Path]]:
    files = split_by_node(tmp_path, NODES)
    return ReplayServer([files[node] for node in NODES]), files


def _collect(source: ShardedRelay, seconds: float) -> list[str]:
    nodes: list[str] = []
    timer = threading.Timer(seconds, source.close)
    timer.start()
    for event in source.events():
        if not isinstance(event, NodeStatus) and hasattr(event, "node_name"):
            nodes.append(event.node_name)
    timer.cancel()
    return nodes


class TestRelay:
    def test_get_nodes_lists_relay_nodes(self, relay: tuple[ReplayServer, dict[str, Path]]) -> None:
        """GetNodes over gRPC names every node the relay serves."""
        server, _ = relay
        address = server.start()
        try:
            assert sorted(relay_nodes(HubbleConfig(server=address))) == sorted(NODES)
        finally:
            server.stop()

    def test_shard_streams_only_its_nodes(self, relay: tuple[ReplayServer, dict[str, Path]]) -> None:
        """A shard's stream carries the flows of its nodes and of no other node."""
        server, files = relay
        address = server.start()
        try:
            source = ShardedRelay(HubbleConfig(server=address, since_ns=1), 2, 0)
            seen = _collect(source, 3.0)
        finally:
            server.stop()
        mine = [node for node in NODES if shard_of(node, 2) == 0]
        assert set(seen) == set(mine)
        assert len(seen) == sum(len(files[n].read_text().splitlines()) for n in mine)

    def test_rebalance_picks_up_a_joining_node(self, relay: tuple[ReplayServer, dict[str, Path]]) -> None:
        """A node that appears in the node list is added to the stream's filter; its flows arrive."""
        server, _ = relay
        address = server.start()
        listed = [list(NODES[:1])]
        late = next(node for node in NODES[1:] if shard_of(node, 1) == 0)
        try:
            source = ShardedRelay(replace(HubbleConfig(server=address), since_ns=1), 1, 0,
                                  list_nodes=lambda: listed[0], relist_s=0.2)
            assert source.assigned == (NODES[0],)
            listed[0] = [NODES[0], late]
            seen = _collect(source, 3.0)
        finally:
            server.stop()
        assert source.assigned == tuple(sorted((NODES[0], late)))
        assert source.rebalances == 1
        assert late in seen
        assert source.stats.outages == []

    def test_relist_failure_keeps_the_stream(self, relay: tuple[ReplayServer, dict[str, Path]]) -> None:
        """A failing GetNodes leaves the assignment as it was (logged, retried at the next relist)."""
        from auditor.errors import FlowSourceError

        calls = [0]

        def flaky() -> list[str]:
            calls[0] += 1
            if calls[0] > 1:
                raise FlowSourceError("GetNodes down")
            return list(NODES)

        source = ShardedRelay(HubbleConfig(server="127.0.0.1:1"), 2, 1, list_nodes=flaky)
        assert not source.rebalance()
        assert source.assigned == nodes_for(NODES, 2, 1)


class TestDefaults:
    def _settings(self, *flags: str) -> RunSettings:
        return RunSettings.from_values(daemon_settings(["--manifests", "m.yaml", *flags]))

    def test_instance_defaults_to_node_name(self) -> None:
        """In node mode the writer identity is the node name."""
        assert writer_identity(self._settings("--node-name", "node-a"), env={"POD_NAME": "pod-x"}) == "node-a"

    def test_instance_defaults_to_pod_name(self) -> None:
        """Otherwise it is the pod name from the downward API."""
        assert writer_identity(self._settings(), env={"POD_NAME": "auditor-7f9c"}) == "auditor-7f9c"

    def test_instance_flag_wins(self) -> None:
        """--instance overrides both."""
        assert writer_identity(self._settings("--node-name", "n", "--instance", "x"), env={}) == "x"

    def test_shard_from_statefulset_ordinal(self) -> None:
        """Without --shard the pod's StatefulSet ordinal is the shard."""
        assert shard_index(self._settings("--shards", "3"), env={"POD_NAME": "auditor-relay-2"}) == 2

    def test_ordinal_out_of_range(self) -> None:
        """More replicas than shards is an error naming the pod."""
        with pytest.raises(ConfigError, match="auditor-relay-3"):
            shard_index(self._settings("--shards", "3"), env={"POD_NAME": "auditor-relay-3"})

    def test_no_ordinal_needs_shard(self) -> None:
        """A pod name without an ordinal asks for --shard."""
        with pytest.raises(ConfigError, match="give --shard"):
            shard_index(self._settings("--shards", "3"), env={"POD_NAME": "auditor"})

    def test_shard_out_of_range_flag(self) -> None:
        """--shard must be below --shards."""
        with pytest.raises(ConfigError, match="out of range"):
            self._settings("--shards", "2", "--shard", "2")

    def test_shards_not_with_node_mode(self) -> None:
        """--shards is relay mode only."""
        with pytest.raises(ConfigError, match="node mode"):
            self._settings("--shards", "2", "--node-name", "n")
