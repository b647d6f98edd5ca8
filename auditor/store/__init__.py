"""Findings, counters, coverage and policy history, persisted (SQLite by default).

Callers use `open_store(url)` and the `Store` interface only; see docs/store.md.
"""

from auditor.store.base import STATIC_KINDS, Store
from auditor.store.records import (
    COUNTER_COLUMNS,
    DAY_NS,
    DEFAULT_JOIN_NS,
    DEFAULT_RETENTION_NS,
    HOUR_NS,
    CounterRow,
    Coverage,
    FindingStatus,
    Gap,
    OpenFindingCount,
    PolicyChangeRecord,
    RetentionResult,
    RuleHitRow,
    StoredFinding,
    StoreSnapshot,
    Window,
    hour_floor,
)
from auditor.store.schema import LATEST_VERSION
from auditor.store.sqlite import SqliteStore
from auditor.store.url import open_store, register_backend, require_existing_store, supported_schemes

__all__ = [
    "COUNTER_COLUMNS",
    "DAY_NS",
    "DEFAULT_JOIN_NS",
    "DEFAULT_RETENTION_NS",
    "HOUR_NS",
    "LATEST_VERSION",
    "STATIC_KINDS",
    "CounterRow",
    "Coverage",
    "FindingStatus",
    "Gap",
    "OpenFindingCount",
    "PolicyChangeRecord",
    "RetentionResult",
    "RuleHitRow",
    "SqliteStore",
    "Store",
    "StoreSnapshot",
    "StoredFinding",
    "Window",
    "hour_floor",
    "open_store",
    "register_backend",
    "require_existing_store",
    "supported_schemes",
]
