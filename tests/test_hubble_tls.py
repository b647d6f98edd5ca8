"""TLS and mTLS between the live client and the replay server, with certificates made in the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from auditor.errors import ConfigError, TLSConfigError
from auditor.hubble.client import HubbleClient
from auditor.hubble.config import HubbleConfig
from auditor.hubble.replay_server import ReplayServer
from auditor.hubble.tls import ServerTLS
from auditor.model.flows import Flow
from tests.certs import SERVER_NAME, Pki, make_pki
from tests.hubble_support import fast_config, flow_response, take

RESPONSES = [flow_response(i) for i in range(5)]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("other-pki"), ca_name="some other CA")


@pytest.fixture
def tls_server(pki: Pki) -> Iterator[ReplayServer]:
    with ReplayServer(responses=RESPONSES, tls=ServerTLS(pki.server.cert, pki.server.key)) as server:
        yield server


@pytest.fixture
def mtls_server(pki: Pki) -> Iterator[ReplayServer]:
    tls = ServerTLS(pki.server.cert, pki.server.key, client_ca_files=(pki.ca_cert,))
    with ReplayServer(responses=RESPONSES, tls=tls) as server:
        yield server


def flows_via(config: HubbleConfig) -> list[str]:
    client = HubbleClient(config)
    return [event.uuid for event in take(client, len(RESPONSES)) if isinstance(event, Flow)]


EXPECTED = [f"uuid-{i}" for i in range(5)]


class TestTLS:
    def test_tls_with_ca(self, tls_server: ReplayServer, pki: Pki) -> None:
        """A TLS server is read with --tls and the CA that signed its certificate."""
        config = fast_config(tls_server.address, tls=True, tls_ca_cert_files=(pki.ca_cert,))
        assert flows_via(config) == EXPECTED

    def test_server_name_override(self, tls_server: ReplayServer, pki: Pki) -> None:
        """--tls-server-name verifies the certificate against a name other than the dialled host."""
        config = fast_config(tls_server.address, tls_ca_cert_files=(pki.ca_cert,), tls_server_name=SERVER_NAME)
        assert flows_via(config) == EXPECTED

    def test_tls_prefix_enables_tls(self, tls_server: ReplayServer, pki: Pki) -> None:
        """A tls:// server address turns TLS on without --tls."""
        config = fast_config(f"tls://{tls_server.address}", tls_ca_cert_files=(pki.ca_cert,))
        assert flows_via(config) == EXPECTED

    def test_wrong_ca_refused_clearly(self, tls_server: ReplayServer, other_pki: Pki) -> None:
        """A server certificate from another CA is refused with an error naming --tls-ca-cert-files."""
        config = fast_config(tls_server.address, tls=True, tls_ca_cert_files=(other_pki.ca_cert,))
        with pytest.raises(TLSConfigError, match="not signed by a CA in --tls-ca-cert-files"):
            flows_via(config)

    def test_wrong_server_name_refused_clearly(self, tls_server: ReplayServer, pki: Pki) -> None:
        """A server name the certificate does not carry is refused, pointing at --tls-server-name."""
        config = fast_config(tls_server.address, tls_ca_cert_files=(pki.ca_cert,), tls_server_name="nope.test")
        with pytest.raises(TLSConfigError, match="--tls-server-name"):
            flows_via(config)


class TestMutualTLS:
    def test_mtls_with_client_certificate(self, mtls_server: ReplayServer, pki: Pki) -> None:
        """An mTLS server accepts a client certificate signed by its client CA."""
        config = fast_config(mtls_server.address, tls_ca_cert_files=(pki.ca_cert,),
                             tls_client_cert_file=pki.client.cert, tls_client_key_file=pki.client.key)
        assert flows_via(config) == EXPECTED

    def test_missing_client_certificate_refused_clearly(self, mtls_server: ReplayServer, pki: Pki) -> None:
        """Without a client certificate the error says the server requires one."""
        config = fast_config(mtls_server.address, tls_ca_cert_files=(pki.ca_cert,))
        with pytest.raises(TLSConfigError, match="requires a client certificate"):
            flows_via(config)

    def test_untrusted_client_certificate_refused_clearly(
        self, mtls_server: ReplayServer, pki: Pki, other_pki: Pki
    ) -> None:
        """A client certificate from a CA the server does not trust is refused with that reason."""
        client = other_pki.client
        config = fast_config(mtls_server.address, tls_ca_cert_files=(pki.ca_cert,),
                             tls_client_cert_file=client.cert, tls_client_key_file=client.key)
        with pytest.raises(TLSConfigError, match="does not trust the client certificate"):
            flows_via(config)


class TestCredentialFiles:
    def test_missing_ca_file_names_flag_and_path(self, tmp_path: Path) -> None:
        """An unreadable CA file fails at construction, naming the flag and the path."""
        missing = tmp_path / "nope.crt"
        with pytest.raises(TLSConfigError, match=f"--tls-ca-cert-files: cannot read CA certificate {missing}"):
            HubbleClient(HubbleConfig(tls=True, tls_ca_cert_files=(str(missing),)))

    def test_key_file_without_key(self, tmp_path: Path, pki: Pki) -> None:
        """A client key file with no PEM private key in it is refused with what was expected."""
        with pytest.raises(TLSConfigError, match="does not contain a PEM private key"):
            HubbleClient(HubbleConfig(tls=True, tls_client_cert_file=pki.client.cert,
                                      tls_client_key_file=pki.client.cert))

    def test_cert_without_key_is_a_config_error(self, pki: Pki) -> None:
        """--tls-client-cert-file without --tls-client-key-file is refused up front."""
        with pytest.raises(ConfigError, match="must be given together"):
            HubbleConfig(tls=True, tls_client_cert_file=pki.client.cert)

    def test_server_key_missing(self, tmp_path: Path, pki: Pki) -> None:
        """The replay server names the flag of a missing key file."""
        with pytest.raises(TLSConfigError, match="--tls-key-file"):
            ServerTLS(pki.server.cert, str(tmp_path / "missing.key")).credentials()
