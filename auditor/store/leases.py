"""Leases in SQL (schema version 6): one per live writer identity, and the one cluster lease.

A writer claims `writer/<instance>` when it opens the store and renews it at every heartbeat; a second
process that claims the same identity while the lease has not expired is refused (two writers under
one identity would double its counters).  The cluster lease (`cluster`) goes to any writer when it is
free or expired and stays with it while it renews: its holder alone exports the cluster-level gauges.
A lease is identified by a random token per process, so a restarted process is a new holder.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass

from auditor.errors import StoreError
from auditor.store.schema import Dialect, Executor
from auditor.store.sql_findings import lock_keys

CLUSTER = "cluster"
DEFAULT_LEASE_NS = 30 * 1_000_000_000
"""How long a lease outlives its last heartbeat (the daemon renews it every third of this)."""


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    holder: str
    token: str
    acquired_ns: int
    heartbeat_ns: int
    expires_ns: int


def writer_lease(instance: str) -> str:
    return f"writer/{instance}"


def new_token() -> str:
    return uuid.uuid4().hex


def holder_name() -> str:
    """Who holds a lease, for the refusal message: host and process."""
    return f"{socket.gethostname()} pid {os.getpid()}"


def get(tx: Executor, name: str) -> Lease | None:
    rows = tx.query("SELECT name, holder, token, acquired_ns, heartbeat_ns, expires_ns FROM leases "
                    "WHERE name = ?", (name,))
    return Lease(*rows[0]) if rows else None


def take(tx: Executor, dialect: Dialect, name: str, holder: str, token: str, now_ns: int,
         ttl_ns: int) -> Lease | None:
    """Take or renew `name` unless another token holds it unexpired; None when taken, else that lease."""
    lock_keys(tx, dialect, [f"lease/{name}"])
    current = get(tx, name)
    if current is not None and current.token != token and current.expires_ns > now_ns:
        return current
    if current is None:
        tx.run("INSERT INTO leases (name, holder, token, acquired_ns, heartbeat_ns, expires_ns) "
               "VALUES (?, ?, ?, ?, ?, ?)", (name, holder, token, now_ns, now_ns, now_ns + ttl_ns))
    elif current.token == token:
        tx.run("UPDATE leases SET heartbeat_ns = ?, expires_ns = ? WHERE name = ?",
               (now_ns, now_ns + ttl_ns, name))
    else:
        tx.run("UPDATE leases SET holder = ?, token = ?, acquired_ns = ?, heartbeat_ns = ?, expires_ns = ? "
               "WHERE name = ?", (holder, token, now_ns, now_ns, now_ns + ttl_ns, name))
    return None


def release(tx: Executor, token: str) -> int:
    """Give up every lease of this process (a clean stop: the identity is free at once)."""
    return tx.run("DELETE FROM leases WHERE token = ?", (token,))


def refusal(where: str, instance: str, lease: Lease, now_ns: int) -> str:
    """The one line a refused second writer exits with."""
    ago = max(0, now_ns - lease.heartbeat_ns) / 1e9
    left = max(0, lease.expires_ns - now_ns) / 1e9
    return (f"{where}: writer identity {instance!r} is already live ({lease.holder}, heartbeat {ago:.0f}s ago, "
            f"lease expires in {left:.0f}s); give this daemon its own --instance or stop the other one")


class LeaseLostError(StoreError):
    """This writer's identity lease was taken over by another process (it stopped heartbeating too long)."""


class WriterRefusedError(StoreError):
    """Another live process holds the writer identity this one claimed."""
