"""Many daemons, one store: who this daemon writes as, and which relay shard it judges.

`--instance` names the writer in the store (default: the node name in node mode, else the pod name),
`--shard` defaults to a StatefulSet pod's ordinal (`auditor-2` -> 2).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping

from auditor.app.settings import RunSettings
from auditor.errors import ConfigError

_ORDINAL = re.compile(r"-(\d+)$")


def pod_name(env: Mapping[str, str] | None = None) -> str:
    """The pod's name: $POD_NAME (the downward API), else the host name (a pod's host name is its name)."""
    environ = os.environ if env is None else env
    return environ.get("POD_NAME") or socket.gethostname()


def writer_identity(settings: RunSettings, env: Mapping[str, str] | None = None) -> str:
    """--instance, else the node name in node mode, else the pod name."""
    return settings.instance or settings.node_name or pod_name(env)


def shard_index(settings: RunSettings, env: Mapping[str, str] | None = None) -> int:
    """--shard, else the ordinal at the end of --instance or the pod name (a StatefulSet's pods are
    NAME-0..NAME-N-1)."""
    if settings.shards <= 1:
        return 0
    if settings.shard >= 0:
        return settings.shard
    name = settings.instance or pod_name(env)
    match = _ORDINAL.search(name)
    if match is None:
        raise ConfigError(f"--shards {settings.shards} without --shard: the pod name {name!r} has no "
                          "StatefulSet ordinal (NAME-<n>); give --shard")
    ordinal = int(match.group(1))
    if ordinal >= settings.shards:
        raise ConfigError(f"pod {name!r}: ordinal {ordinal} is out of range for --shards {settings.shards} "
                          "(the StatefulSet has more replicas than shards)")
    return ordinal
