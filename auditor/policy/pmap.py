"""A small persistent (copy-on-write) map with structural sharing, for cheap immutable snapshots.

Keys are spread over a fixed number of shards (plain dicts).  `set`/`delete` copy the shard
tuple and one shard, so a new snapshot of a 10k-entry map costs about 1/64 of a full copy and
shares everything else with its predecessor.  Shards are never mutated after publication.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_SHARDS = 64
_MASK = _SHARDS - 1


class PMap(Generic[K, V]):
    """An immutable mapping; `set` and `delete` return new maps sharing untouched shards."""

    __slots__ = ("_len", "_shards")

    def __init__(self, shards: tuple[dict[K, V], ...] | None = None, length: int = 0) -> None:
        if shards is None:
            shards = tuple({} for _ in range(_SHARDS))
        self._shards: tuple[dict[K, V], ...] = shards
        self._len = length

    @classmethod
    def from_items(cls, items: Iterable[tuple[K, V]]) -> PMap[K, V]:
        """Bulk build without intermediate copies."""
        shards: tuple[dict[K, V], ...] = tuple({} for _ in range(_SHARDS))
        for key, value in items:
            shards[hash(key) & _MASK][key] = value
        return cls(shards, sum(len(s) for s in shards))

    def get(self, key: K, default: V | None = None) -> V | None:
        return self._shards[hash(key) & _MASK].get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._shards[hash(key) & _MASK]

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[K]:
        for shard in self._shards:
            yield from shard

    def values(self) -> Iterator[V]:
        for shard in self._shards:
            yield from shard.values()

    def items(self) -> Iterator[tuple[K, V]]:
        for shard in self._shards:
            yield from shard.items()

    def set(self, key: K, value: V) -> PMap[K, V]:
        index = hash(key) & _MASK
        shard = dict(self._shards[index])
        grew = key not in shard
        shard[key] = value
        shards = (*self._shards[:index], shard, *self._shards[index + 1:])
        return PMap(shards, self._len + (1 if grew else 0))

    def delete(self, key: K) -> PMap[K, V]:
        index = hash(key) & _MASK
        if key not in self._shards[index]:
            return self
        shard = dict(self._shards[index])
        del shard[key]
        shards = (*self._shards[:index], shard, *self._shards[index + 1:])
        return PMap(shards, self._len - 1)
