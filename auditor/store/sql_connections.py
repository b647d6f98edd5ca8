"""Distinct judged connections (schema version 7) in SQL: written by `apply`, read by `whatif --store`.

One row per (source workload, destination workload, port, protocol, direction, verdict): flows add
up, the span widens and the newest flow's sample stays (its id, its two endpoints as JSON and its
node), all in one portable `INSERT ... ON CONFLICT DO UPDATE` (no LEAST/GREATEST, which SQLite lacks,
nor SQLite's two-argument MIN/MAX, which PostgreSQL lacks).  Retention deletes rows last seen before
the cutoff, like runtime findings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from auditor.errors import StoreError
from auditor.model.delta import ConnectionCount
from auditor.model.flows import Endpoint
from auditor.store.schema import Executor, Row

_KEY = ("source", "destination", "port", "protocol", "direction", "verdict")
_VALUES = ("count", "first_seen_ns", "last_seen_ns", "sample_flow", "source_endpoint", "destination_endpoint",
           "node")
_COLUMNS = (*_KEY, *_VALUES)
_NEWER = "excluded.last_seen_ns >= connections.last_seen_ns"
_SAMPLE = ("sample_flow", "source_endpoint", "destination_endpoint", "node")
_ADD = (
    f"INSERT INTO connections ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)}) "
    f"ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET count = connections.count + excluded.count, "
    "first_seen_ns = CASE WHEN excluded.first_seen_ns < connections.first_seen_ns "
    "THEN excluded.first_seen_ns ELSE connections.first_seen_ns END, "
    f"last_seen_ns = CASE WHEN {_NEWER} THEN excluded.last_seen_ns ELSE connections.last_seen_ns END, "
    + ", ".join(f"{c} = CASE WHEN {_NEWER} THEN excluded.{c} ELSE connections.{c} END" for c in _SAMPLE)
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM connections"


def endpoint_json(endpoint: Endpoint) -> str:
    """The fields endpoint resolution reads (`connections.sample_endpoint`), as compact JSON."""
    values = {"ip": endpoint.ip, "identity": endpoint.identity, "namespace": endpoint.namespace,
              "pod": endpoint.pod_name, "labels": list(endpoint.labels), "names": list(endpoint.names)}
    return json.dumps(values, separators=(",", ":"))


def endpoint_of(text: str) -> Endpoint:
    values = json.loads(text)
    return Endpoint(ip=str(values["ip"]), identity=int(values["identity"]), namespace=str(values["namespace"]),
                    pod_name=str(values["pod"]), labels=tuple(map(str, values["labels"])),
                    names=tuple(map(str, values["names"])))


def add(tx: Executor, connections: Iterable[ConnectionCount]) -> int:
    """Merge the delta's connections into the stored rows; the number of rows written."""
    rows = [(*c.key, c.count, c.first_ns, c.last_ns, c.sample_flow, endpoint_json(c.source_endpoint),
             endpoint_json(c.destination_endpoint), c.node) for c in connections]
    tx.run_many(_ADD, rows)
    return len(rows)


def _from_row(row: Row) -> ConnectionCount:
    try:
        return ConnectionCount(
            source=str(row[0]), destination=str(row[1]), port=int(row[2]), protocol=str(row[3]),
            direction=str(row[4]), verdict=str(row[5]), count=int(row[6]), first_ns=int(row[7]),
            last_ns=int(row[8]), sample_flow=str(row[9]), source_endpoint=endpoint_of(row[10]),
            destination_endpoint=endpoint_of(row[11]), node=str(row[12]))
    except (ValueError, TypeError, KeyError) as exc:
        raise StoreError(f"connection {row[:6]!r}: unreadable row: {exc}") from exc


def select(tx: Executor, since_ns: int | None, until_ns: int | None) -> list[ConnectionCount]:
    """Connections whose [first_seen, last_seen] overlaps [since, until), in key order."""
    where: list[str] = []
    params: list[object] = []
    if since_ns is not None:
        where.append("last_seen_ns >= ?")
        params.append(since_ns)
    if until_ns is not None:
        where.append("first_seen_ns < ?")
        params.append(until_ns)
    sql = _SELECT + (f" WHERE {' AND '.join(where)}" if where else "") + f" ORDER BY {', '.join(_KEY)}"
    return [_from_row(row) for row in tx.query(sql, params)]


def retention(tx: Executor, cutoff_ns: int) -> int:
    """Delete the connections last seen before the cutoff."""
    return tx.run("DELETE FROM connections WHERE last_seen_ns < ?", (cutoff_ns,))
