"""Findings, counters, coverage and policy history, persisted (SQLite by default)."""
