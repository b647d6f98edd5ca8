"""`auditor demo`: the whole product on a bundled synthetic capture, no cluster needed.

The replay server serves the bundled flows over real gRPC; the daemon reads them exactly as
it reads Hubble Relay, judges them against the bundled manifests, keeps findings in a SQLite
store and serves /metrics; then `report.html` is written and a short summary printed.

The demo judges with DEMO_FLAGS (the capture's kubelet probes are node-to-pod traffic, which only
host-firewall semantics judge); it prints them and the `auditor audit` command that gives the same
numbers, so nothing is switched on silently.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TextIO

from auditor.app.daemon import Daemon, build_daemon
from auditor.app.report import ReportOptions, run_report
from auditor.app.settings import RunSettings, default_values
from auditor.errors import AuditorError, InputError
from auditor.hubble.replay_server import ReplayServer
from auditor.log import configure
from auditor.model.findings import Finding, Severity
from auditor.store import open_store

DEMO_DIR = resources.files("auditor") / "data" / "demo"
SETTLE_TIMEOUT_S = 60.0
DEMO_FLAGS = ("--enforce-node-traffic",)
"""The settings the demo judges with (beyond the defaults), printed with the equivalent audit command."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    out: Path
    metrics_address: str = "127.0.0.1:9967"
    serve: bool = False


def demo_files() -> tuple[str, str]:
    """Paths of the bundled manifests and flows."""
    return str(DEMO_DIR / "cluster.yaml"), str(DEMO_DIR / "flows.jsonl")


def run_demo(options: DemoOptions, out: TextIO, wait_forever: Callable[[], None] | None = None) -> int:
    """Run the demo; returns the exit code."""
    configure(fmt="console", level="error")
    manifests, flows = demo_files()
    try:
        options.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out: cannot create the directory: {exc.strerror or exc}",
                         path=str(options.out)) from exc
    store_path = options.out / "auditor-demo.db"
    store_path.unlink(missing_ok=True)
    server = ReplayServer([flows], listen="127.0.0.1:0")
    address = server.start()
    daemon = build_daemon(demo_settings(address, manifests, f"sqlite://{store_path.resolve()}", options))
    thread = threading.Thread(target=_run_daemon, args=(daemon,), name="demo-daemon", daemon=True)
    try:
        thread.start()
        _settle(daemon, expected=len(server.records))
        report = options.out / "report.html"
        run_report(ReportOptions(format="html", output=str(report), store=f"sqlite://{store_path.resolve()}",
                                 manifests=(manifests,), enforce_node_traffic=True))
        _summarise(out, store_path, report, daemon.server.url)
        print(f"Judged with {' '.join(DEMO_FLAGS)}; the same numbers offline:\n  auditor audit --manifests "
              f"{manifests} --flows {flows} {' '.join(DEMO_FLAGS)}", file=out)
        if options.serve:
            print(f"Serving {daemon.server.url}/metrics until Ctrl-C.", file=out)
            (wait_forever or _sleep_until_interrupted)()
    finally:
        daemon.stop.set()
        thread.join(timeout=10)
        server.stop()
    return 0


def demo_settings(address: str, manifests: str, store: str, options: DemoOptions) -> RunSettings:
    """`auditor run` defaults, the demo's files and address, and DEMO_FLAGS."""
    values = default_values()
    values.update(hubble_server=address, manifests=[manifests], store=store, flush_interval=0.5,
                  metrics_address=options.metrics_address,
                  enforce_node_traffic="--enforce-node-traffic" in DEMO_FLAGS)
    return RunSettings.from_values(values)


def _run_daemon(daemon: Daemon) -> None:
    """The daemon's run on the demo's thread; a failure to start (port in use) is handed to _settle."""
    try:
        daemon.run()
    except BaseException as exc:
        daemon.fatal.append(exc)


def _settle(daemon: Daemon, *, expected: int) -> None:
    """Wait until the daemon has analysed every served event and flushed the findings."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        if daemon.fatal:
            failure = daemon.fatal[0]
            if isinstance(failure, AuditorError):
                raise failure
            raise AuditorError(f"demo: the daemon failed: {failure}")
        if daemon.analyzer.flushed_flows >= expected:  # the daemon's own flush wrote them all
            return
        time.sleep(0.1)
    raise AuditorError(
        f"demo: the daemon did not analyse the {expected} demo flows within {SETTLE_TIMEOUT_S:.0f} s"
    )


def _summarise(out: TextIO, store_path: Path, report: Path, metrics_url: str) -> None:
    with open_store(f"sqlite://{store_path.resolve()}") as store:
        findings = store.findings(open_only=True)
    by_severity = Counter(f.severity for f in findings)
    print("auditor demo: a synthetic shop (frontend -> api -> db) judged against its NetworkPolicies\n",
          file=out)
    print(f"{len(findings)} open findings: " + ", ".join(
        f"{by_severity[s]} {s.value}" for s in reversed(Severity) if by_severity[s]), file=out)
    for finding in _top(findings):
        print(f"  [{finding.severity.value:>6}] {finding.kind.value:<22} {finding.message}", file=out)
    print(f"\nReport:  {report.resolve()}", file=out)
    print(f"Store:   {store_path.resolve()}", file=out)
    print(f"Metrics: {metrics_url}/metrics", file=out)
    print("Explain: auditor explain --manifests " + str(DEMO_DIR / "cluster.yaml")
          + " --from shop/frontend-7d9c5b7f4-x2k8p --to shop/api-5f6d8c9b7-q7w3e --port 8080", file=out)
    data, proposal = f"--manifests {DEMO_DIR / 'cluster.yaml'} --flows {DEMO_DIR / 'flows.jsonl'}", (
        report.parent.resolve() / "recommended.yaml")
    print(f"Recommend: auditor recommend {data} --output {proposal}\n"
          f"Whatif:    auditor whatif {data} --proposed {proposal} --fail-on newly-denied", file=out)


def _top(findings: list[Finding], limit: int = 8) -> list[Finding]:
    """The most severe runtime findings first, one per kind."""
    ordered = sorted(findings, key=lambda f: (-f.severity.rank, f.kind.is_static, -f.count, f.kind.value))
    seen: set[str] = set()
    top = []
    for finding in ordered:
        if finding.kind.value not in seen:
            seen.add(finding.kind.value)
            top.append(finding)
    return top[:limit]


def _sleep_until_interrupted() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return
