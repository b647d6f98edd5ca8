"""DNS denials and the recovery of the query name a denied lookup asked for.

A dropped packet to port 53 carries no query name; an L7 DNS request or response seen for
the same client socket does.  `DnsQueryCache` remembers the last names per
(client ip, client port, server ip), bounded, least recently used evicted first.

Only REFUSED (rcode 5) answered by Cilium's DNS proxy is a denial: NXDOMAIN (3) and
SERVFAIL (2) are ordinary DNS outcomes, not policy.
"""

from __future__ import annotations

from collections import OrderedDict

from auditor.model.flows import DNSInfo, Flow, L7Type, Protocol

DNS_PORT = 53
RCODE_REFUSED = 5
DNS_CACHE_MAX_KEYS = 4096

_DNS_PROTOCOLS = (Protocol.UDP, Protocol.TCP)
"""A tuple (compared by identity first), built once: reading Protocol.UDP off the class costs a call in 3.11."""

SocketKey = tuple[str, int, str]
"""(client ip, client port, server ip)."""

DNS_ANSWER_MAX_KEYS = 65_536
DEFAULT_ANSWER_TTL_NS = 3600 * 10**9
"""How long an answer counts when Hubble gave no TTL (an hour; Cilium keeps names at least as long)."""
MIN_ANSWER_TTL_NS = 60 * 10**9
"""Cilium's `tofqdns-min-ttl` default lets a name's addresses be used for at least this long."""
MAX_ANSWER_TTL_NS = 86_400 * 10**9
"""A day at most: NXDOMAIN answers carry TTL 2**32-1 in real captures, which is no real validity."""


def is_dns_port(flow: Flow) -> bool:
    """True for UDP or TCP traffic to port 53."""
    return flow.destination.port == DNS_PORT and flow.protocol in _DNS_PROTOCOLS


def dns_record(flow: Flow) -> DNSInfo | None:
    """The L7 DNS record of a flow, if it has one."""
    return flow.l7.dns if flow.l7 is not None else None


def is_refused_by_proxy(flow: Flow) -> bool:
    """True for a DNS response with rcode REFUSED that Cilium's DNS proxy produced."""
    dns = dns_record(flow)
    if dns is None or flow.l7 is None or flow.l7.type is not L7Type.RESPONSE:
        return False
    return dns.rcode == RCODE_REFUSED and dns.observation_source in ("proxy", "")


def client_socket(flow: Flow) -> SocketKey:
    """The DNS client's socket key: responses are keyed from their destination side."""
    if flow.l7 is not None and flow.l7.type is L7Type.RESPONSE:
        return (flow.destination.ip, flow.destination.port, flow.source.ip)
    return (flow.source.ip, flow.source.port, flow.destination.ip)


class DnsQueryCache:
    """Bounded LRU of query names by client socket, fed from any flow that shows a query."""

    def __init__(self, max_keys: int = DNS_CACHE_MAX_KEYS) -> None:
        self._max_keys = max_keys
        self._names: OrderedDict[SocketKey, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._names)

    def observe(self, flow: Flow) -> None:
        """Remember the query name of an L7 DNS flow."""
        dns = dns_record(flow)
        if dns is None or not dns.query:
            return
        key = client_socket(flow)
        self._names[key] = dns.query
        self._names.move_to_end(key)
        while len(self._names) > self._max_keys:
            self._names.popitem(last=False)

    def query_for(self, flow: Flow) -> str:
        """The query name of `flow` itself, else the last one seen on its client socket, else ""."""
        dns = dns_record(flow)
        if dns is not None and dns.query:
            return dns.query
        key = client_socket(flow)
        name = self._names.get(key, "")
        if name:
            self._names.move_to_end(key)
        return name


class DnsAnswers:
    """The names each client resolved to each address, from the DNS answers Hubble showed.

    `toFQDNs` rules admit an address for the clients that looked the name up, while the answer is
    valid (its TTL, at least Cilium's minimum); `names_for(client, address, t)` gives those names.
    Bounded: least recently answered (client, address) pairs are evicted first.
    """

    def __init__(self, max_keys: int = DNS_ANSWER_MAX_KEYS) -> None:
        self._max_keys = max_keys
        self._answers: OrderedDict[tuple[str, str], dict[str, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._answers)

    def observe(self, flow: Flow) -> None:
        """Remember the addresses of an L7 DNS response for its client (the response's destination)."""
        dns = dns_record(flow)
        if dns is None or flow.l7 is None or flow.l7.type is not L7Type.RESPONSE or not dns.ips:
            return
        name = dns.query.lower().rstrip(".")
        if not name:
            return
        ttl_ns = (min(max(dns.ttl * 10**9, MIN_ANSWER_TTL_NS), MAX_ANSWER_TTL_NS) if dns.ttl
                  else DEFAULT_ANSWER_TTL_NS)
        client = flow.destination.ip
        for address in dns.ips:
            key = (client, address)
            names = self._answers.get(key)
            if names is None:
                names = self._answers[key] = {}
            names[name] = flow.time_ns + ttl_ns
            self._answers.move_to_end(key)
        while len(self._answers) > self._max_keys:
            self._answers.popitem(last=False)

    def names_for(self, client: str, address: str, time_ns: int) -> tuple[str, ...]:
        """Names `client` resolved to `address` whose answer is still valid at `time_ns`, sorted."""
        names = self._answers.get((client, address))
        if not names:
            return ()
        return tuple(sorted(n for n, until in names.items() if until >= time_ns))
