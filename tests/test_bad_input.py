"""Useless and broken input reaches the user: exit codes, one-line errors, skipped objects in every output."""

from __future__ import annotations

import gzip
import json
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.app.audit import AuditOptions, run_audit
from auditor.cli import main
from auditor.errors import ManifestError
from auditor.kube.manifests import load_manifests_report

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "auditor/data/demo/cluster.yaml"
FLOWS = ROOT / "auditor/data/demo/flows.jsonl"
LOADED_OBJECTS = len(load_manifests_report([str(MANIFESTS)]).objects)
GOOD_LINES = [line for line in FLOWS.read_text().splitlines() if line.strip()]
BAD_POLICY = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: wide-port, namespace: shop}
spec:
  podSelector: {}
  ingress:
  - ports: [{port: 70000}]
"""


def audit(*args: str) -> list[str]:
    return ["audit", *args]


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(lines) == 1
    return lines[0]


class TestUselessFlowInput:
    def test_manifest_given_as_flows_names_the_likely_swap(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A manifest passed as --flows exits 1 with one line saying it looks like a manifest."""
        assert main(audit("--manifests", str(MANIFESTS), "--flows", str(MANIFESTS))) == 1
        line = error_line(capsys)
        expected = ("no line is a Hubble flow (looks like a Kubernetes manifest; "
                    "swapped --flows and --manifests?)")
        assert f"{MANIFESTS}: {expected}" in line

    @pytest.mark.parametrize(("content", "said"), [
        ("", "the file is empty"),
        ('[{"flow": {}}]\n', "looks like a JSON array"),
        ("Nov 20 10:00:01.000: shop/web-1:43210 (ID:1000) -> shop/api-1:8080 (ID:2000) to-endpoint FORWARDED\n",
         "hubble observe -o compact"),
        ("not json at all\nnor this\n", "2 unusable lines; first: "),
    ])
    def test_useless_flow_file_exits_1_saying_what_it_looks_like(
            self, content: str, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Empty files, JSON arrays, compact text and garbage exit 1 with a line describing the file."""
        flows = tmp_path / "flows.txt"
        flows.write_text(content)
        assert main(audit("--manifests", str(MANIFESTS), "--flows", str(flows))) == 1
        assert said in error_line(capsys)

    def test_allow_empty_accepts_an_empty_flow_file(self, tmp_path: Path) -> None:
        """--allow-empty: a pipeline that may have nothing exits 0."""
        flows = tmp_path / "flows.jsonl"
        flows.write_text("")
        assert main(audit("--manifests", str(MANIFESTS), "--flows", str(flows), "--allow-empty")) == 0

    def test_empty_manifests_exit_1(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Manifests with no object (every flow unresolved) exit 1 naming the file."""
        empty = tmp_path / "cluster.yaml"
        empty.write_text("")
        assert main(audit("--manifests", str(empty), "--flows", str(FLOWS))) == 1
        assert f"{empty}: no Kubernetes object" in error_line(capsys)

    def test_report_on_a_manifest_as_flows_exits_1_on_stderr(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """`report` says the same on stderr instead of writing an empty report."""
        out = tmp_path / "r.md"
        code = main(["report", "--manifests", str(MANIFESTS), "--flows", str(MANIFESTS), "--format", "markdown",
                     "--output", str(out)])
        assert code == 1
        assert "looks like a Kubernetes manifest" in error_line(capsys)
        assert not out.exists()

    def test_report_warns_about_skipped_lines_on_stderr(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Bad lines among good ones: the report is written and stderr says how many were skipped."""
        flows = tmp_path / "flows.jsonl"
        flows.write_text("\n".join([*GOOD_LINES, "garbage"]) + "\n")
        code = main(["report", "--manifests", str(MANIFESTS), "--flows", str(flows), "--format", "markdown",
                     "--output", str(tmp_path / "r.md")])
        assert code == 0
        assert "1 flow lines skipped as unusable" in capsys.readouterr().err


class TestInvalidPolicies:
    def test_audit_table_lists_skipped_invalid_policies(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """The table names each invalid policy and the field the API server would reject."""
        bad = tmp_path / "bad.yaml"
        bad.write_text(BAD_POLICY)
        assert main(audit("--manifests", str(MANIFESTS), str(bad), "--flows", str(FLOWS))) == 0
        out = capsys.readouterr().out
        assert "invalid objects skipped: 1" in out
        assert "NetworkPolicy shop/wide-port: spec.ingress[0].ports[0].port: 70000" in out

    def test_audit_json_lists_skipped_invalid_policies(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """The JSON summary has invalid_objects with object, field and error."""
        bad = tmp_path / "bad.yaml"
        bad.write_text(BAD_POLICY)
        args = audit("--manifests", str(MANIFESTS), str(bad), "--flows", str(FLOWS), "--output", "json")
        assert main(args) == 0
        invalid = json.loads(capsys.readouterr().out)["summary"]["invalid_objects"]
        assert invalid == [{"object": "NetworkPolicy shop/wide-port", "field": "spec.ingress[0].ports[0].port",
                            "error": "70000 must be between 1 and 65535, inclusive"}]


class TestSmallOnes:
    def test_gzip_manifests_are_read(self, tmp_path: Path) -> None:
        """A gzip-compressed manifest file (named .yaml.gz or not) gives the same objects as the plain one."""
        packed = tmp_path / "cluster.yaml.gz"
        packed.write_bytes(gzip.compress(MANIFESTS.read_bytes()))
        plain = run_audit(AuditOptions(manifests=(str(MANIFESTS),), flows=(str(FLOWS),)))
        zipped = run_audit(AuditOptions(manifests=(str(packed),), flows=(str(FLOWS),)))
        walked = run_audit(AuditOptions(manifests=(str(tmp_path),), flows=(str(FLOWS),)))
        assert plain.summary.objects == zipped.summary.objects == walked.summary.objects > 0
        assert len(plain.findings) == len(zipped.findings)

    @pytest.mark.parametrize("content", [b"", b"my notes, not a database\n" * 10])
    def test_report_store_never_writes_a_file_it_did_not_create(
            self, content: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """`report --store sqlite:FILE` on an empty or non-SQLite file exits 1 and leaves it byte for byte."""
        user_file = tmp_path / "notes.db"
        user_file.write_bytes(content)
        code = main(["report", "--store", f"sqlite:{user_file}", "--manifests", str(MANIFESTS), "--format",
                     "json", "--output", str(tmp_path / "r.json")])
        assert code == 1
        assert user_file.read_bytes() == content
        assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]
        assert "notes.db" in error_line(capsys)

    def test_report_store_refuses_a_foreign_sqlite_database(self, tmp_path: Path) -> None:
        """A SQLite file without auditor's schema is refused, not migrated into a store."""
        import sqlite3

        other = tmp_path / "app.db"
        with sqlite3.connect(other) as conn:
            conn.execute("CREATE TABLE notes (text TEXT)")
        before = other.read_bytes()
        code = main(["report", "--store", f"sqlite:{other}", "--manifests", str(MANIFESTS), "--format", "json",
                     "--output", str(tmp_path / "r.json")])
        assert code == 1
        assert other.read_bytes() == before


# --- fuzz: bounded, a few seconds ----------------------------------------------------------------

def _mutate(line: str, data: st.DataObject) -> str:
    kind = data.draw(st.sampled_from(["cut", "flip", "insert", "json", "blank"]))
    if kind == "cut":
        return line[: data.draw(st.integers(0, max(0, len(line) - 1)))]
    if kind == "flip" and line:
        at = data.draw(st.integers(0, len(line) - 1))
        return line[:at] + data.draw(st.sampled_from(list('{}[]":,x0\\'))) + line[at + 1:]
    if kind == "insert":
        return data.draw(st.text(string.printable.replace("\n", "").replace("\r", ""), max_size=40))
    if kind == "json":
        return json.dumps(data.draw(st.one_of(st.integers(), st.lists(st.integers(), max_size=3),
                                              st.dictionaries(st.sampled_from(["flow", "time", "x"]),
                                                              st.integers(), max_size=2))))
    return "   "


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_flow_lines_count_every_good_line_and_report_every_bad_one(
        data: st.DataObject, tmp_path: Path) -> None:
    """Good lines among mutated ones: no traceback, every good line counted, every bad one named file:line."""
    picks = data.draw(st.lists(st.booleans(), min_size=1, max_size=30))
    lines, good, bad_numbers = [], 0, []
    for number, keep in enumerate(picks, start=1):
        original = GOOD_LINES[number % len(GOOD_LINES)]
        line = original if keep else _mutate(original, data)
        lines.append(line)
        if line == original:
            good += 1
        elif line.strip() and not _is_flow(line):
            bad_numbers.append(number)
    flows = tmp_path / "fuzz.jsonl"
    flows.write_text("\n".join(lines) + "\n")
    result = run_audit(AuditOptions(manifests=(str(MANIFESTS),), flows=(str(flows),), allow_empty=True))
    assert result.summary.flows >= good
    assert result.summary.skipped_lines >= len(bad_numbers)
    for number in bad_numbers[:20]:
        assert any(error.startswith(f"{flows}:{number}:") for error in result.summary.errors)


def _is_flow(line: str) -> bool:
    """A mutated line that is still a JSON object may be read as a flow (unknown fields are ignored, as in
    Hubble's own reader); only lines that are no JSON object at all must be reported."""
    try:
        document = json.loads(line)
    except ValueError:
        return False
    return isinstance(document, dict)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_manifests_never_traceback_and_name_the_file(data: st.DataObject, tmp_path: Path) -> None:
    """Mutated manifests either load or raise one ManifestError naming the file; a valid policy alongside
    an invalid one is kept, and the invalid one is reported."""
    text = MANIFESTS.read_text()
    cut = data.draw(st.integers(0, len(text)))
    junk = data.draw(st.text(string.printable, max_size=30))
    broken = tmp_path / "broken.yaml"
    broken.write_text(text[:cut] + junk + text[cut:])
    try:
        load_manifests_report([str(broken)])
    except ManifestError as exc:
        error = str(exc)
    else:
        error = ""
    assert not error or str(broken) in error
    port = data.draw(st.one_of(st.integers(65536, 10**6), st.integers(-5, 0)))
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_POLICY.replace("70000", str(port)))
    result = run_audit(AuditOptions(manifests=(str(MANIFESTS), str(bad)), flows=()))
    assert [e.ref for e in result.summary.invalid_objects] == ["NetworkPolicy shop/wide-port"]
    assert result.summary.objects == LOADED_OBJECTS + 1
