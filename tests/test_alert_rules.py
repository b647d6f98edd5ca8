"""The alert rules: promtool accepts them, their unit tests pass, and every alert is complete."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.promtool_runner import run_promtool

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy/prometheus/rules.yaml"
RULE_TESTS = sorted((ROOT / "deploy/prometheus/tests").glob("*.yaml"))
RUNBOOKS = ROOT / "docs/runbooks.md"
RUNBOOK_PREFIX = "https://github.com/cilium-auditor/auditor/blob/main/docs/runbooks.md#"
REQUIRED_ALERTS = {
    "AuditorUnexpectedPolicyDrops",
    "AuditorUnexpectedAllow",
    "AuditorDNSDenied",
    "AuditorHealthChecksBlocked",
    "AuditorPodsWithoutPolicy",
    "AuditorHubbleStreamDown",
    "AuditorHubbleLostEvents",
    "AuditorLagging",
    "AuditorQueueOverflow",
}


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _tested_alerts() -> set[str]:
    names: set[str] = set()
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            names.update(case["alertname"] for case in test.get("alert_rule_test", []))
    return names


class TestPromtool:
    def test_check_rules_passes(self) -> None:
        """promtool check rules accepts deploy/prometheus/rules.yaml."""
        result = run_promtool("check", "rules", str(RULES))
        assert result.returncode == 0, result.stdout + result.stderr

    @pytest.mark.parametrize("path", RULE_TESTS, ids=[p.name for p in RULE_TESTS])
    def test_rule_unit_tests_pass(self, path: Path) -> None:
        """promtool test rules passes for each unit-test file."""
        result = run_promtool("test", "rules", path.name, cwd=str(path.parent))
        assert result.returncode == 0, result.stdout + result.stderr


class TestAlertDefinitions:
    def test_required_alerts_exist(self) -> None:
        """Every alert the issue asks for is defined."""
        assert {rule["alert"] for rule in _alerts()} >= REQUIRED_ALERTS

    def test_every_alert_has_a_unit_test(self) -> None:
        """Each alert appears in at least one promtool alert_rule_test."""
        assert {rule["alert"] for rule in _alerts()} <= _tested_alerts()

    def test_every_alert_fires_and_stays_silent_in_tests(self) -> None:
        """Each alert has a test case where it fires and one where it must not."""
        firing: set[str] = set()
        silent: set[str] = set()
        for path in RULE_TESTS:
            for test in yaml.safe_load(path.read_text())["tests"]:
                for case in test.get("alert_rule_test", []):
                    (firing if case.get("exp_alerts") else silent).add(case["alertname"])
        names = {rule["alert"] for rule in _alerts()}
        assert names <= firing
        assert names <= silent

    def test_alerts_have_for_severity_and_annotations(self) -> None:
        """Each alert has for:, a severity label, summary, description and runbook_url."""
        for rule in _alerts():
            assert rule.get("for"), rule["alert"]
            assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
            assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), rule["alert"]

    def test_pods_without_policy_is_info(self) -> None:
        """AuditorPodsWithoutPolicy is informational."""
        severities = {rule["alert"]: rule["labels"]["severity"] for rule in _alerts()}
        assert severities["AuditorPodsWithoutPolicy"] == "info"

    def test_runbook_urls_point_at_existing_sections(self) -> None:
        """Each runbook_url names a heading anchor that exists in docs/runbooks.md."""
        anchors = {
            re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            for line in RUNBOOKS.read_text().splitlines()
            if line.startswith("## ")
        }
        for rule in _alerts():
            url = rule["annotations"]["runbook_url"]
            assert url.startswith(RUNBOOK_PREFIX), url
            assert url.removeprefix(RUNBOOK_PREFIX) in anchors, url

    def test_descriptions_name_the_grouping_labels(self) -> None:
        """Every label an alert groups by (namespace, workload, policy, port) appears in its description."""
        for rule in _alerts():
            grouped = re.search(r"by \(([^)]*)\)", rule["expr"])
            labels = {label.strip() for label in grouped.group(1).split(",")} if grouped else set()
            for label in labels & {"namespace", "workload", "policy", "port"}:
                assert f"$labels.{label}" in rule["annotations"]["description"], (rule["alert"], label)
