"""`auditor demo`: the whole product on the bundled capture, over real gRPC."""

from __future__ import annotations

import io
from pathlib import Path

from auditor.app.demo import DemoOptions, demo_files, run_demo
from auditor.store import open_store


class TestDemo:
    def test_demo_writes_report_and_summary(self, tmp_path: Path) -> None:
        """The demo analyses every bundled flow, writes report.html and names the scenario's problems."""
        out = io.StringIO()
        code = run_demo(DemoOptions(out=tmp_path, metrics_address="127.0.0.1:0"), out)
        text = out.getvalue()
        assert code == 0
        report = (tmp_path / "report.html").read_text(encoding="utf-8")
        assert "<html" in report.lower()
        assert f"Report:  {tmp_path / 'report.html'}" in text
        for kind in ("dns-denied", "health-check-blocked", "unexpected-drop", "missing-dns-egress"):
            assert kind in text, kind

    def test_demo_store_holds_the_scenario(self, tmp_path: Path) -> None:
        """The scenario's one unexpected drop is frontend -> api:8080, attributed to api-from-frontend."""
        run_demo(DemoOptions(out=tmp_path, metrics_address="127.0.0.1:0"), io.StringIO())
        with open_store(f"sqlite://{(tmp_path / 'auditor-demo.db').resolve()}") as store:
            findings = store.findings()
        unexpected = [f for f in findings if f.kind.value == "unexpected-drop"]
        assert [(f.workload, f.peer_workload, f.port, f.count) for f in unexpected] == [
            ("api", "shop/frontend", 8080, 1)
        ]
        assert unexpected[0].policies == ("shop/api-from-frontend@1000",)
        assert {f.namespace for f in findings if f.kind.value == "no-default-deny"} == {"legacy", "kube-system"}

    def test_bundled_files_are_packaged(self) -> None:
        """The demo capture and manifests ship inside the package."""
        manifests, flows = demo_files()
        assert Path(manifests).is_file()
        assert len(Path(flows).read_text(encoding="utf-8").splitlines()) > 500
