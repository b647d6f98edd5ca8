"""`auditor replay-server`: serve recorded flows as a Hubble Observer until SIGINT/SIGTERM."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

from auditor.errors import ConfigError
from auditor.hubble.replay_server import ReplayServer
from auditor.hubble.tls import ServerTLS


@dataclass(frozen=True, slots=True)
class ReplayServerOptions:
    """What the command line asked for."""

    flows: tuple[str, ...]
    listen: str = "127.0.0.1:4245"
    rate: float | None = None
    loop: bool = False
    speed: float | None = None
    """Play at this multiple of the recorded pace (instead of --rate)."""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_files: tuple[str, ...] = ()

    def server_tls(self) -> ServerTLS | None:
        """Server TLS from the flags: none, TLS, or mTLS when client CAs are given."""
        if not (self.tls_cert_file or self.tls_key_file or self.tls_client_ca_files):
            return None
        if not (self.tls_cert_file and self.tls_key_file):
            raise ConfigError("replay-server: TLS needs both --tls-cert-file and --tls-key-file")
        return ServerTLS(self.tls_cert_file, self.tls_key_file, self.tls_client_ca_files)


def build_server(options: ReplayServerOptions) -> ReplayServer:
    """Load the flow files and build (not start) the server."""
    return ReplayServer(options.flows, listen=options.listen, rate=options.rate, loop=options.loop,
                        tls=options.server_tls(), speed=options.speed)


def serve(server: ReplayServer, *, ready: Callable[[str, ReplayServer], None],
          stop: threading.Event | None = None) -> int:
    """Start the server, report its address through `ready`, block until stopped or signalled."""
    stop = stop or threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_args: stop.set())
    try:
        ready(server.start(), server)
        stop.wait()
    finally:
        server.stop(grace=1.0)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
