"""How to reach Hubble: address, TLS, filters, reconnect and stall settings (hubble-CLI flag names)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from auditor.errors import ConfigError
from auditor.hubble.backoff import Backoff

DEFAULT_SERVER = "localhost:4245"
UNIX_PREFIX = "unix://"
TLS_PREFIX = "tls://"


@dataclass(frozen=True, slots=True)
class HubbleConfig:
    """Everything the live client needs; build it in the app layer, hand it to `HubbleClient`."""

    server: str = DEFAULT_SERVER
    """`host:port`, `tls://host:port` (forces TLS) or `unix:///var/run/cilium/hubble.sock`."""
    tls: bool = False
    tls_ca_cert_files: tuple[str, ...] = ()
    """PEM CA bundles that sign the server certificate; empty = the system roots."""
    tls_client_cert_file: str = ""
    tls_client_key_file: str = ""
    tls_server_name: str = ""
    """Name to verify the server certificate against instead of the dialled host."""
    allow_filters: tuple[str, ...] = ()
    """FlowFilters as protojson (`{"verdict":["DROPPED"]}`), OR'ed: Hubble's whitelist."""
    deny_filters: tuple[str, ...] = ()
    """FlowFilters as protojson, OR'ed: Hubble's blacklist."""
    since_ns: int = 0
    """Ask for flows from this time on at the first connect (0 = only new flows)."""
    backoff: Backoff = field(default_factory=Backoff)
    stall_timeout: float = 120.0
    """Seconds without any response before the stream counts as stalled and is re-dialled (0 = never).

    This also bounds a connection attempt that hangs (e.g. SYNs dropped by a firewall)."""
    max_message_bytes: int = 4 * 1024 * 1024
    """gRPC receive limit; a larger message makes the client re-request with a limit that fits it."""
    fail_fast_tls: bool = True
    """A TLS handshake failure before the first successful stream raises instead of retrying."""

    def __post_init__(self) -> None:
        if not self.server:
            raise ConfigError("hubble: --server must not be empty")
        if bool(self.tls_client_cert_file) != bool(self.tls_client_key_file):
            raise ConfigError(
                "hubble: --tls-client-cert-file and --tls-client-key-file must be given together"
            )
        if self.stall_timeout < 0:
            raise ConfigError(f"hubble: --stall-timeout must be >= 0 (0 disables it), got {self.stall_timeout}")

    @property
    def use_tls(self) -> bool:
        """TLS is on when asked for, implied by a `tls://` server or by any TLS file flag."""
        if self.server.startswith(UNIX_PREFIX):
            return False
        return (
            self.tls
            or self.server.startswith(TLS_PREFIX)
            or bool(self.tls_ca_cert_files or self.tls_client_cert_file or self.tls_server_name)
        )

    @property
    def target(self) -> str:
        """The grpc target string: `host:port` or `unix:///path` (a `tls://` prefix removed)."""
        if self.server.startswith(TLS_PREFIX):
            return self.server[len(TLS_PREFIX):]
        return self.server


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """The hubble-CLI-compatible connection flags, for any command that reads a live stream."""
    group = parser.add_argument_group("Hubble connection")
    group.add_argument("--server", "--hubble-server", dest="server", default=DEFAULT_SERVER,
                       help="Hubble Relay or node address: host:port, tls://host:port or unix:///path")
    group.add_argument("--tls", action="store_true", help="connect with TLS")
    group.add_argument("--tls-ca-cert-files", nargs="+", default=[], metavar="FILE",
                       help="PEM CA certificates that sign the server certificate")
    group.add_argument("--tls-client-cert-file", default="", metavar="FILE",
                       help="PEM client certificate for mTLS")
    group.add_argument("--tls-client-key-file", default="", metavar="FILE", help="PEM client key for mTLS")
    group.add_argument("--tls-server-name", default="",
                       help="server name to verify the certificate against (e.g. ui.hubble-relay.cilium.io)")
    group.add_argument("--allowlist", action="append", default=[], metavar="JSON",
                       help='FlowFilter as JSON, e.g. \'{"verdict":["DROPPED"]}\' (repeat: OR)')
    group.add_argument("--denylist", action="append", default=[], metavar="JSON",
                       help="FlowFilter as JSON whose matches are excluded (repeat: OR)")
    group.add_argument("--stall-timeout", type=float, default=120.0, metavar="SECONDS",
                       help="re-dial when the stream sends nothing for this long (0: never)")


def config_from_args(args: argparse.Namespace) -> HubbleConfig:
    """Build a HubbleConfig from the flags `add_client_arguments` added."""
    return HubbleConfig(
        server=args.server,
        tls=args.tls,
        tls_ca_cert_files=tuple(args.tls_ca_cert_files),
        tls_client_cert_file=args.tls_client_cert_file,
        tls_client_key_file=args.tls_client_key_file,
        tls_server_name=args.tls_server_name,
        allow_filters=tuple(args.allowlist),
        deny_filters=tuple(args.denylist),
        stall_timeout=args.stall_timeout,
    )
