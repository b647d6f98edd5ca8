"""TLS material for the Hubble client and the replay server, loaded up front with clear errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from auditor.errors import TLSConfigError
from auditor.hubble.config import HubbleConfig

_CERT_MARK = b"-----BEGIN CERTIFICATE-----"
_KEY_MARK = b"PRIVATE KEY-----"


def read_pem(path: str, what: str, *, flag: str) -> bytes:
    """Read a PEM file or raise TLSConfigError naming the flag, the file and what is wrong."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TLSConfigError(f"{flag}: cannot read {what} {path}: {exc.strerror or exc}") from exc
    mark = _KEY_MARK if what.endswith("key") else _CERT_MARK
    if mark not in data:
        expected = "a PEM private key" if mark is _KEY_MARK else "a PEM certificate"
        raise TLSConfigError(f"{flag}: {path} does not contain {expected} ({what})")
    return data


def read_bundle(paths: tuple[str, ...], what: str, *, flag: str) -> bytes | None:
    """Concatenate several PEM certificate files into one bundle (None when no file is given)."""
    if not paths:
        return None
    return b"\n".join(read_pem(path, what, flag=flag) for path in paths)


def channel_credentials(config: HubbleConfig) -> grpc.ChannelCredentials | None:
    """Client credentials for `config`, or None for a plaintext channel."""
    if not config.use_tls:
        return None
    roots = read_bundle(config.tls_ca_cert_files, "CA certificate", flag="--tls-ca-cert-files")
    key = cert = None
    if config.tls_client_cert_file:
        cert = read_pem(config.tls_client_cert_file, "client certificate", flag="--tls-client-cert-file")
        key = read_pem(config.tls_client_key_file, "client key", flag="--tls-client-key-file")
    return grpc.ssl_channel_credentials(root_certificates=roots, private_key=key, certificate_chain=cert)


def channel_tls_options(config: HubbleConfig) -> list[tuple[str, str]]:
    """Channel options that come from TLS flags (the server-name override)."""
    if config.use_tls and config.tls_server_name:
        return [("grpc.ssl_target_name_override", config.tls_server_name)]
    return []


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """Replay-server TLS: a certificate and key, plus client CAs to require client certificates (mTLS)."""

    cert_file: str
    key_file: str
    client_ca_files: tuple[str, ...] = ()

    def credentials(self) -> grpc.ServerCredentials:
        """grpc server credentials; client certificates are required iff client CAs are given."""
        cert = read_pem(self.cert_file, "server certificate", flag="--tls-cert-file")
        key = read_pem(self.key_file, "server key", flag="--tls-key-file")
        client_cas = read_bundle(self.client_ca_files, "client CA certificate", flag="--tls-client-ca-files")
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=client_cas, require_client_auth=client_cas is not None
        )


_HANDSHAKE_HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("CERTIFICATE_VERIFY_FAILED", "certificate verify failed"),
     "the server certificate is not signed by a CA in --tls-ca-cert-files (or by a system root)"),
    (("CERTIFICATE_REQUIRED", "PEER_DID_NOT_RETURN_A_CERTIFICATE", "HANDSHAKE_FAILURE"),
     "the server requires a client certificate (mTLS): pass --tls-client-cert-file and "
     "--tls-client-key-file signed by a CA the server trusts"),
    (("UNKNOWN_CA", "unknown ca", "BAD_CERTIFICATE", "bad certificate"),
     "the server rejected the client certificate: it is not signed by a CA the server trusts"),
    (("Hostname Verification", "Peer name", "hostname mismatch"),
     "the server certificate does not name the dialled host: set --tls-server-name to a name it carries"),
    (("WRONG_VERSION_NUMBER", "wrong version number"),
     "the server does not speak TLS on this port: drop --tls"),
)


def tls_failure_hint(details: str, *, has_client_cert: bool) -> str | None:
    """A human explanation when a gRPC error text is a TLS handshake failure, else None.

    A server that refuses our client certificate (or its absence) just closes the connection
    during the handshake, so a TLS client sees "Socket closed" while connecting.
    """
    for needles, hint in _HANDSHAKE_HINTS:
        if any(needle in details for needle in needles):
            return hint
    if "Socket closed" in details and "failed to connect" in details:
        if has_client_cert:
            return ("the server closed the connection during the TLS handshake: it does not trust the "
                    "client certificate in --tls-client-cert-file")
        return ("the server closed the connection during the TLS handshake: it requires a client "
                "certificate (mTLS); pass --tls-client-cert-file and --tls-client-key-file")
    if "ssl" in details.lower() or "handshake" in details.lower():
        return "the TLS handshake failed; check --tls, the CA files and the client certificate"
    return None
