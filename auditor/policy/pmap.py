"""A small persistent (copy-on-write) map with structural sharing, for cheap immutable snapshots.

A fixed three-level trie of fan-out 16 over the key's hash, with plain dicts as leaves (4096
leaves).  `set`/`delete` copy one path: three 16-slot tuples and one small leaf dict, so a new
snapshot of a 10k-entry map touches ~50 objects instead of copying the map, and shares everything
else with its predecessor.  Nodes are never mutated after publication.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_FAN = 16
_MASK = _FAN - 1
_EMPTY: tuple[Any, ...] = (None,) * _FAN

Leaf = dict[Any, Any]
Node = tuple[Any, ...]


def _path(h: int) -> tuple[int, int, int]:
    return h & _MASK, (h >> 4) & _MASK, (h >> 8) & _MASK


class PMap(Generic[K, V]):
    """An immutable mapping; `set` and `delete` return new maps sharing untouched nodes."""

    __slots__ = ("_len", "_root")

    def __init__(self, root: Node = _EMPTY, length: int = 0) -> None:
        self._root = root
        self._len = length

    @classmethod
    def from_items(cls, items: Iterable[tuple[K, V]]) -> PMap[K, V]:
        """Bulk build: fill mutable nodes, then freeze them into tuples."""
        root: list[Any] = [None] * _FAN
        count = 0
        for key, value in items:
            a, b, c = _path(hash(key))
            mid = root[a] = root[a] or [None] * _FAN
            low = mid[b] = mid[b] or [None] * _FAN
            leaf = low[c] = low[c] if low[c] is not None else {}
            count += key not in leaf
            leaf[key] = value
        frozen = tuple(
            None if mid is None else tuple(None if low is None else tuple(low) for low in mid) for mid in root
        )
        return cls(frozen, count)

    def _leaf(self, key: object) -> Leaf | None:
        a, b, c = _path(hash(key))
        mid = self._root[a]
        if mid is None:
            return None
        low = mid[b]
        return None if low is None else low[c]

    def get(self, key: K, default: V | None = None) -> V | None:
        leaf = self._leaf(key)
        return default if leaf is None else leaf.get(key, default)

    def __contains__(self, key: object) -> bool:
        leaf = self._leaf(key)
        return leaf is not None and key in leaf

    def __len__(self) -> int:
        return self._len

    def _leaves(self) -> Iterator[Leaf]:
        for mid in self._root:
            if mid is None:
                continue
            for low in mid:
                if low is None:
                    continue
                for leaf in low:
                    if leaf:
                        yield leaf

    def __iter__(self) -> Iterator[K]:
        for leaf in self._leaves():
            yield from leaf

    def values(self) -> Iterator[V]:
        for leaf in self._leaves():
            yield from leaf.values()

    def items(self) -> Iterator[tuple[K, V]]:
        for leaf in self._leaves():
            yield from leaf.items()

    def _with_leaf(self, key: object, leaf: Leaf | None, length: int) -> PMap[K, V]:
        a, b, c = _path(hash(key))
        mid = self._root[a] or _EMPTY
        low = mid[b] or _EMPTY
        new_low = (*low[:c], leaf, *low[c + 1:])
        new_mid = (*mid[:b], new_low, *mid[b + 1:])
        return PMap((*self._root[:a], new_mid, *self._root[a + 1:]), length)

    def set(self, key: K, value: V) -> PMap[K, V]:
        old = self._leaf(key)
        leaf = dict(old) if old else {}
        grew = key not in leaf
        leaf[key] = value
        return self._with_leaf(key, leaf, self._len + grew)

    def delete(self, key: K) -> PMap[K, V]:
        old = self._leaf(key)
        if old is None or key not in old:
            return self
        leaf = dict(old)
        del leaf[key]
        return self._with_leaf(key, leaf or None, self._len - 1)
