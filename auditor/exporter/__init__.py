"""Prometheus exposition: a custom collector over store snapshots, own registry."""
