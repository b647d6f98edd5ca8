"""Pure parts of the live client: backoff arithmetic, resume de-duplication, config parsing."""

from __future__ import annotations

import argparse

import pytest

from auditor.errors import ConfigError
from auditor.hubble.backoff import Backoff
from auditor.hubble.client import ResumePoint, flow_key
from auditor.hubble.config import HubbleConfig, add_client_arguments, config_from_args
from auditor.hubble.source import MAX_GAPS, add_gap
from tests.hubble_support import BASE_NS, flow_response


class TestBackoff:
    def test_grows_exponentially_up_to_the_maximum(self) -> None:
        """Without jitter the delay doubles per attempt and stops at the maximum."""
        backoff = Backoff(initial=1.0, maximum=5.0, multiplier=2.0, jitter=0.5)
        assert [backoff.delay(n, rand=lambda: 0.0) for n in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]

    def test_jitter_takes_away_up_to_its_fraction(self) -> None:
        """Full jitter draw removes `jitter` of the base delay, never more."""
        backoff = Backoff(initial=2.0, maximum=10.0, jitter=0.25)
        assert backoff.delay(0, rand=lambda: 1.0) == pytest.approx(1.5)

    def test_huge_attempt_numbers_do_not_overflow(self) -> None:
        """Attempt numbers in the thousands still give the maximum."""
        assert Backoff(initial=1.0, maximum=30.0).delay(10_000, rand=lambda: 0.0) == 30.0

    def test_invalid_settings_are_refused(self) -> None:
        """Jitter outside [0, 1] or maximum below initial is a ConfigError."""
        with pytest.raises(ConfigError, match="jitter"):
            Backoff(jitter=1.5)
        with pytest.raises(ConfigError, match="initial <= maximum"):
            Backoff(initial=10, maximum=1)


class TestResumePoint:
    def test_duplicates_at_the_resume_instant_are_dropped(self) -> None:
        """After a reconnect, flows already delivered at the last instant are refused once more."""
        point = ResumePoint()
        first, second = flow_response(1, time_ns=BASE_NS), flow_response(2, time_ns=BASE_NS)
        assert point.accept(BASE_NS, first)
        assert point.accept(BASE_NS, second)
        point.start_resume()
        assert not point.accept(BASE_NS, first)
        assert not point.accept(BASE_NS, second)
        assert point.accept(BASE_NS, flow_response(3, time_ns=BASE_NS))

    def test_flows_without_uuid_compare_by_bytes(self) -> None:
        """Without uuid the serialized flow is the key: equal bytes are duplicates, others are not."""
        point = ResumePoint()
        seen = flow_response(1, time_ns=BASE_NS, uuid="")
        point.accept(BASE_NS, seen)
        point.start_resume()
        assert not point.accept(BASE_NS, flow_response(1, time_ns=BASE_NS, uuid=""))
        assert point.accept(BASE_NS, flow_response(2, time_ns=BASE_NS, uuid=""))
        assert flow_key(seen) == seen.flow.SerializeToString(deterministic=True)

    def test_older_flows_in_the_overlap_are_dropped_then_resume_ends(self) -> None:
        """During the overlap older flows are duplicates; a newer flow ends the overlap."""
        point = ResumePoint()
        point.accept(BASE_NS + 10, flow_response(1, time_ns=BASE_NS + 10))
        point.start_resume()
        assert not point.accept(BASE_NS + 5, flow_response(0, time_ns=BASE_NS + 5))
        assert point.accept(BASE_NS + 20, flow_response(2, time_ns=BASE_NS + 20))
        assert point.accept(BASE_NS + 15, flow_response(3, time_ns=BASE_NS + 15))
        assert point.last_ns == BASE_NS + 20

    def test_no_resume_before_any_flow(self) -> None:
        """A first connection (nothing delivered yet) drops nothing."""
        point = ResumePoint()
        point.start_resume()
        assert not point.resuming
        assert point.accept(BASE_NS, flow_response(0, time_ns=BASE_NS))


class TestGaps:
    def test_overlapping_gaps_merge(self) -> None:
        """A window that starts inside the previous one extends it."""
        gaps: list[tuple[int, int]] = [(10, 20)]
        add_gap(gaps, 15, 30)
        add_gap(gaps, 40, 40)
        assert gaps == [(10, 30), (40, 40)]

    def test_gap_list_is_bounded(self) -> None:
        """Past MAX_GAPS new windows widen the last one instead of growing the list."""
        gaps = [(i * 10, i * 10 + 1) for i in range(MAX_GAPS)]
        add_gap(gaps, MAX_GAPS * 10 + 5, MAX_GAPS * 10 + 9)
        assert len(gaps) == MAX_GAPS
        assert gaps[-1] == ((MAX_GAPS - 1) * 10, MAX_GAPS * 10 + 9)


class TestConfig:
    def test_flags_map_to_config(self) -> None:
        """The hubble-CLI-named flags fill HubbleConfig."""
        parser = argparse.ArgumentParser()
        add_client_arguments(parser)
        args = parser.parse_args([
            "--server", "relay:443", "--tls", "--tls-ca-cert-files", "a.crt", "b.crt",
            "--tls-client-cert-file", "c.crt", "--tls-client-key-file", "c.key",
            "--tls-server-name", "ui.hubble-relay.cilium.io", "--allowlist", '{"verdict":["DROPPED"]}',
        ])
        config = config_from_args(args)
        assert config.tls_ca_cert_files == ("a.crt", "b.crt")
        assert config.tls_server_name == "ui.hubble-relay.cilium.io"
        assert config.allow_filters == ('{"verdict":["DROPPED"]}',)
        assert config.use_tls

    def test_tls_prefix_and_unix_target(self) -> None:
        """tls:// forces TLS and is stripped from the target; unix:// never uses TLS."""
        assert HubbleConfig(server="tls://relay:443").target == "relay:443"
        assert HubbleConfig(server="tls://relay:443").use_tls
        assert not HubbleConfig(server="unix:///var/run/cilium/hubble.sock", tls=True).use_tls

    def test_plaintext_by_default(self) -> None:
        """A plain host:port without TLS flags is plaintext."""
        assert not HubbleConfig(server="localhost:4245").use_tls


class TestConversionFault:
    def test_one_unconvertible_message_is_counted_and_the_stream_goes_on(self) -> None:
        """A message whose conversion raises is counted as a bad item; the flows after it still arrive."""
        from auditor.hubble.client import HubbleClient
        from auditor.hubble.convert import event_from_response
        from auditor.hubble.replay_server import ReplayServer
        from tests.hubble_support import fast_config, flow_response, take

        def convert_or_fail(response: object) -> object:
            """Fault injection: the converter breaks on exactly one message (uuid-1)."""
            if response.flow.uuid == "uuid-1":  # type: ignore[attr-defined]
                raise ValueError("injected conversion fault")
            return event_from_response(response)

        with ReplayServer(responses=[flow_response(i) for i in range(3)]) as server:
            client = HubbleClient(fast_config(server.address))
            client._to_event = convert_or_fail  # type: ignore[method-assign]
            events = take(client, 2, limit=10)
        assert [event.uuid for event in events] == ["uuid-0", "uuid-2"]  # type: ignore[union-attr]
        assert client.stats.bad_lines == 1
        assert "injected conversion fault" in client.stats.errors[0]
