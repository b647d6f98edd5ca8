"""Sharded relay mode: N daemons split Hubble Relay's nodes between them by a stable hash of the name.

A node's shard depends on its name and N only (SHA-256, not Python's per-process `hash`), so every
daemon computes the same assignment without talking to the others: each node is judged by exactly one
shard, and a node that joins is judged as soon as its shard lists it.  Each daemon asks Relay only for
its nodes (GetFlows `node_name` filter), re-lists the nodes (GetNodes) every `relist_s` and whenever
Relay reports a node's state changed, and re-dials with the new list when it changed.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import grpc
import structlog
from google.protobuf import json_format

from auditor._proto.flow import flow_pb2
from auditor._proto.observer import observer_pb2
from auditor.errors import FlowSourceError
from auditor.hubble.client import HubbleClient
from auditor.hubble.config import HubbleConfig
from auditor.hubble.filters import parse_filter_json
from auditor.hubble.source import SourceStats
from auditor.hubble.tls import channel_credentials, channel_tls_options
from auditor.model.events import FlowEvent, NodeStatus

log = structlog.get_logger("auditor.hubble.shards")
GET_NODES = "/observer.Observer/GetNodes"
RELIST_S = 30.0
NO_NODES = "auditor-shard-without-nodes"
"""The node name asked for while a shard has no nodes (an empty node_name filter would match all)."""


def shard_of(node: str, shards: int) -> int:
    """The shard that judges `node`: a stable hash of its name modulo the number of shards."""
    digest = hashlib.sha256(node.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


def nodes_for(nodes: Iterable[str], shards: int, shard: int) -> tuple[str, ...]:
    """The nodes of `shard`, sorted."""
    return tuple(sorted({node for node in nodes if shard_of(node, shards) == shard}))


def shard_filters(allow: Sequence[str], nodes: Sequence[str]) -> tuple[str, ...]:
    """The allow filters (FlowFilter JSON) restricted to `nodes`: each filter AND'ed with the node list."""
    names = list(nodes) or [NO_NODES]
    filters = [parse_filter_json(text) for text in allow] or [flow_pb2.FlowFilter()]
    out = []
    for flow_filter in filters:
        copy = flow_pb2.FlowFilter()
        copy.CopyFrom(flow_filter)
        del copy.node_name[:]
        copy.node_name.extend(names)
        out.append(json_format.MessageToJson(copy, indent=None, preserving_proto_field_name=True))
    return tuple(out)


def relay_nodes(config: HubbleConfig, timeout_s: float = 10.0) -> tuple[str, ...]:
    """Node names from Relay's GetNodes (connected or not: a node down now is still this shard's)."""
    options = channel_tls_options(config)
    credentials = channel_credentials(config)
    channel = (grpc.insecure_channel(config.target, options=options) if credentials is None
               else grpc.secure_channel(config.target, credentials, options=options))
    try:
        call = channel.unary_unary(GET_NODES, request_serializer=observer_pb2.GetNodesRequest.SerializeToString,
                                   response_deserializer=observer_pb2.GetNodesResponse.FromString)
        response: Any = call(observer_pb2.GetNodesRequest(), timeout=timeout_s)
    except grpc.RpcError as err:
        raise FlowSourceError(f"GetNodes on {config.server} failed: {err.code().name}: {err.details()} "
                              "(sharded relay mode needs Hubble Relay's node list)") from err
    finally:
        channel.close()
    return tuple(node.name for node in response.nodes)


class ShardedRelay:
    """FlowSource: the GetFlows stream of one shard's nodes, re-filtered as nodes come and go."""

    def __init__(self, config: HubbleConfig, shards: int, shard: int, *, relist_s: float = RELIST_S,
                 list_nodes: Callable[[], Sequence[str]] | None = None, light: bool = True,
                 raw: bool = False) -> None:
        if not 0 <= shard < shards:
            raise FlowSourceError(f"shard {shard} is out of range for {shards} shards")
        self.shards, self.shard, self._relist_s = shards, shard, relist_s
        self._base_allow = config.allow_filters
        self._list_nodes = list_nodes or (lambda: relay_nodes(config))
        self.assigned = nodes_for(self._list_nodes(), shards, shard)
        self.rebalances = 0
        filters = shard_filters(self._base_allow, self.assigned)
        self.client = HubbleClient(replace(config, allow_filters=filters), light=light, raw=raw)
        self._wake = threading.Event()
        self._stopped = threading.Event()
        log.info("shard_nodes", shard=shard, shards=shards, nodes=list(self.assigned))

    @property
    def stats(self) -> SourceStats:
        return self.client.stats

    def events(self) -> Iterator[FlowEvent]:
        watcher = threading.Thread(target=self._watch, name="shard-watcher", daemon=True)
        watcher.start()
        try:
            for event in self.client.events():
                if isinstance(event, NodeStatus):
                    self._wake.set()  # a node came or went: re-list now
                yield event
        finally:
            self._stopped.set()
            self._wake.set()

    def rebalance(self) -> bool:
        """Re-list the nodes; re-filter the stream when this shard's nodes changed.  True if they did."""
        try:
            nodes = nodes_for(self._list_nodes(), self.shards, self.shard)
        except FlowSourceError as exc:
            log.warning("shard_relist_failed", error=str(exc))
            return False
        if nodes == self.assigned:
            return False
        added, removed = sorted(set(nodes) - set(self.assigned)), sorted(set(self.assigned) - set(nodes))
        self.assigned = nodes
        self.rebalances += 1
        log.info("shard_rebalanced", shard=self.shard, added=added, removed=removed, nodes=len(nodes))
        self.client.refilter(shard_filters(self._base_allow, nodes))
        return True

    def _watch(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self._relist_s)
            self._wake.clear()
            if not self._stopped.is_set():
                self.rebalance()

    def close(self) -> None:
        self._stopped.set()
        self._wake.set()
        self.client.close()
