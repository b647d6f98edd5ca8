"""Correlation, pure: flow x decision -> findings."""
