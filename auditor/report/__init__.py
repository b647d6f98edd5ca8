"""Compliance reports rendered from store snapshots."""
