"""Daemon settings: one declarative table, resolved with precedence flag > env > file > default.

Every option is a `--flag`, an `AUDITOR_<FLAG>` environment variable (dashes become
underscores, upper-cased) and a key of the YAML `--config` file (the flag name, dashes or
underscores both accepted).
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from auditor.errors import ConfigError
from auditor.hubble.config import HubbleConfig

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str) -> float:
    """Seconds from `90s`, `5m`, `24h`, `30d`, `250ms` or a bare number of seconds."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 24h, 7d)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {text!r} (use true or false)")


def parse_list(text: str) -> list[str]:
    """A comma- or whitespace-separated list (env vars); file values may be YAML lists."""
    return [item for item in re.split(r"[,\s]+", str(text)) if item]


@dataclass(frozen=True, slots=True)
class Option:
    """One setting of `auditor run`."""

    name: str
    help: str
    default: Any
    kind: str = "str"
    """str, int, bool, duration, list or choice."""
    choices: tuple[str, ...] = ()
    minimum: int = 0
    """Smallest value an int option takes (durations are never negative)."""
    nonzero: bool = False
    """For durations: 0 is refused (a zero flush interval or window means nothing sensible)."""
    aliases: tuple[str, ...] = ()
    """Other flag names (the hubble CLI's `--server`)."""

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    @property
    def env(self) -> str:
        return "AUDITOR_" + self.dest.upper()


RUN_OPTIONS: tuple[Option, ...] = (
    Option("hubble-server", "Hubble Relay or agent address: host:port, tls://host:port or unix:///path.",
           "localhost:4245", aliases=("server",)),
    Option("tls", "Connect to Hubble with TLS.", False, "bool"),
    Option("tls-ca-cert-files", "CA certificates to verify Hubble's server certificate.", [], "list"),
    Option("tls-client-cert-file", "Client certificate for mTLS to Hubble Relay.", ""),
    Option("tls-client-key-file", "Client key for mTLS to Hubble Relay.", ""),
    Option("tls-server-name", "Server name to verify, e.g. instance.hubble-relay.cilium.io.", ""),
    Option("node-name", "Only flows observed on this node (node mode).", ""),
    Option("instance", "This writer's identity in a shared store (counters, coverage and gaps are kept per "
           "writer; a second live writer with the same identity is refused); default: the node name in node "
           "mode, else the pod name ($POD_NAME, else the host name).", ""),
    Option("shards", "Relay mode split across N daemons: each asks Relay only for the nodes of its shard "
           "(a stable hash of the node name).", 1, "int", minimum=1),
    Option("shard", "This daemon's shard, 0..shards-1; default: the ordinal of a StatefulSet pod name "
           "(auditor-2 -> 2).", -1, "int", minimum=-1),
    Option("flows", "Read flows from these files instead of Hubble; when they end the daemon keeps serving "
           "/metrics and the store (stop it with SIGTERM), unless --exit-at-end.", [], "list"),
    Option("exit-at-end", "With --flows: flush and exit 0 once the files are analysed (a batch run) instead "
           "of serving on.", False, "bool"),
    Option("manifests", "Read cluster state from these files/dirs instead of the API.", [], "list"),
    Option("cluster-events", "With --manifests: timestamped changes (JSON lines).", ""),
    Option("kubeconfig", "Kubeconfig file (default: in-cluster, then ~/.kube/config).", ""),
    Option("context", "Kubeconfig context.", ""),
    Option("store", "Findings store URL.", "sqlite:///var/lib/auditor/auditor.db"),
    Option("store-password-file", "PostgreSQL store: a file holding the database password (a mounted "
           "Secret), used when the URL has none.", ""),
    Option("metrics-address", "Listen address for /metrics, /healthz and /readyz.", "0.0.0.0:9967"),
    Option("log-format", "Log format; auto = console on a TTY, JSON otherwise.", "auto", "choice",
           ("auto", "json", "console")),
    Option("log-level", "Minimum log level.", "info", "choice",
           ("debug", "info", "warning", "error")),
    Option("queue-size", "Flows buffered between the Hubble reader and analysis.", 10000, "int"),
    Option("workers", "Analysis processes, flows split between them by node; 0 = the cores this "
           "container may use.", 1, "int", minimum=0),
    Option("history-window", "How long policy history is kept in memory for flow-time decisions.",
           "24h", "duration", nonzero=True),
    Option("retention", "How long the store keeps counters, gaps and resolved findings.", "30d", "duration",
           nonzero=True),
    Option("stall-timeout", "Report the Hubble stream as stalled after this long without data.",
           "60s", "duration"),
    Option("hubble-max-message-bytes", "gRPC receive limit for one Hubble message; a larger one is "
           "re-requested with a limit that fits it (up to 64 MiB), past that skipped and counted.",
           4 * 1024 * 1024, "int", minimum=65536),
    Option("enforce-node-traffic", "Judge node-to-pod traffic by policy (Cilium host firewall / "
           "enforcement mode always).", False, "bool"),
    Option("policy-enforcement", "Cilium's policy-enforcement mode: default (isolated when a policy selects), "
           "always (every pod isolated), never (nothing enforced).", "default", "choice",
           ("default", "always", "never")),
    Option("cidr-match-nodes", "CIDR rules also match cluster nodes (Cilium's policy-cidr-match-mode=nodes).",
           False, "bool"),
    Option("max-series-per-metric", "Cardinality cap per metric; the rest goes to an overflow series.",
           2000, "int", minimum=2),
    Option("flush-interval", "How often findings and counters are written to the store.", "5s", "duration",
           nonzero=True),
)


HUBBLE_OPTION_NAMES = ("hubble-server", "tls", "tls-ca-cert-files", "tls-client-cert-file",
                       "tls-client-key-file", "tls-server-name", "stall-timeout",
                       "hubble-max-message-bytes")
"""The Hubble connection settings `run`, `record` and `demo` share (one table, one parser, one type)."""
HUBBLE_OPTIONS = tuple(o for o in RUN_OPTIONS if o.name in HUBBLE_OPTION_NAMES)


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                  options: Sequence[Option] = RUN_OPTIONS, *, config: bool = True) -> None:
    """Add every option as a flag whose default is None, so precedence can be resolved later."""
    if config:
        parser.add_argument("--config", help="YAML file with settings (keys are the flag names).")
    for option in options:
        flags = [f"--{option.name}", *(f"--{alias}" for alias in option.aliases)]
        text = f"{option.help} [env {option.env}; default {_show_default(option)}]"
        if option.kind == "bool":
            parser.add_argument(*flags, dest=option.dest, default=None,
                                action=argparse.BooleanOptionalAction, help=text)
        elif option.kind == "list":
            parser.add_argument(*flags, dest=option.dest, default=None, nargs="+", help=text)
        else:
            parser.add_argument(*flags, dest=option.dest, default=None, help=text,
                                choices=option.choices or None)


def _show_default(option: Option) -> str:
    if option.kind == "list":
        return "none" if not option.default else ",".join(option.default)
    return str(option.default).lower() if option.kind == "bool" else str(option.default)


def resolve(
    args: argparse.Namespace,
    *,
    env: Mapping[str, str] | None = None,
    options: Sequence[Option] = RUN_OPTIONS,
) -> dict[str, Any]:
    """Settings by dest name, typed, with precedence flag > env > config file > default."""
    environ = os.environ if env is None else env
    config_path = getattr(args, "config", None) or environ.get("AUDITOR_CONFIG")
    from_file = load_config_file(config_path, options) if config_path else {}
    settings: dict[str, Any] = {}
    for option in options:
        flag_value = getattr(args, option.dest, None)
        if flag_value is not None:
            settings[option.dest] = _convert(option, flag_value, f"--{option.name}")
        elif option.env in environ:
            settings[option.dest] = _convert(option, environ[option.env], option.env)
        elif option.dest in from_file:
            settings[option.dest] = _convert(option, from_file[option.dest], f"{config_path}: {option.name}")
        else:
            settings[option.dest] = _convert(option, option.default, "default")
    return settings


def load_config_file(path: str, options: Sequence[Option] = RUN_OPTIONS) -> dict[str, Any]:
    """Read the YAML config file; unknown keys are an error naming the key and the file."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from exc
    except RecursionError as exc:
        raise ConfigError(f"{path}: not valid YAML: nested too deep") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise ConfigError(f"{where}: not valid YAML: {problem}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config file must be a mapping of setting names to values")
    known = {option.dest for option in options}
    result: dict[str, Any] = {}
    for key, value in data.items():
        dest = str(key).replace("-", "_")
        if dest not in known:
            raise ConfigError(f"{path}: unknown setting {key!r}")
        result[dest] = value
    return result


def _integer(value: Any) -> int:
    """An int from a flag/env string or a YAML number; 5.7, true or .inf are errors, not 5, 1 or a crash."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError("not a whole number")
    return int(value)


def _seconds(value: Any) -> float:
    """A duration from a string (`30s`) or a YAML number of seconds, finite and not negative."""
    if isinstance(value, bool):
        raise ValueError("not a duration")
    seconds = float(value) if isinstance(value, int | float) else parse_duration(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("a duration must be a finite number of seconds, 0 or more")
    return seconds


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "str": str,
    "choice": str,
    "int": _integer,
    "bool": lambda v: v if isinstance(v, bool) else parse_bool(v),
    "duration": _seconds,
    "list": lambda v: [str(x) for x in v] if isinstance(v, list | tuple) else parse_list(v),
}


def _convert(option: Option, value: Any, origin: str) -> Any:
    try:
        converted = _CONVERTERS[option.kind](value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: invalid value {value!r} for {option.name}: {exc}") from exc
    if option.choices and converted not in option.choices:
        raise ConfigError(f"{origin}: {option.name} must be one of {', '.join(option.choices)}")
    if option.kind == "int" and converted < option.minimum:
        raise ConfigError(f"{origin}: {option.name} must be at least {option.minimum}, got {converted}")
    if option.nonzero and not converted:
        raise ConfigError(f"{origin}: {option.name} must be longer than 0")
    return converted


_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_.-]+)):(?P<port>\d{1,5})$")


def check_hubble_address(address: str, origin: str = "--hubble-server") -> str:
    """`address` when it is `host:port`, `tls://host:port` or `unix:///path`; else a ConfigError in one
    line.  grpc would dial `localhost` on :443 and retry `http://host:4245` forever, so neither passes."""
    if address.startswith("unix://"):
        if len(address) > len("unix://") and address[len("unix://"):].startswith("/"):
            return address
        raise ConfigError(f"{origin}: {address!r} is not a socket path; use unix:///absolute/path")
    rest = address[len("tls://"):] if address.startswith("tls://") else address
    match = _HOST_PORT.match(rest)
    if match is None or not 0 < int(match.group("port")) < 65536:
        raise ConfigError(f"{origin}: {address!r} is not a Hubble address; use host:port (e.g. "
                          "hubble-relay.kube-system.svc:443), tls://host:port or unix:///path")
    return address


@dataclass(frozen=True, slots=True)
class HubbleSettings:
    """How to reach Hubble: the settings `run`, `record` and `demo` share."""

    hubble_server: str = "localhost:4245"
    tls: bool = False
    tls_ca_cert_files: tuple[str, ...] = ()
    tls_client_cert_file: str = ""
    tls_client_key_file: str = ""
    tls_server_name: str = ""
    stall_timeout: float = 60.0
    hubble_max_message_bytes: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        check_hubble_address(self.hubble_server)
        if bool(self.tls_client_cert_file) != bool(self.tls_client_key_file):
            raise ConfigError("--tls-client-cert-file and --tls-client-key-file must be given together")

    def config(self, allow_filters: Sequence[str] = (), deny_filters: Sequence[str] = ()) -> HubbleConfig:
        """The live client's config."""
        return HubbleConfig(
            server=self.hubble_server, tls=self.tls, tls_ca_cert_files=self.tls_ca_cert_files,
            tls_client_cert_file=self.tls_client_cert_file, tls_client_key_file=self.tls_client_key_file,
            tls_server_name=self.tls_server_name, allow_filters=tuple(allow_filters),
            deny_filters=tuple(deny_filters), stall_timeout=self.stall_timeout,
            max_message_bytes=self.hubble_max_message_bytes,
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace, *, env: Mapping[str, str] | None = None) -> HubbleSettings:
        """From the HUBBLE_OPTIONS flags (flag > env > default) of a command without `--config`."""
        environ = {k: v for k, v in (os.environ if env is None else env).items() if k != "AUDITOR_CONFIG"}
        flags = argparse.Namespace(**{**vars(args), "config": None})
        values: dict[str, Any] = resolve(flags, env=environ, options=HUBBLE_OPTIONS)
        typed: dict[str, Any] = {name: tuple(v) if isinstance(v, list) else v for name, v in values.items()}
        return cls(**typed)


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Every setting of `auditor run`, typed, resolved once (flag > env > file > default)."""

    hubble: HubbleSettings
    node_name: str = ""
    instance: str = ""
    shards: int = 1
    shard: int = -1
    flows: tuple[str, ...] = ()
    exit_at_end: bool = False
    manifests: tuple[str, ...] = ()
    cluster_events: str = ""
    kubeconfig: str = ""
    context: str = ""
    store: str = "sqlite:///var/lib/auditor/auditor.db"
    store_password_file: str = ""
    metrics_address: str = "0.0.0.0:9967"
    log_format: Literal["json", "console", "auto"] = "auto"
    log_level: str = "info"
    queue_size: int = 10000
    workers: int = 1
    """Analysis processes (1: in the daemon's own process; 0: the cores this container may use)."""
    history_window: float = 86400.0
    retention: float = 30 * 86400.0
    enforce_node_traffic: bool = False
    policy_enforcement: str = "default"
    cidr_match_nodes: bool = False
    max_series_per_metric: int = 2000
    flush_interval: float = 5.0

    def __post_init__(self) -> None:
        if self.exit_at_end and not self.flows:
            raise ConfigError("--exit-at-end needs --flows (a live Hubble stream does not end)")
        if self.cluster_events and not self.manifests:
            raise ConfigError("--cluster-events needs --manifests (the state the events change)")
        if self.shards > 1 and self.node_name:
            raise ConfigError("--shards splits relay mode by node; node mode (--node-name) reads one node")
        if self.shards > 1 and self.flows:
            raise ConfigError("--shards splits a live Hubble Relay stream; it does not apply to --flows")
        if self.shard >= self.shards:
            raise ConfigError(f"--shard {self.shard} is out of range for --shards {self.shards} "
                              f"(0..{self.shards - 1})")

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> RunSettings:
        """From `resolve()`'s mapping (dest name -> typed value); lists become tuples."""
        def value(name: str) -> Any:
            item = values[name]
            return tuple(item) if isinstance(item, list) else item

        hubble = HubbleSettings(**{name: value(name) for name in HubbleSettings.__dataclass_fields__})
        names = [name for name in cls.__dataclass_fields__ if name != "hubble"]
        return cls(hubble=hubble, **{name: value(name) for name in names})


def load_settings(args: argparse.Namespace, *, env: Mapping[str, str] | None = None) -> RunSettings:
    """The typed settings of `auditor run` (see `resolve`)."""
    return RunSettings.from_values(resolve(args, env=env))


def default_values(options: Sequence[Option] = RUN_OPTIONS) -> dict[str, Any]:
    """Every option at its default, typed (what `resolve` gives without flags, env or file)."""
    return {option.dest: _convert(option, option.default, "default") for option in options}


def add_analysis_arguments(parser: argparse.ArgumentParser) -> None:
    """`--policy-enforcement` and `--cidr-match-nodes` for the offline commands (`audit`, `report`), with
    the daemon's meaning and defaults (the same table rows)."""
    for option in RUN_OPTIONS:
        if option.name in ("policy-enforcement", "cidr-match-nodes"):
            if option.kind == "bool":
                parser.add_argument(f"--{option.name}", dest=option.dest, action="store_true", help=option.help)
            else:
                parser.add_argument(f"--{option.name}", dest=option.dest, default=option.default,
                                    choices=option.choices, help=f"{option.help} (default {option.default})")
