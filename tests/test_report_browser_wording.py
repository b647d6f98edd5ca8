"""The store-mode demo report as a reviewer sees it in headless Chromium: a screenshot kept in
test-artifacts/report-store-demo.png, and the rendered text checked for the wording a reviewer
trips on (generation line, plurals, fixed-precision times, rule usage known, the score's exclusion)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from auditor import __version__
from auditor.app.report import ReportOptions, run_report
from tests.test_report_html_browser import ARTIFACTS, Dom, chromium
from tests.test_report_release import MANIFESTS, PLURAL_SLIPS, TIME, _demo_store


@pytest.fixture(scope="module")
def store_text(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The visible text of the store-mode demo report, from Chromium's DOM; the screenshot is kept."""
    work = tmp_path_factory.mktemp("store-browser")
    page = work / "report.html"
    run_report(ReportOptions(format="html", output=str(page), store=_demo_store(work), manifests=(MANIFESTS,)))
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report-store-demo.png"
    shot.unlink(missing_ok=True)
    chromium(page, work / "profile-shot", f"--screenshot={shot}", "--window-size=1280,2400")
    assert shot.stat().st_size > 10_000
    dom = Dom(chromium(page, work / "profile-dom", "--dump-dom"))
    return " ".join(" ".join(dom.text).split())


class TestStoreReportWording:
    def test_generated_by_this_auditor(self, store_text: str) -> None:
        """The header says when and by which auditor version the report was written."""
        assert re.search(rf"Generated \S+\.\d{{3}}Z by auditor {re.escape(__version__)}", store_text)

    def test_no_plural_slips(self, store_text: str) -> None:
        """No "1 pods", "1 coverage windows", "1 of 1 pods ... are" in the rendered text."""
        assert not PLURAL_SLIPS.findall(store_text), PLURAL_SLIPS.findall(store_text)[:5]
        assert "1 coverage window recorded" in store_text

    def test_times_have_three_fraction_digits(self, store_text: str) -> None:
        """Every time shown has millisecond precision."""
        stamps = list(TIME.finditer(store_text))
        assert stamps
        assert {len(m.group(1) or "") for m in stamps} == {4}

    def test_rule_usage_is_known_from_the_store(self, store_text: str) -> None:
        """No "only known in files mode" heading, and rule cells carry counts, not n/a."""
        assert "only known in files mode" not in store_text
        assert "usage unknown" not in store_text
        assert not re.search(r"(ingress|egress|Ingress|Egress) \d+: [^;]*: n/a", store_text)

    def test_score_states_the_exclusion(self, store_text: str) -> None:
        """The score formula's inputs name kube-system as not applicable."""
        assert "not applicable = kube-system" in store_text


def test_screenshot_is_kept(store_text: str) -> None:
    """The screenshot of the store-mode report stays in test-artifacts/ for a person to look at."""
    assert Path(ARTIFACTS / "report-store-demo.png").stat().st_size > 10_000
