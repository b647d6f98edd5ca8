"""The pure parts of the pipeline: flow selection, de-duplication, DNS query recovery, aggregation."""

from __future__ import annotations

from dataclasses import replace

import pytest

from auditor.findings.aggregate import FindingAggregator
from auditor.findings.dns import DnsQueryCache, is_refused_by_proxy
from auditor.findings.selection import DropDeduplicator, FlowClass, classify
from auditor.model.findings import Finding, FindingKind, Severity
from auditor.model.flows import EventType, Verdict
from tests.findings_support import API, DNS, SECOND, T0, WEB, dns_l7, drop, ep, flow


class TestClassify:
    def test_policy_verdict_drop_is_policy_denied(self) -> None:
        """A type-5 DROPPED policy verdict is a policy denial."""
        assert classify(drop(ep(WEB), ep(API), event=EventType.POLICY_VERDICT)) is FlowClass.POLICY_DENIED

    def test_drop_event_with_policy_reason_is_policy_denied(self) -> None:
        """A type-1 drop with POLICY_DENIED is a policy denial."""
        assert classify(drop(ep(WEB), ep(API))) is FlowClass.POLICY_DENIED

    def test_explicit_deny_reason_is_policy_denied(self) -> None:
        """POLICY_DENY (181, deny rule) is a policy denial too."""
        assert classify(replace(drop(ep(WEB), ep(API)), drop_reason="POLICY_DENY")) is FlowClass.POLICY_DENIED

    def test_field_masked_drop_without_event_type_is_policy_denied(self) -> None:
        """An exporter flow without event_type but with POLICY_DENIED still counts as a policy denial."""
        assert classify(replace(drop(ep(WEB), ep(API)), event_type=0)) is FlowClass.POLICY_DENIED

    def test_other_drop_reason(self) -> None:
        """A drop for a non-policy reason is OTHER_DROP."""
        other = replace(drop(ep(WEB), ep(API)), drop_reason="INVALID_SOURCE_IP")
        assert classify(other) is FlowClass.OTHER_DROP

    def test_delivery_to_endpoint_is_allowed(self) -> None:
        """A FORWARDED trace to an endpoint that is not a reply is an admitted connection."""
        assert classify(flow(ep(WEB), ep(API))) is FlowClass.ALLOWED

    def test_established_trace_is_not_new(self) -> None:
        """A delivery whose trace reason is ESTABLISHED is not a new decision."""
        assert classify(replace(flow(ep(WEB), ep(API)), trace_reason="ESTABLISHED")) is FlowClass.REPLY

    def test_established_tcp_delivery_is_not_new(self) -> None:
        """A delivered TCP packet other than the opening SYN belongs to an admitted connection."""
        ack = replace(flow(ep(WEB), ep(API)), tcp_flags=frozenset({"ACK", "PSH"}))
        syn = replace(flow(ep(WEB), ep(API)), tcp_flags=frozenset({"SYN"}))
        assert classify(ack) is FlowClass.REPLY
        assert classify(syn) is FlowClass.ALLOWED

    def test_audit_verdict(self) -> None:
        """A policy-verdict AUDIT is its own class."""
        audited = flow(ep(WEB), ep(API), verdict=Verdict.AUDIT, event=EventType.POLICY_VERDICT)
        assert classify(audited) is FlowClass.AUDITED

    def test_l7_dns_request_and_response(self) -> None:
        """An L7 DNS request is an admitted request; its response is a DNS response."""
        assert classify(dns_l7(ep(WEB), ep(DNS, 53), "a.")) is FlowClass.ALLOWED
        assert classify(dns_l7(ep(DNS, 53), ep(WEB), "a.", response=True)) is FlowClass.DNS_RESPONSE


class TestDropDeduplicator:
    def test_pair_of_different_event_types_is_one_packet(self) -> None:
        """The drop event following a policy verdict for the same 5-tuple is a duplicate."""
        dedup = DropDeduplicator()
        assert not dedup.is_duplicate(drop(ep(WEB, 1), ep(API, 80), event=EventType.POLICY_VERDICT))
        assert dedup.is_duplicate(drop(ep(WEB, 1), ep(API, 80), time_ns=T0 + 1000))

    def test_two_drop_events_are_two_packets(self) -> None:
        """Two drop events (same type) for one 5-tuple are two packets."""
        dedup = DropDeduplicator()
        assert not dedup.is_duplicate(drop(ep(WEB, 1), ep(API, 80)))
        assert not dedup.is_duplicate(drop(ep(WEB, 1), ep(API, 80), time_ns=T0 + 1000))

    def test_outside_the_window_is_a_new_packet(self) -> None:
        """A drop event long after the verdict is not its pair."""
        dedup = DropDeduplicator()
        dedup.is_duplicate(drop(ep(WEB, 1), ep(API, 80), event=EventType.POLICY_VERDICT))
        assert not dedup.is_duplicate(drop(ep(WEB, 1), ep(API, 80), time_ns=T0 + SECOND))

    def test_memory_is_bounded(self) -> None:
        """The recent-key cache never holds more than max_keys entries."""
        dedup = DropDeduplicator(max_keys=10)
        for port in range(100):
            dedup.is_duplicate(drop(ep(WEB, port + 1), ep(API, 80)))
        assert len(dedup) == 10


class TestDnsQueryCache:
    def test_query_recovered_from_the_request_on_the_same_socket(self) -> None:
        """A portless drop gets the query name an L7 request showed for the same client socket."""
        cache = DnsQueryCache()
        cache.observe(dns_l7(ep(WEB, 5000), ep(DNS, 53), "api.shop.svc."))
        assert cache.query_for(drop(ep(WEB, 5000), ep(DNS, 53))) == "api.shop.svc."
        assert cache.query_for(drop(ep(WEB, 5001), ep(DNS, 53))) == ""

    def test_cache_is_bounded_lru(self) -> None:
        """The least recently used socket is evicted first."""
        cache = DnsQueryCache(max_keys=2)
        for port in (1, 2, 3):
            cache.observe(dns_l7(ep(WEB, port), ep(DNS, 53), f"q{port}."))
        assert len(cache) == 2
        assert cache.query_for(drop(ep(WEB, 1), ep(DNS, 53))) == ""

    @pytest.mark.parametrize(("rcode", "refused"), [(0, False), (2, False), (3, False), (5, True)])
    def test_only_refused_is_a_denial(self, rcode: int, refused: bool) -> None:
        """Of the response codes only REFUSED (5) from the proxy is a denial."""
        assert is_refused_by_proxy(dns_l7(ep(DNS, 53), ep(WEB, 1), "a.", response=True, rcode=rcode)) is refused


def _finding(count: int = 1, time_ns: int = T0, workload: str = "api", **kw: object) -> Finding:
    return Finding(FindingKind.POLICY_DROP, Severity.LOW, "shop", workload, "m", count=count,
                   first_seen_ns=time_ns, last_seen_ns=time_ns, **kw)  # type: ignore[arg-type]


class TestFindingAggregator:
    def test_same_key_merges_counts_and_times(self) -> None:
        """Findings with one key add their counts and widen first/last seen."""
        agg = FindingAggregator()
        agg.add(_finding(time_ns=T0 + 5))
        agg.add(_finding(count=2, time_ns=T0))
        [total] = agg.all()
        assert (total.count, total.first_seen_ns, total.last_seen_ns) == (3, T0, T0 + 5)

    def test_policies_keep_every_revision_seen(self) -> None:
        """Merged policies keep both revisions, oldest first."""
        agg = FindingAggregator()
        agg.add(_finding(policies=("shop/p@1",)))
        agg.add(_finding(policies=("shop/p@2",)))
        assert agg.all()[0].policies == ("shop/p@1", "shop/p@2")

    def test_drain_returns_deltas_since_last_drain(self) -> None:
        """drain() gives the counts since the previous drain; all() keeps totals."""
        agg = FindingAggregator()
        agg.add(_finding())
        agg.drain()
        agg.add(_finding(count=4))
        assert [f.count for f in agg.drain()] == [4]
        assert agg.drain() == []
        assert agg.all()[0].count == 5

    def test_key_limit_counts_overflow(self) -> None:
        """Beyond max_keys new keys are not kept; their flows are counted in overflow."""
        agg = FindingAggregator(max_keys=2)
        for name in ("a", "b", "c", "d"):
            agg.add(_finding(workload=name, count=3))
        assert len(agg) == 2
        assert agg.overflow == 6

    def test_higher_severity_wins(self) -> None:
        """A merged finding keeps the highest severity seen."""
        agg = FindingAggregator()
        agg.add(replace(_finding(), severity=Severity.CRITICAL))
        agg.add(_finding())
        assert agg.all()[0].severity is Severity.CRITICAL
