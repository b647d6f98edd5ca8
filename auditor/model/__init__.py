"""Pure value types shared by every layer: flows, Kubernetes objects, decisions, findings.

Nothing here performs I/O, logs, or reads the clock.
"""
