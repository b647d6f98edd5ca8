"""What one step of an analysis session yields: a frozen delta the store applies in one transaction.

The session (`auditor.findings.session`) gathers events into a delta; the store applies it
(`Store.apply`), so a flush is all of a delta or none of it.  A delta a failed flush could not
write is merged with the next one (`then`), which is why every part of it is additive or replacing.
"""

from __future__ import annotations

from dataclasses import dataclass

from auditor.model.decision import CCNP_KIND, KNP_KIND, PolicyId
from auditor.model.findings import Finding, merge_findings
from auditor.model.flows import Endpoint

HOUR_NS = 3_600_000_000_000

PolicyKey = tuple[str, str, str]
"""(namespace, name, kind) of a policy; namespace "" for a CiliumClusterwideNetworkPolicy."""


def hour_of(time_ns: int) -> int:
    """The start of the hour that holds `time_ns`."""
    return time_ns - time_ns % HOUR_NS


def policy_column(key: PolicyKey) -> str:
    """How a policy is written in the store's counter rows: `PolicyId.ref` (`ns/name` for a
    NetworkPolicy, `CiliumNetworkPolicy ns/name`, `CiliumClusterwideNetworkPolicy name`)."""
    namespace, name, kind = key
    return PolicyId(namespace, name, kind=kind).ref


def policy_key(column: str, row_namespace: str = "") -> PolicyKey:
    """The inverse of `policy_column` (an `@revision` suffix is dropped; a bare NetworkPolicy name
    takes the row's namespace)."""
    kind, _, ref = column.rpartition(" ")
    namespace, _, rest = ref.rpartition("/")
    name = rest.split("@", 1)[0]
    if kind == CCNP_KIND:
        return "", name, kind
    return namespace or row_namespace, name, kind or KNP_KIND


@dataclass(frozen=True, slots=True)
class HourCount:
    """Flows counted in the hour of their own time.

    Without `policy`: flows by dataplane verdict and direction.  With `policy`: the flows whose
    enforced side decision was attributed to that policy, `verdict` ALLOWED or DROPPED.
    """

    hour_ns: int
    verdict: str
    direction: str
    count: int
    policy: PolicyKey | None = None

    @property
    def namespace(self) -> str:
        return self.policy[0] if self.policy else ""


RuleHitKey = tuple[str, str, str, str, str]
"""(namespace, policy name, policy kind, Ingress|Egress, rule path) of a rule that decided a flow's
enforced side (`RuleMatch.path`: `rule 0`, `specs[1].egressDeny[0]`); direction and path "" for a
policy that isolated a denied side."""


@dataclass(frozen=True, slots=True)
class RuleHourCount:
    """Flows a rule decided in the hour of their own time; `key` None for the hour's judged flows
    (the row that says rule hits were recorded for that hour)."""

    hour_ns: int
    count: int
    key: RuleHitKey | None = None


@dataclass(frozen=True, slots=True)
class DataGap:
    """A span with missing data: lost events (`lost-events:<source>[@node]`) or a stream outage."""

    from_ns: int
    to_ns: int
    reason: str
    lost_count: int = 0


STREAM_DOWN = "stream-down"
"""The reason of a gap while the flow stream was disconnected."""


@dataclass(frozen=True, slots=True)
class PolicyChangeEntry:
    """One change of a policy of any kind, with the time it took effect and its whole manifest."""

    time_ns: int
    change_type: str
    """ADDED, MODIFIED or DELETED."""
    namespace: str
    name: str
    revision: str
    kind: str
    manifest: str
    """The policy as JSON (the app renders it; the core does not serialise)."""


ConnectionCountKey = tuple[str, str, int, str, str, str]
"""(source, destination, port, protocol, direction, verdict) of a `ConnectionCount`."""


@dataclass(frozen=True, slots=True)
class ConnectionCount:
    """Flows of one distinct judged connection: what `auditor whatif --store` re-judges.

    `source` and `destination` are the bounded names of `findings.resolve.Resolved.peer_workload`
    (`namespace/workload`, `reserved:<identity>`, `cidr:<prefix>`); port and protocol as the engine
    takes them (`correlate.policy_l4`); `direction` the flow's observation point (ingress, egress);
    `verdict` the dataplane's class (allowed, denied by policy, audited).  The sample is the newest
    flow's: its id and its two endpoints (the fields endpoint resolution reads) and node, so a reader
    resolves them in the state in force at `last_ns` as it would the flow.
    """

    source: str
    destination: str
    port: int
    protocol: str
    direction: str
    verdict: str
    count: int
    first_ns: int
    last_ns: int
    sample_flow: str
    source_endpoint: Endpoint
    destination_endpoint: Endpoint
    node: str = ""

    @property
    def key(self) -> ConnectionCountKey:
        return self.source, self.destination, self.port, self.protocol, self.direction, self.verdict

    def merge(self, later: ConnectionCount) -> ConnectionCount:
        """Both as one: counts add, the span widens, the newest sample stays."""
        newest = later if later.last_ns >= self.last_ns else self
        return ConnectionCount(
            *self.key, count=self.count + later.count, first_ns=min(self.first_ns, later.first_ns),
            last_ns=newest.last_ns, sample_flow=newest.sample_flow, source_endpoint=newest.source_endpoint,
            destination_endpoint=newest.destination_endpoint, node=newest.node)


@dataclass(frozen=True, slots=True)
class AnalysisDelta:
    """Everything an analysis session gathered since its previous delta."""

    findings: tuple[Finding, ...] = ()
    """Runtime findings, merged per key over the delta (the store merges them with what it holds)."""
    static: tuple[Finding, ...] | None = None
    """The static findings of the newest cluster state when it changed: they *replace* the stored
    static findings (those missing are resolved); None when the state did not change."""
    counts: tuple[HourCount, ...] = ()
    windows: tuple[tuple[int, int], ...] = ()
    """Coverage windows [from_ns, to_ns] of the flows analysed."""
    gaps: tuple[DataGap, ...] = ()
    policy_changes: tuple[PolicyChangeEntry, ...] = ()
    invalid: tuple[str, ...] | None = None
    """Refs (`Kind ns/name`) of the newest state's invalid objects when it changed, else None."""
    rule_hits: tuple[RuleHourCount, ...] = ()
    connections: tuple[ConnectionCount, ...] = ()
    """Distinct judged connections, one per key (kept only by sessions asked to keep them)."""

    @property
    def empty(self) -> bool:
        return not (self.findings or self.static is not None or self.counts or self.windows or self.gaps
                    or self.policy_changes or self.invalid is not None or self.rule_hits or self.connections)

    def then(self, later: AnalysisDelta) -> AnalysisDelta:
        """This delta followed by `later`, as one (what a failed flush leaves is merged into the next)."""
        merged = {f.key: f for f in self.findings}
        for finding in later.findings:
            older = merged.get(finding.key)
            merged[finding.key] = finding if older is None else merge_findings(older, finding)
        counts: dict[tuple[int, str, str, PolicyKey | None], int] = {}
        for row in (*self.counts, *later.counts):
            key = (row.hour_ns, row.verdict, row.direction, row.policy)
            counts[key] = counts.get(key, 0) + row.count
        rule_hits: dict[tuple[int, RuleHitKey | None], int] = {}
        for hit in (*self.rule_hits, *later.rule_hits):
            rule_hits[(hit.hour_ns, hit.key)] = rule_hits.get((hit.hour_ns, hit.key), 0) + hit.count
        connections = {c.key: c for c in self.connections}
        for connection in later.connections:
            known = connections.get(connection.key)
            connections[connection.key] = connection if known is None else known.merge(connection)
        return AnalysisDelta(
            findings=tuple(merged.values()),
            static=later.static if later.static is not None else self.static,
            counts=tuple(HourCount(h, v, d, n, p) for (h, v, d, p), n in counts.items()),
            windows=self.windows + later.windows,
            gaps=self.gaps + later.gaps,
            policy_changes=self.policy_changes + later.policy_changes,
            invalid=later.invalid if later.invalid is not None else self.invalid,
            rule_hits=tuple(RuleHourCount(h, n, k) for (h, k), n in rule_hits.items()),
            connections=tuple(connections.values()),
        )
