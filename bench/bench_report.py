"""Report build and render time with 10,000 findings (synthetic) over a 1,000-pod, 200-policy cluster.

Usage: .venv/bin/python bench/bench_report.py [--findings N] [--namespaces N] [--browser]
Prints the time to build ReportData and to render each format, and the output sizes; with
--browser also how long headless Chromium takes to load and lay out the HTML (--dump-dom).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from auditor.model.findings import Finding, FindingKind, Severity
from auditor.model.k8s import (
    KubeObject,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Pod,
    PolicyDirection,
    WorkloadRef,
)
from auditor.policy.state import ClusterState
from auditor.report.build import ReportInputs, build_report
from auditor.report.data import Completeness
from auditor.report.render import FORMATS, render
from auditor.report.usage import RuleUsage

T0 = 1_763_632_800_000_000_000
MINUTE = 60_000_000_000
KINDS = list(FindingKind)
SEVERITIES = list(Severity)


def cluster(namespaces: int, pods_per_ns: int) -> ClusterState:
    objects: list[KubeObject] = []
    for n in range(namespaces):
        ns = f"team-{n:03d}"
        objects.append(Namespace(ns))
        for p in range(pods_per_ns):
            app = f"app-{p % 5}"
            objects.append(Pod(ns, f"{app}-{p}", labels={"app": app}, ips=(f"10.{n // 250}.{n % 250}.{p + 1}",),
                               workload=WorkloadRef("Deployment", app)))
        if n % 2 == 0:
            both = (PolicyDirection.INGRESS, PolicyDirection.EGRESS)
            objects.append(NetworkPolicy(ns, "default-deny", LabelSelector(), both, resource_version="1"))
        for a in range(2 + n % 3):
            objects.append(NetworkPolicy(ns, f"allow-app-{a}", LabelSelector({"app": f"app-{a}"}),
                                         (PolicyDirection.INGRESS,), ingress=(), resource_version="1"))
    return ClusterState.build(objects)


def findings(count: int, namespaces: int) -> list[Finding]:
    out = []
    for i in range(count):
        ns = f"team-{i % namespaces:03d}"
        kind = KINDS[i % len(KINDS)]
        out.append(Finding(kind=kind, severity=SEVERITIES[i % len(SEVERITIES)], namespace=ns,
                           workload=f"app-{i % 5}", pod=f"app-{i % 5}-{i % 20}", peer=f"other/peer-{i}",
                           peer_workload=f"other/peer-{i % 97}", port=1000 + i % 5000, protocol="TCP",
                           direction="ingress" if i % 2 else "egress", policies=(f"{ns}/default-deny@1",),
                           count=1 + i % 50, first_seen_ns=T0 + i, last_seen_ns=T0 + MINUTE + i,
                           sample_flow=f"uuid-{i}", message=f"synthetic finding {i} of {kind.value}",
                           details=(("query", f"host-{i}.example."),)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--findings", type=int, default=10_000)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--pods-per-namespace", type=int, default=20)
    parser.add_argument("--browser", action="store_true", help="also time headless Chromium on the HTML")
    args = parser.parse_args()
    state = cluster(args.namespaces, args.pods_per_namespace)
    found = findings(args.findings, args.namespaces)
    hour = Completeness(T0, T0 + 60 * MINUTE, 60 * MINUTE, 0, flows=10**6)
    inputs = ReportInputs(findings=found, completeness=hour,
                          source="files", source_detail="bench", state=state, usage=RuleUsage(),
                          flows_by_verdict={"FORWARDED": 900_000, "DROPPED": 100_000})
    start = time.perf_counter()
    data = build_report(inputs)
    print(f"{len(found)} findings, {len(state.pods)} pods, {len(state.policies)} policies, "
          f"{args.namespaces} namespaces")
    print(f"build ReportData: {time.perf_counter() - start:.3f} s")
    for fmt in FORMATS:
        start = time.perf_counter()
        text = render(data, fmt)
        elapsed = time.perf_counter() - start
        print(f"render {fmt:<8}: {elapsed:.3f} s, {len(text.encode()) / 1e6:.1f} MB")
    if args.browser:
        browser(render(data, "html"))


def browser(page_html: str) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium not installed: browser timing skipped")
        return
    with tempfile.TemporaryDirectory() as work:
        page = Path(work) / "report.html"
        page.write_text(page_html, encoding="utf-8")
        command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   f"--user-data-dir={work}/profile", "--dump-dom", page.as_uri()]
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True, timeout=300)
        print(f"chromium load + dump-dom of the HTML: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
