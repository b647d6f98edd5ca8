"""`auditor whatif --flows` on several cores: a flow file read and folded in parts, merged exactly.

Plain (not gzip) regular files are cut into byte ranges on line boundaries; each worker process
(forked, so it shares the parent's cluster history) reads its ranges with `keyflows.line_event`
and folds them with the `ConnectionCollector`'s own `target`, as the single-process path does.
Only the drop de-duplication depends on the flows before a range (a denied packet's
policy-verdict and drop events may straddle a cut), so a worker folds no denied flow: it sends
each one's 5-tuple, time, uuid and target back, and the parent runs one `DropDeduplicator` over
them in file order.  The parent then merges what the parts folded: counts add up, first and last
seen are the extremes, the sample is that of the first flow in file order, and observations are
made in the order of their first flows (which is how `observations()` breaks ties), each with its
endpoints resolved in the parent's history like the first flow's, so the judgement is the same.

stdin, pipes, gzip files and small inputs stay in one process (`splittable`).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from auditor.findings.connections import (
    HEALTH,
    UNRESOLVED,
    CollectStats,
    ConnectionCollector,
    ConnectionKey,
    Observation,
)
from auditor.findings.resolve import Resolved, resolve_endpoint
from auditor.findings.runtime import sample_of
from auditor.findings.selection import DropDeduplicator, FlowClass, classify
from auditor.hubble.files import MAX_LINE_BYTES
from auditor.hubble.keyflows import line_event
from auditor.hubble.streams import GZIP_MAGIC, STDIN
from auditor.model.flows import Endpoint, EventType, Flow, FlowType
from auditor.policy.history import ClusterHistory

MIN_SPLIT_BYTES = 16 * 1024 * 1024
"""Smaller inputs are read in one process (forking costs more than it saves)."""
PARTS_PER_WORKER = 4
"""More ranges than workers, so a worker slowed by the machine's other load does not hold the rest up."""
_SEQ = 1 << 40
"""A flow's place in file order: range index * _SEQ + its number in the range."""
_DENIED, _FT_L7 = FlowClass.POLICY_DENIED, FlowType.L7
_EV_L7, _EV_POLICY_VERDICT = int(EventType.L7), int(EventType.POLICY_VERDICT)
_JUDGED = {FlowClass.ALLOWED: "allowed", _DENIED: "denied", FlowClass.AUDITED: "audited"}

Ident = tuple[Any, ...]
"""An observation by value: (revision, source key, destination key, port, protocol, observed); an
endpoint key is what `ConnectionCollector._resolve` keys by (the fields resolution reads, the node)."""


def splittable(paths: Sequence[str], min_bytes: int = MIN_SPLIT_BYTES) -> bool:
    """Whether `paths` are plain regular files of `min_bytes` or more in all."""
    total = 0
    for path in paths:
        if path == STDIN or not os.path.isfile(path):
            return False
        with open(path, "rb") as handle:
            if handle.read(len(GZIP_MAGIC)) == GZIP_MAGIC:
                return False
        total += os.path.getsize(path)
    return total >= min_bytes



def line_ranges(path: str, parts: int) -> list[tuple[int, int]]:
    """[start, end) byte ranges of `path`, each starting at a line start, at most `parts` of them."""
    size = os.path.getsize(path)
    cuts = [0]
    with open(path, "rb") as handle:
        for index in range(1, parts):
            target = size * index // parts
            if target <= cuts[-1]:
                continue
            handle.seek(target - 1)
            pos = target - 1
            while True:  # the first line start at or after target
                block = handle.read(1 << 16)
                if not block:
                    pos = size
                    break
                newline = block.find(b"\n")
                if newline >= 0:
                    pos += newline + 1
                    break
                pos += len(block)
            if cuts[-1] < pos < size:
                cuts.append(pos)
    cuts.append(size)
    return [(start, end) for start, end in itertools.pairwise(cuts) if end > start]


def range_lines(path: str, start: int, end: int) -> Iterator[bytes]:
    """The non-blank lines starting in [start, end), as `files._lines` reads them (over-long ones skipped)."""
    with open(path, "rb") as handle:
        handle.seek(start)
        pos = start
        while pos < end:
            line = handle.readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            pos += len(line)
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                while line and not line.endswith(b"\n"):
                    line = handle.readline(MAX_LINE_BYTES + 1)
                    pos += len(line)
                continue
            line = line.strip()
            if line:
                yield line


@dataclass
class Part:
    """What one range folded: stats, observations of allowed and audited flows, denied flows to settle."""

    stats: CollectStats
    zero_time: bool = False
    """A flow of time 0 was seen (CollectStats.first_ns starts again after one)."""
    folded: list[tuple[Ident, int, int, int, str, int]] = field(default_factory=list)
    """(ident, count, first_ns, last_ns, sample, first seq)."""
    denied: list[tuple[Any, ...]] = field(default_factory=list)
    """(5-tuple, None for an L7 flow (never a duplicate); is a policy-verdict event; time; sample; ident or
    HEALTH or UNRESOLVED; seq), in file order."""


class _PartCollector(ConnectionCollector):
    """A worker's collector: `ConnectionCollector.add` but for denied flows, which go to `part.denied`."""

    def __init__(self, history: ClusterHistory, index: int) -> None:
        super().__init__(history)
        self.part = Part(self.stats)
        self._seq = index * _SEQ
        self._idents: dict[int, tuple[Ident, Observation, int]] = {}

    def add(self, flow: Flow) -> None:
        stats = self.stats  # the counting of ConnectionCollector.add
        stats.flows += 1
        self._seq += 1
        time_ns = flow.time_ns
        if not time_ns:
            self.part.zero_time = True
        if not stats.first_ns or time_ns < stats.first_ns:
            stats.first_ns = time_ns
        if time_ns > stats.last_ns:
            stats.last_ns = time_ns
        kind = flow.flow_class or classify(flow)
        observed = _JUDGED.get(kind)
        if observed is None:
            stats.skipped[kind.value] += 1
            return
        found = self.target(flow, observed)
        ident = self._ident(flow, found) if isinstance(found, Observation) else found
        if kind is _DENIED:
            src, dst = flow.source, flow.destination
            key = (None if flow.flow_type is _FT_L7 or flow.event_type == _EV_L7 else
                   (src.ip, dst.ip, src.port, dst.port, flow.protocol.value))
            verdict_event = flow.event_type == _EV_POLICY_VERDICT
            self.part.denied.append((key, verdict_event, time_ns, sample_of(flow), ident, self._seq))
        elif isinstance(found, Observation):
            stats.judged += 1
            found.add(flow)
        elif found is HEALTH:
            stats.skipped["health"] += 1
        else:
            stats.unresolved += 1

    def _ident(self, flow: Flow, found: Observation) -> Ident:
        known = self._idents.get(id(found))
        if known is None:
            node = flow.node_name
            known = self._idents[id(found)] = (
                (found.state.revision, _key(flow.source, node), _key(flow.destination, node), found.port,
                 found.protocol, found.observed), found, self._seq)
        return known[0]

    def finish(self) -> Part:
        self.part.folded = [(ident, o.count, o.first_ns, o.last_ns, o.sample, seq)
                            for ident, o, seq in self._idents.values() if o.count]
        return self.part


def _key(endpoint: Endpoint, node: str) -> tuple[Any, ...]:
    return (endpoint.ip, endpoint.namespace, endpoint.pod_name, endpoint.identity, endpoint.labels,
            endpoint.names, node)


_WORKER: dict[str, Any] = {}


def _init(history: ClusterHistory, lo: int, hi: int) -> None:
    _WORKER.update(history=history, lo=lo, hi=hi)


def _run(task: tuple[int, str, int, int]) -> Part:
    index, path, start, end = task
    lo, hi = _WORKER["lo"], _WORKER["hi"]
    collector = _PartCollector(_WORKER["history"], index)
    add = collector.add
    for line in range_lines(path, start, end):
        event = line_event(line)
        if type(event) is Flow and lo <= event.time_ns < hi:
            add(event)
    return collector.finish()


def collect_split(history: ClusterHistory, paths: Sequence[str], lo: int, hi: int, workers: int,
                  parts_per_worker: int = PARTS_PER_WORKER) -> ConnectionCollector:
    """`whatif.collect_files` in `workers` processes: the same observations and stats."""
    total = sum(os.path.getsize(path) for path in paths) or 1
    tasks: list[tuple[int, str, int, int]] = []
    for path in paths:
        share = max(1, round(workers * parts_per_worker * os.path.getsize(path) / total))
        tasks += [(len(tasks) + i, path, start, end) for i, (start, end) in enumerate(line_ranges(path, share))]
    merged = Merge(history)
    if threading.active_count() > 1:
        # fork() copies only the calling thread: a lock another thread holds at that moment (logging,
        # a grpc server's) stays locked in the child for good.  Inside a threaded process the parts
        # are read here, one after the other, and merged the same way.
        _init(history, lo, hi)
        for part in map(_run, tasks):
            merged.add(part)
        return merged.collector()
    context = multiprocessing.get_context("fork")
    with context.Pool(min(workers, max(1, len(tasks))), _init, (history, lo, hi)) as pool:
        for part in pool.imap(_run, tasks):  # in file order, merged while later parts are read
            merged.add(part)
    return merged.collector()


class Merge:
    """Parts, added in file order, into one collector as if it had read them all."""

    def __init__(self, history: ClusterHistory) -> None:
        self._history = history
        self._stats = CollectStats()
        self._entries: dict[Ident, list[Any]] = {}
        """ident -> [count, first_ns, last_ns, sample, first seq]."""
        self._dedup = DropDeduplicator()

    def add(self, part: Part) -> None:
        _merge_stats(self._stats, part)
        entries = self._entries
        for ident, count, first_ns, last_ns, sample, seq in part.folded:
            entry = entries.get(ident)
            if entry is None:
                entries[ident] = [count, first_ns, last_ns, sample, seq]
            else:  # an earlier part holds the first flow, and so the sample
                entry[0] += count
                entry[1], entry[2] = min(entry[1], first_ns), max(entry[2], last_ns)
        self._settle_denied(part)

    def _settle_denied(self, part: Part) -> None:
        """The part's denied flows through the one de-duplicator, in file order; the others folded."""
        stats, entries, duplicate = self._stats, self._entries, self._dedup.is_duplicate_key
        for key, is_verdict, time_ns, sample, ident, seq in part.denied:
            if key is not None and duplicate(key, time_ns, is_verdict):
                stats.deduplicated += 1
            elif ident == HEALTH:
                stats.skipped["health"] += 1
            elif ident == UNRESOLVED:
                stats.unresolved += 1
            else:
                stats.judged += 1
                entry = entries.get(ident)
                if entry is None:
                    entries[ident] = [1, time_ns, time_ns, sample, seq]
                else:
                    entry[0] += 1
                    entry[1], entry[2] = min(entry[1], time_ns), max(entry[2], time_ns)

    def collector(self) -> ConnectionCollector:
        collector = ConnectionCollector(self._history)
        collector.stats = self._stats
        collector.extend(_observations(self._history, self._entries))
        return collector


def merge(history: ClusterHistory, parts: Sequence[Part]) -> ConnectionCollector:
    """One collector holding what `parts` (in file order) folded."""
    merged = Merge(history)
    for part in parts:
        merged.add(part)
    return merged.collector()


def _merge_stats(stats: CollectStats, part: Part) -> None:
    own = part.stats
    if not own.flows:
        return
    if part.zero_time or not stats.first_ns:
        stats.first_ns = own.first_ns
    else:
        stats.first_ns = min(stats.first_ns, own.first_ns)
    stats.flows += own.flows
    stats.last_ns = max(stats.last_ns, own.last_ns)
    stats.judged += own.judged
    stats.unresolved += own.unresolved
    stats.skipped.update(own.skipped)


def _observations(history: ClusterHistory, entries: dict[Ident, list[Any]]) -> list[Observation]:
    """Observations in the order of their first flows, their endpoints resolved like the first flow's."""
    resolved: dict[tuple[Any, ...], Resolved] = {}

    def resolve(key: tuple[Any, ...], state: Any) -> Resolved:
        found = resolved.get((state.revision, key))
        if found is None:
            ip, namespace, pod_name, identity, labels, names, node = key
            endpoint = Endpoint(ip=ip, identity=identity, namespace=namespace, pod_name=pod_name, labels=labels,
                                names=names)
            found = resolved[(state.revision, key)] = resolve_endpoint(endpoint, node, state)
        return found

    out = []
    for ident, (count, first_ns, last_ns, sample, _seq) in sorted(entries.items(), key=lambda item: item[1][4]):
        revision, src_key, dst_key, port, protocol, observed = ident
        state = history.at(first_ns)
        assert state.revision == revision, "a folded flow's state is the state at its time"
        src, dst = resolve(src_key, state), resolve(dst_key, state)
        out.append(Observation(ConnectionKey(src.peer_workload, dst.peer_workload, port, protocol), state, src,
                               dst, port, protocol, observed, count, first_ns, last_ns, sample))
    return out
