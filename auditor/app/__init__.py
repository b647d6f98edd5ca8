"""Composition root: the only place that wires the edges (hubble, kube, store) to the core."""
