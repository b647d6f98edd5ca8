"""The HTML report in real headless Chromium: sections and counts in the DOM, a screenshot, no script runs.

Skipped only when Chromium is missing and CI is not "true" (CI installs Debian's chromium).  The
screenshot is kept under test-artifacts/ (gitignored).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from auditor.cli import main
from auditor.report import html
from tests.report_support import DEMO, HOSTILE_PEER, HOSTILE_QUERY, ROOT, hostile_findings, report, shop_state

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
ARTIFACTS = ROOT / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if CHROMIUM is None and os.environ.get("CI") != "true":
    pytest.skip("chromium is not installed (CI installs it)", allow_module_level=True)


def chromium(page: Path, profile: Path, *extra: str) -> str:
    assert CHROMIUM is not None, "chromium is required in CI"
    command = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class Dom(HTMLParser):
    """Elements (tag, attributes) and the text of each element with an id, from a dumped DOM."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.titles: list[str] = []
        self._open = ""
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        self._open = tag
        if tag == "title":
            self.titles.append("")

    def handle_endtag(self, tag: str) -> None:
        self._open = ""

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._open == "title":
            self.titles[-1] += data

    def by_id(self, element_id: str) -> dict[str, str | None]:
        return next(attrs for _, attrs in self.elements if attrs.get("id") == element_id)


@pytest.fixture(scope="module")
def demo_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    page = tmp_path_factory.mktemp("browser") / "report.html"
    assert main(["report", "--manifests", str(DEMO / "cluster.yaml"), "--flows", str(DEMO / "flows.jsonl"),
                 "--format", "html", "--output", str(page)]) == 0
    return page


@pytest.fixture(scope="module")
def demo_dom(demo_page: Path) -> Dom:
    """The demo scenario's HTML report, rendered by Chromium; a screenshot is kept as an artifact."""
    page, work = demo_page, demo_page.parent
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report-demo.png"
    shot.unlink(missing_ok=True)
    chromium(page, work / "profile-shot", f"--screenshot={shot}", "--window-size=1280,2000")
    assert shot.stat().st_size > 10_000
    return Dom(chromium(page, work / "profile-dom", "--dump-dom"))


@pytest.fixture(scope="module")
def hostile_dom(tmp_path_factory: pytest.TempPathFactory) -> Dom:
    work = tmp_path_factory.mktemp("hostile")
    page = work / "hostile.html"
    page.write_text(html.render(report(hostile_findings(), shop_state())), encoding="utf-8")
    return Dom(chromium(page, work / "profile", "--dump-dom"))


class TestDemoInBrowser:
    def test_every_section_present(self, demo_dom: Dom) -> None:
        """The six sections and the findings table exist in the rendered DOM."""
        ids = {attrs.get("id") for _, attrs in demo_dom.elements}
        assert {"summary", "completeness", "controls", "namespaces", "evidence", "findings", "appendix"} <= ids

    def test_counts_match_the_data(self, demo_dom: Dom) -> None:
        """Total findings card equals the findings table's rows; 562 demo flows are shown."""
        total = demo_dom.by_id("total-findings")["data-value"]
        assert total == demo_dom.by_id("findings-table")["data-rows"]
        assert int(total or 0) > 0
        assert demo_dom.by_id("total-flows")["data-value"] == "562"

    def test_charts_are_inline_svg(self, demo_dom: Dom) -> None:
        """Charts are inline <svg> elements; nothing is loaded from elsewhere."""
        assert sum(1 for tag, _ in demo_dom.elements if tag == "svg") >= 3
        assert not [a for tag, a in demo_dom.elements if tag in ("script", "link", "iframe", "img")]


    def test_prints_one_section_per_page(self, demo_page: Path) -> None:
        """Printed to PDF, each of the seven sections starts a page (more pages than sections)."""
        pdf = demo_page.parent / "report.pdf"
        chromium(demo_page, demo_page.parent / "profile-pdf", "--no-pdf-header-footer", f"--print-to-pdf={pdf}")
        pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes()))
        assert pages >= 7
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(pdf, ARTIFACTS / "report-demo.pdf")


class TestHostileInBrowser:
    def test_no_element_created_from_wire_strings(self, hostile_dom: Dom) -> None:
        """The hostile DNS name and peer created no <img>/<script> and no on* handler in the DOM."""
        assert not [tag for tag, _ in hostile_dom.elements if tag in ("img", "script")]
        assert not [a for _, a in hostile_dom.elements if any(k.startswith("on") for k in a)]

    def test_hostile_names_shown_as_text(self, hostile_dom: Dom) -> None:
        """The query and the peer appear verbatim as text the reader can see."""
        text = "".join(hostile_dom.text)
        assert HOSTILE_QUERY in text
        assert HOSTILE_PEER in text

    def test_title_not_changed_by_script(self, hostile_dom: Dom) -> None:
        """The peer's script would have set document.title to 'pwned'; the title is unchanged."""
        assert hostile_dom.titles[0] == "Network policy compliance report"
