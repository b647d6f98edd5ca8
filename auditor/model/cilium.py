"""Cilium's own policy kinds as the engine sees them: cilium.io/v2 CiliumNetworkPolicy (CNP),
CiliumClusterwideNetworkPolicy (CCNP) and CiliumCIDRGroup.

Fields are kept as written (selector keys with their `k8s:`/`any:`/`reserved:` source prefixes,
ports as strings, protocols and ICMP types as given); `auditor.policy.cilium_validate` checks
them the way Cilium's CRD validation and policy parser do, and the engine applies Cilium's
semantics.  `None` and `()` differ where Cilium distinguishes them: an absent peer list selects
nothing of its kind, an explicitly empty one (`fromEndpoints: []`) makes the rule select no peer.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from auditor.model.labels import LabelSelector, no_labels


class CiliumKind(enum.Enum):
    """The two Cilium policy kinds (their `kind` as written in manifests)."""

    CNP = "CiliumNetworkPolicy"
    CCNP = "CiliumClusterwideNetworkPolicy"


class RuleSection(enum.Enum):
    """The four rule lists of a Cilium policy spec, by their field names."""

    INGRESS = "ingress"
    INGRESS_DENY = "ingressDeny"
    EGRESS = "egress"
    EGRESS_DENY = "egressDeny"

    @property
    def is_deny(self) -> bool:
        return self in (RuleSection.INGRESS_DENY, RuleSection.EGRESS_DENY)

    @property
    def is_ingress(self) -> bool:
        return self in (RuleSection.INGRESS, RuleSection.INGRESS_DENY)


@dataclass(frozen=True, slots=True)
class CiliumPort:
    """api.PortProtocol: `port` a number or a named port as a string ("" or "0": every port)."""

    port: str = ""
    end_port: int = 0
    protocol: str = "ANY"
    """TCP, UDP, SCTP or ANY (TCP, UDP and SCTP), as written."""


@dataclass(frozen=True, slots=True)
class PortRule:
    """One `toPorts` entry: ports, plus the kinds of L7 rules that hand the connection to the proxy."""

    ports: tuple[CiliumPort, ...] = ()
    l7: tuple[str, ...] = ()
    """Kinds of `rules` present: "http", "dns", "kafka", "l7proto"; empty for a pure L4 rule."""
    server_names: tuple[str, ...] = ()
    rules_json: str = ""
    """The `rules` mapping as written, as canonical JSON (sorted keys, no spaces); "" when absent.
    The engine reads only `l7`; this keeps the L7 rules themselves for export and the store."""


@dataclass(frozen=True, slots=True)
class ICMPType:
    """One `icmps[].fields[]` entry: family IPv4/IPv6 and a type number or name (e.g. EchoRequest)."""

    type: int | str
    family: str = "IPv4"
    entry: int = 0
    """Index of the `icmps[]` entry this field is in (Cilium limits each entry to 40 fields)."""


@dataclass(frozen=True, slots=True)
class CIDRPeer:
    """One `fromCIDRSet`/`toCIDRSet` entry: a CIDR minus `except`, or a CiliumCIDRGroup reference."""

    cidr: str = ""
    except_: tuple[str, ...] = ()
    group_ref: str = ""
    group_selector: LabelSelector | None = None


@dataclass(frozen=True, slots=True)
class ServicePeer:
    """One `toServices` entry: a Service by name or by label selector (k8sService / k8sServiceSelector)."""

    name: str = ""
    namespace: str = ""
    selector: LabelSelector | None = None
    """k8sServiceSelector.selector; None for a k8sService reference."""


@dataclass(frozen=True, slots=True)
class FQDNPeer:
    """One `toFQDNs` entry."""

    match_name: str = ""
    match_pattern: str = ""


@dataclass(frozen=True, slots=True)
class CiliumRule:
    """One rule of `ingress`, `ingressDeny`, `egress` or `egressDeny`.

    Peers (`from*` for ingress, `to*` for egress) are ORed; `requires` narrows every endpoint
    peer (deprecated `fromRequires`/`toRequires`).  A rule with ports or ICMP types but no peer
    field admits every peer on them; a rule with neither admits nothing.
    """

    endpoints: tuple[LabelSelector, ...] | None = None
    requires: tuple[LabelSelector, ...] = ()
    entities: tuple[str, ...] | None = None
    cidrs: tuple[str, ...] | None = None
    """fromCIDR / toCIDR."""
    cidr_sets: tuple[CIDRPeer, ...] | None = None
    services: tuple[ServicePeer, ...] | None = None
    fqdns: tuple[FQDNPeer, ...] | None = None
    nodes: tuple[LabelSelector, ...] | None = None
    """fromNodes / toNodes."""
    groups: int = 0
    """How many `toGroups` entries (cloud provider groups; not modelled)."""
    group_entries: tuple[str, ...] = ()
    """Each `toGroups` entry as written, as canonical JSON (sorted keys, no spaces)."""
    to_ports: tuple[PortRule, ...] = ()
    icmps: tuple[ICMPType, ...] = ()

    @property
    def has_peer_field(self) -> bool:
        return any(f is not None for f in (self.endpoints, self.entities, self.cidrs, self.cidr_sets,
                                          self.services, self.fqdns, self.nodes)) or bool(self.groups)


@dataclass(frozen=True, slots=True)
class CiliumPolicySpec:
    """One api.Rule: `spec`, or one entry of `specs`.

    Exactly one of `endpoint_selector` (pods) and `node_selector` (host policies, CCNP only) is set
    in a valid spec.  `enable_default_deny_*` None means true, as in Cilium.
    """

    endpoint_selector: LabelSelector | None = None
    node_selector: LabelSelector | None = None
    ingress: tuple[CiliumRule, ...] | None = None
    ingress_deny: tuple[CiliumRule, ...] | None = None
    egress: tuple[CiliumRule, ...] | None = None
    egress_deny: tuple[CiliumRule, ...] | None = None
    enable_default_deny_ingress: bool | None = None
    enable_default_deny_egress: bool | None = None
    description: str = ""

    def rules(self, section: RuleSection) -> tuple[CiliumRule, ...]:
        found = {RuleSection.INGRESS: self.ingress, RuleSection.INGRESS_DENY: self.ingress_deny,
                 RuleSection.EGRESS: self.egress, RuleSection.EGRESS_DENY: self.egress_deny}[section]
        return found or ()


@dataclass(frozen=True, slots=True)
class CiliumNetworkPolicy:
    """A CNP (namespaced) or CCNP (`namespace` ""), with `spec` and `specs` in one tuple.

    `specs[0]` is `spec` when the object has one (`has_spec`), followed by the `specs` entries.
    """

    kind: CiliumKind
    name: str
    namespace: str = ""
    specs: tuple[CiliumPolicySpec, ...] = ()
    has_spec: bool = True
    """True when `specs[0]` came from `spec` (so `specs` entries are numbered from specs[1])."""
    uid: str = ""
    resource_version: str = ""
    generation: int = 0
    labels: Mapping[str, str] = field(default_factory=no_labels, hash=False)

    @property
    def key(self) -> str:
        """`namespace/name` for a CNP, `name` for a CCNP."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def clusterwide(self) -> bool:
        return self.kind is CiliumKind.CCNP

    def spec_path(self, index: int) -> str:
        """The JSON path of `specs[index]` in the object: `spec` or `specs[N]`."""
        if self.has_spec:
            return "spec" if index == 0 else f"specs[{index - 1}]"
        return f"specs[{index}]"


@dataclass(frozen=True, slots=True)
class CiliumCIDRGroup:
    """cilium.io/v2alpha1 (or v2) CiliumCIDRGroup: cluster-scoped named CIDR list."""

    name: str
    cidrs: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=no_labels, hash=False)
    uid: str = ""
    resource_version: str = ""
