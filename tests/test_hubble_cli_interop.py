"""The real hubble CLI (1.19.4) against `auditor replay-server`: same output, same filter counts, status, lists.

hubble is looked up on PATH, then at ../shared/bin/hubble beside the repository; without it every
test here is skipped, saying why.  For each filter flag the replay server's count must equal
hubble's own local filtering (`hubble observe --input-file F <flag>`) of the same real fixture.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format

from auditor.hubble.cli_filters import STEPS, add_filter_arguments, filters_from_steps
from auditor.hubble.filters import parse_filter_json
from auditor.hubble.replay_server import ReplayServer

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "real-flows"
FILES = sorted(FIXTURES.glob("*.jsonl"))
HUBBLE = shutil.which("hubble") or (str(ROOT.parent / "shared" / "bin" / "hubble")
                                    if (ROOT.parent / "shared" / "bin" / "hubble").exists() else None)
pytestmark = pytest.mark.skipif(HUBBLE is None,
                                reason="the hubble CLI is neither on PATH nor at ../shared/bin/hubble")

FILTER_FLAGS: tuple[tuple[str, ...], ...] = (
    ("--verdict", "FORWARDED"), ("--verdict", "DROPPED"), ("--verdict", "REDIRECTED"),
    ("--drop-reason-desc", "POLICY_DENIED"),
    ("--namespace", "bookinfo"), ("--namespace", "kube-system"), ("-A",), ("--from-all-namespaces",),
    ("--to-all-namespaces",), ("--from-namespace", "bookinfo"), ("--to-namespace", "kube-system"),
    ("--pod", "bookinfo/productpage"), ("--pod", "reviews"), ("--from-pod", "default/kapinger"),
    ("--to-pod", "kube-system/coredns"), ("--namespace", "bookinfo", "--pod", "details"),
    ("--label", "k8s:app=reviews"), ("--label", "app=productpage"), ("--from-label", "reserved:host"),
    ("--to-label", "k8s:app in (details,reviews)"), ("--label", "!k8s:app"), ("--to-label", "reserved:world"),
    ("--from-label", "k8s:io.kubernetes.pod.namespace=kube-system,k8s-app=kube-dns"),
    ("--ip", "10.0.2.16"), ("--from-ip", "10.244.0.0/16"), ("--to-ip", "10.0.0.0/8"), ("--snat-ip", "1.1.1.1"),
    ("--ipv4",), ("--ipv6",), ("--ip-version", "v4"), ("--ip-version", "none"),
    ("--port", "53"), ("--from-port", "15020"), ("--to-port", "9080"),
    ("--protocol", "tcp"), ("--protocol", "UDP"), ("--protocol", "icmp"), ("--protocol", "icmpv6"),
    ("--protocol", "dns"), ("--protocol", "http"),
    ("--tcp-flags", "SYN"), ("--tcp-flags", "fin,ack"), ("--tcp-flags", "PSH"),
    ("--type", "trace"), ("--type", "l7"), ("--type", "policy-verdict"), ("--type", "trace:to-endpoint"),
    ("--type", "drop"), ("--type", "4:3"),
    ("--http-status", "200"), ("--http-status", "4+"), ("--http-method", "get"), ("--http-path", "/product.*"),
    ("--http-url", "metrics$"), ("--http-header", "Accept-Encoding:gzip"),
    ("--fqdn", "*.cluster.local"), ("--to-fqdn", "*.googleapis.com"), ("--from-fqdn", "*"),
    ("--node-name", "kind-control-plane"), ("--node-name", "gke-*"), ("--node-name", "kind-kind/"),
    ("--node-label", "kubernetes.io/os=linux"),
    ("--workload", "kapinger-good"), ("--from-workload", "kapinger-bad"), ("--to-workload", "Deployment/"),
    ("--cluster", "longtestnetworkflowcni"), ("--from-cluster", "other"),
    ("--interface", "lxc_health"), ("--identity", "1"), ("--from-identity", "host"), ("--to-identity", "4"),
    ("--traffic-direction", "ingress"), ("--traffic-direction", "egress"),
    ("--service", "kube-system/kube-dns"), ("--to-service", "bookinfo/"),
    ("--uuid", "60e8fedd-6d98-49d8-b7f6-cb84455757ab"), ("--trace-id", "abc"), ("--ip-trace-id", "7"),
    ("--encrypted",), ("--unencrypted",),
    ("--cel-expression", "_flow.verdict == Verdict.REDIRECTED"), ("--cel-expression", "has(_flow.l4.UDP)"),
    ("--cel-expression", "has(_flow.l4.TCP) && _flow.l4.TCP.destination_port == uint(9080)"),
    ("--cel-expression", "_flow.source.namespace == 'bookinfo' || _flow.IP.destination == '10.0.2.16'"),
    ("--allowlist", '{"dns_query":["details"]}'), ("--allowlist", '{"reply":[true]}'),
    ("--allowlist", '{"reply":[false]}'), ("--denylist", '{"source_label":["reserved:host"]}'),
    ("--not", "--namespace", "kube-system"), ("--not", "--verdict", "FORWARDED"),
    ("--verdict", "FORWARDED", "--not", "--protocol", "tcp"),
)
FORMATS = ("jsonpb", "json", "compact", "dict", "table")
DEFAULT_FIELD_MASK = ("time", "verdict", "ethernet", "IP", "l4", "source.identity", "source.namespace",
                      "source.pod_name", "destination.identity", "destination.namespace",
                      "destination.pod_name", "Type", "node_name", "l7", "event_type", "source_service",
                      "destination_service", "is_reply", "Summary", "ip_trace_id")
"""hubble/pkg/defaults FieldMask: what the CLI asks for with compact, dict and table output."""


def hubble(*args: str) -> subprocess.CompletedProcess[str]:
    assert HUBBLE is not None
    return subprocess.run([HUBBLE, *args], capture_output=True, text=True, timeout=60, check=False)


def count(result: subprocess.CompletedProcess[str]) -> int | str:
    """Flow lines on stdout, or the error text when hubble failed."""
    if result.returncode != 0:
        return "error: " + " ".join(result.stderr.split())[:80]
    return sum(1 for line in result.stdout.splitlines() if line.strip())


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[Path, str]]:
    """One replay server per fixture file."""
    running = [ReplayServer([path]) for path in FILES]
    try:
        yield {path: server.start() for path, server in zip(FILES, running, strict=True)}
    finally:
        for server in running:
            server.stop(0)


def counts(path: Path, address: str, flags: Sequence[str]) -> tuple[int | str, int | str]:
    local = count(hubble("observe", "--input-file", str(path), "--all", "-o", "jsonpb", *flags))
    served = count(hubble("observe", "--server", address, "--all", "-o", "jsonpb", *flags))
    return local, served


def test_every_filter_flag_counts_like_hubble(servers: dict[Path, str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """For every filter flag and real fixture, the replay server's count equals hubble's local filtering."""
    jobs = [(flags, path) for flags in FILTER_FLAGS for path in FILES]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda job: counts(job[1], servers[job[1]], job[0]), jobs))
    rows: dict[str, list[int]] = {}
    mismatches: list[str] = []
    for (flags, path), (local, served) in zip(jobs, results, strict=True):
        total = rows.setdefault(" ".join(flags), [0, 0, 0])
        total[0] += local if isinstance(local, int) else 0
        total[1] += served if isinstance(served, int) else 0
        if local != served:
            total[2] += 1
            mismatches.append(f"{' '.join(flags)} on {path.name}: hubble {local}, replay server {served}")
    with capsys.disabled():
        print(f"\n{'hubble filter flags':<72} {'hubble':>7} {'replay':>7}  files differing")
        for name, (local_total, served_total, differing) in rows.items():
            print(f"{name[:72]:<72} {local_total:>7} {served_total:>7}  {differing}")
    assert mismatches == []


BUILDER_FLAGS: tuple[tuple[str, ...], ...] = (
    ("-n", "shop", "--pod", "web"), ("--from-namespace", "a", "--to-namespace", "b", "--to-pod", "x"),
    ("--namespace", "a", "--namespace", "b", "--service", "api"), ("--pod", "a/x", "--pod", "y"),
    ("--type", "trace:to-endpoint", "--type", "l7"), ("-t", "1:133"), ("--tcp-flags", "syn,ack", "-4"),
    ("--workload", "Deployment/x", "--identity", "host"), ("--not", "-A", "--verdict", "DROPPED"),
    ("--verdict", "DROPPED", "--verdict", "ERROR", "--not", "--label", "k8s:app=x", "--not", "--port", "53"),
)


def raw_filters(flags: Sequence[str]) -> tuple[list[object], list[object]]:
    """(allowlist, denylist) as `hubble observe --print-raw-filters` builds them from the flags."""
    result = hubble("observe", "--print-raw-filters", *flags)
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(result.stdout) or {}
    return ([json.loads(item) for item in document.get("allowlist", [])],
            [json.loads(item) for item in document.get("denylist", [])])


@pytest.mark.parametrize("flags", FILTER_FLAGS + BUILDER_FLAGS, ids=" ".join)
def test_audit_filter_flags_build_hubbles_filters(flags: tuple[str, ...]) -> None:
    """auditor's hubble-style flags build exactly the FlowFilters the hubble CLI builds."""
    parser = argparse.ArgumentParser()
    add_filter_arguments(parser)
    args = parser.parse_args(list(flags))
    allow, deny = filters_from_steps(getattr(args, STEPS, None) or [])
    allow += [parse_filter_json(text) for text in args.hubble_allowlist]
    deny += [parse_filter_json(text) for text in args.hubble_denylist]

    def as_json(filters: list[object]) -> list[object]:
        return [json_format.MessageToDict(f, preserving_proto_field_name=True) for f in filters]  # type: ignore[arg-type]

    assert (as_json(allow), as_json(deny)) == raw_filters(flags)


def envelope_filled(line: str) -> str:
    """A jsonpb line with top-level time and node_name set from the flow, as a real server sends it."""
    document = json.loads(line)
    flow = document.get("flow", {})
    document.setdefault("node_name", flow.get("node_name"))
    document.setdefault("time", flow.get("time"))
    return json.dumps(document, sort_keys=True)


@pytest.mark.parametrize("output", FORMATS)
def test_output_equal_in_every_format(servers: dict[Path, str], output: str) -> None:
    """hubble prints the same for every fixture from the file or the server (which fills time/node_name)."""
    for path in FILES:
        local = hubble("observe", "--input-file", str(path), "--all", "-o", output)
        served = hubble("observe", "--server", servers[path], "--all", "-o", output,
                        "--use-default-field-masks=false")
        assert (served.returncode, local.returncode) == (0, 0), served.stderr + local.stderr
        if output in ("jsonpb", "json"):
            expected = [envelope_filled(line) for line in local.stdout.splitlines()]
            got = [json.dumps(json.loads(line), sort_keys=True) for line in served.stdout.splitlines()]
            assert got == expected, path.name
        else:
            assert served.stdout == local.stdout, path.name


def test_field_mask_trims_each_flow(servers: dict[Path, str]) -> None:
    """`--field-mask` makes the server send only those fields of each flow (and the envelope)."""
    path = FIXTURES / "hubble-otel-basic-sample-400-tcp-flows.jsonl"
    result = hubble("observe", "--server", servers[path], "--all", "-o", "jsonpb",
                    "--field-mask", "time,verdict,source.namespace,l4")
    flows = [json.loads(line)["flow"] for line in result.stdout.splitlines()]
    assert len(flows) == 400
    assert set().union(*(flow.keys() for flow in flows)) == {"time", "verdict", "source", "l4"}
    assert all(set(flow["source"]) <= {"namespace"} for flow in flows if "source" in flow)


def test_default_field_masks_print_like_the_trimmed_flows(servers: dict[Path, str], tmp_path: Path) -> None:
    """compact output with hubble's default masks equals hubble printing the same trimmed flows from a file."""
    path = FIXTURES / "hubble-otel-basic-sample-400-l7-redirected-flows.jsonl"
    masked = hubble("observe", "--server", servers[path], "--all", "-o", "jsonpb", "--field-mask",
                    ",".join(DEFAULT_FIELD_MASK))
    (tmp_path / "masked.jsonl").write_text(masked.stdout)
    local = hubble("observe", "--input-file", str(tmp_path / "masked.jsonl"), "--all", "-o", "compact")
    served = hubble("observe", "--server", servers[path], "--all", "-o", "compact")
    assert served.stdout == local.stdout
    assert served.stdout.count("\n") == 400


def test_status_is_healthy(servers: dict[Path, str]) -> None:
    """`hubble status` passes the gRPC health check and reports the recorded flows and nodes."""
    path = FIXTURES / "hubble-otel-basic-sample-330-dns-flows.jsonl"
    result = hubble("status", "--server", servers[path])
    assert result.returncode == 0, result.stderr
    assert "Healthcheck (via" in result.stdout
    assert "Ok" in result.stdout
    assert "Current/Max Flows: 330/330" in result.stdout
    assert "Connected Nodes: 4/4" in result.stdout


def test_list_nodes_and_namespaces(servers: dict[Path, str]) -> None:
    """`hubble list nodes` and `hubble list namespaces` list what the recording holds."""
    path = FIXTURES / "hubble-otel-basic-sample-400-tcp-flows.jsonl"
    nodes = hubble("list", "nodes", "--server", servers[path])
    spaces = hubble("list", "namespaces", "--server", servers[path])
    assert (nodes.returncode, spaces.returncode) == (0, 0), nodes.stderr + spaces.stderr
    assert "kind-control-plane" in nodes.stdout
    assert "bookinfo" in spaces.stdout


@pytest.mark.parametrize("kind", ["agent-events", "debug-events"])
def test_agent_and_debug_events_are_empty(servers: dict[Path, str], kind: str) -> None:
    """`hubble observe agent-events|debug-events` succeed with nothing to show."""
    result = hubble("observe", kind, "--server", servers[FILES[0]], "--last", "5")
    assert (result.returncode, result.stdout) == (0, ""), result.stderr
