"""Value syntax of Cilium policy fields, as the CRD schema and the agent's parser read them.

Facts from cilium/cilium (1.16-1.18): `pkg/k8s/apis/cilium.io/client/crds/v2/ciliumnetworkpolicies.yaml`
(enums, patterns, `format: cidr`), `pkg/policy/api/rule_validation.go` (`PortProtocol` and `CIDRRule`
validation), `pkg/iana/svcname.go` (named ports), `pkg/policy/api/icmp.go` (ICMP type names) and
`pkg/policy/api/fqdn.go` / `pkg/fqdn/matchpattern` (DNS names and patterns).  Pure functions;
nothing raises.
"""

from __future__ import annotations

import ipaddress
import re

from auditor.policy.validate import label_key_problem

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

KNOWN_ENTITIES = ("all", "world", "cluster", "host", "init", "ingress", "unmanaged", "remote-node",
                  "health", "none", "kube-apiserver")
"""The `fromEntities`/`toEntities` enum of the CRD (unchanged from 1.16 to 1.18)."""

PROTOCOLS = ("TCP", "UDP", "SCTP", "ANY")
"""The `toPorts[].ports[].protocol` enum of the CRD (case-sensitive: the API server checks it first)."""

ICMP_FAMILIES = ("IPv4", "IPv6")

_ICMPV4_NAMES = {
    "EchoReply": 0, "DestinationUnreachable": 3, "Redirect": 5, "Echo": 8, "EchoRequest": 8,
    "RouterAdvertisement": 9, "RouterSelection": 10, "TimeExceeded": 11, "ParameterProblem": 12,
    "Timestamp": 13, "TimestampReply": 14, "Photuris": 40, "ExtendedEchoRequest": 42, "ExtendedEchoReply": 43,
}
_ICMPV6_NAMES = {
    "DestinationUnreachable": 1, "PacketTooBig": 2, "TimeExceeded": 3, "ParameterProblem": 4,
    "EchoRequest": 128, "EchoReply": 129, "MulticastListenerQuery": 130, "MulticastListenerReport": 131,
    "MulticastListenerDone": 132, "RouterSolicitation": 133, "RouterAdvertisement": 134,
    "NeighborSolicitation": 135, "NeighborAdvertisement": 136, "RedirectMessage": 137, "RouterRenumbering": 138,
    "ICMPNodeInformationQuery": 139, "ICMPNodeInformationResponse": 140,
    "InverseNeighborDiscoverySolicitation": 141, "InverseNeighborDiscoveryAdvertisement": 142,
    "HomeAgentAddressDiscoveryRequest": 144, "HomeAgentAddressDiscoveryReply": 145,
    "MobilePrefixSolicitation": 146, "MobilePrefixAdvertisement": 147, "DuplicateAddressRequestCodeSuffix": 157,
    "DuplicateAddressConfirmationCodeSuffix": 158, "ExtendedEchoRequest": 160, "ExtendedEchoReply": 161,
}
# The CRD's `type` pattern lists names by hand: it misspells "ExtendedEcho Reply" and so rejects
# "ExtendedEchoReply" in both families, although the agent's tables know it.
_CRD_ICMP_NAMES = (frozenset(_ICMPV4_NAMES) | frozenset(_ICMPV6_NAMES)) - {"ExtendedEchoReply"}
_CRD_ICMP_NUMBER = re.compile(r"[0-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5]")

_SVC_NAME = re.compile(r"([a-zA-Z0-9]-?)*[a-zA-Z](-?[a-zA-Z0-9])*")
# The CRD patterns `^([-a-zA-Z0-9_]+[.]?)+$` (and with `*`) rewritten without nested quantifiers.
_FQDN_NAME = re.compile(r"[-a-zA-Z0-9_]+(\.[-a-zA-Z0-9_]+)*\.?")
_FQDN_PATTERN = re.compile(r"[-a-zA-Z0-9_*]+(\.[-a-zA-Z0-9_*]+)*\.?")
_SERVER_NAME = re.compile(r"(\*?\*\.)?[-a-zA-Z0-9_]+(\.[-a-zA-Z0-9_]+)*\.?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_SOURCE = re.compile(r"[A-Za-z0-9]+")
FQDN_MAX_LENGTH = 255


def _icmp_names(family: str) -> dict[str, int]:
    return _ICMPV6_NAMES if family == "IPv6" else _ICMPV4_NAMES


def icmp_type_problem(family: str, value: int | str) -> str | None:
    """Why Cilium rejects this `icmps[].fields[]` type for `family`, or None when it accepts it.

    A string must match the CRD pattern (0-255 without leading zeros, or a listed name) and a name
    must be one of the family's names in the agent (`ICMPField.UnmarshalJSON`).  The API server does
    not check the range of an integer; anything outside 0-255 is not an ICMP type (the field is
    documented as an 8-bit code) and is reported too.
    """
    if isinstance(value, int):
        return None if 0 <= value <= 255 else f"ICMP type {value} is out of range: must be 0-255 or a type name"
    if _CRD_ICMP_NUMBER.fullmatch(value):
        return None
    names = _icmp_names(family)
    if value in names and value in _CRD_ICMP_NAMES:
        return None
    accepted = ", ".join(n for n in names if n in _CRD_ICMP_NAMES)
    return f"unknown {family} ICMP type {value!r}: use a number 0-255 or one of {accepted}"


def icmp_type_number(family: str, value: int | str) -> int | None:
    """The ICMP type number of an `icmps[].fields[]` entry (`EchoRequest` is 8 for IPv4, 128 for
    IPv6), None when Cilium would not accept it for that family."""
    if family not in ICMP_FAMILIES or icmp_type_problem(family, value) is not None:
        return None
    if isinstance(value, int):
        return value
    return int(value) if value.isdigit() else _icmp_names(family)[value]


def is_svc_name(text: str) -> bool:
    """An IANA service name as Cilium reads named ports (case-insensitive, 1-15 characters)."""
    return 0 < len(text) <= 15 and _SVC_NAME.fullmatch(text) is not None


_DIGITS = "0123456789abcdef"


def _underscores_ok(text: str) -> bool:
    """Go's rule: an underscore only between digits, or between a base prefix and a digit."""
    saw, start, hex_digits = "^", 0, False
    if len(text) >= 2 and text[0] == "0" and text[1] in "box":
        saw, start, hex_digits = "0", 2, text[1] == "x"
    for char in text[start:]:
        if char.isdigit() or (hex_digits and char in "abcdef"):
            saw = "0"
        elif char == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
    return saw != "_"


def _go_parse_uint16(text: str) -> int | None:
    """Go's `strconv.ParseUint(text, 0, 16)`: prefixes 0x/0o/0b, a leading 0 means octal, `_` separators."""
    if not text or not text.isascii():
        return None
    lower = text.lower()
    base, body = 10, lower
    if lower[0] == "0" and len(lower) > 1:
        if len(lower) >= 3 and lower[1] in "box":
            base, body = {"b": 2, "o": 8, "x": 16}[lower[1]], lower[2:]
        else:
            base, body = 8, lower[1:]
    value = 0
    for char in body:
        if char == "_":
            continue
        digit = _DIGITS.find(char)
        if not 0 <= digit < base:
            return None
        value = value * base + digit
        if value > 65535:
            return None
    if "_" in lower and not _underscores_ok(lower):
        return None
    return value


def parse_port(text: str) -> int | str | None:
    """A `ports[].port` as the agent reads it: a named port (lowercased), a number, or None.

    Numbers go through Go's `ParseUint(port, 0, 16)`, so "017" is port 15 and "1_000" is 1000; the
    CRD pattern accepts whatever the agent does (it anchors numbers only at the start).
    """
    if is_svc_name(text):
        return text.lower()
    return _go_parse_uint16(text)


def parse_prefix(text: str) -> Network | None:
    """An `address/bits` CIDR the way both the CRD (`format: cidr`) and `netip.ParsePrefix` accept it.

    No bare address, no IPv4 octet or prefix length with a leading zero, no IPv6 zone; host bits are
    allowed (the prefix is masked).
    """
    address, slash, bits = text.partition("/")
    if not slash or not (bits.isascii() and bits.isdigit()) or (len(bits) > 1 and bits[0] == "0"):
        return None
    if "%" in address or not address.isascii() or address.strip() != address:
        return None
    try:
        return ipaddress.ip_network(f"{ipaddress.ip_address(address)}/{bits}", strict=False)
    except ValueError:
        return None


def cilium_label_key_problem(key: str) -> str | None:
    """A selector key with an optional `source:` prefix (`k8s:app`), as `labels.IsValidCiliumLabelKey`."""
    source, colon, rest = key.partition(":")
    if colon:
        if ":" in rest:
            return "only one ':' may separate the label source from the key"
        if not _LABEL_SOURCE.fullmatch(source):
            return "the label source before ':' must be alphanumeric"
        key = rest
    return label_key_problem(key)


def fqdn_problem(value: str, *, pattern: bool) -> str | None:
    """Why a `matchName` (or with `pattern`, a `matchPattern`) is rejected by the CRD schema."""
    if len(value) > FQDN_MAX_LENGTH:
        return f"must be at most {FQDN_MAX_LENGTH} characters"
    regex, chars = (_FQDN_PATTERN, "letters, digits, '-', '_' and '*'") if pattern else (
        _FQDN_NAME, "letters, digits, '-' and '_'")
    if not regex.fullmatch(value):
        return f"must be labels of {chars} separated by single dots (an optional trailing dot)"
    return None


def server_name_problem(value: str) -> str | None:
    """`serverNames` entries: never empty (agent); a DNS name, optionally `*.` or `**.` first (1.18 CRD)."""
    if not value:
        return "empty server name is not allowed"
    if len(value) > FQDN_MAX_LENGTH or not _SERVER_NAME.fullmatch(value):
        return "must be a DNS name, optionally starting with '*.' or '**.'"
    return None


def object_name_problem(name: str) -> str | None:
    if not name:
        return "is required"
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(name):
        return f"{name!r} must be a lowercase RFC 1123 subdomain"
    return None


def namespace_problem(namespace: str) -> str | None:
    if not namespace:
        return "is required for a CiliumNetworkPolicy"
    if len(namespace) > 63 or not _DNS1123_LABEL.fullmatch(namespace):
        return f"{namespace!r} must be a lowercase RFC 1123 label"
    return None


def cidr_group_ref_problem(ref: str) -> str | None:
    """`cidrGroupRef` names a CiliumCIDRGroup: a DNS subdomain of at most 253 characters (CRD)."""
    if len(ref) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(ref):
        return f"{ref!r} must be a CiliumCIDRGroup name (lowercase RFC 1123 subdomain)"
    return None
