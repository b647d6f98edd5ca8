"""`auditor explain` end to end through `auditor.cli.main`: text, JSON, batch, --at, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auditor.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "policies"
CLUSTER = str(FIXTURES / "cluster.yaml")
FRONTEND_TO_BACKEND = str(FIXTURES / "frontend-to-backend.yaml")
DENY_ALL = str(FIXTURES / "default-deny-all.yaml")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["explain", *argv])
    out, err = capsys.readouterr()
    return code, out, err


class TestSingleQuery:
    def test_allowed_text_names_the_rule(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An allowed connection names the policy, rule and peer that allowed it."""
        code, out, _ = run(capsys, "--manifests", CLUSTER, FRONTEND_TO_BACKEND,
                           "--from", "prod/frontend", "--to", "prod/backend", "--port", "8080")
        assert code == 0
        assert "Verdict:     ALLOWED" in out
        assert "Allowed by:    prod/backend-from-frontend rule 0 (peer 0: app=frontend; 8080)" in out

    def test_denied_text_attributes_and_explains(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A denied connection lists the isolating policies and the closest miss."""
        code, out, _ = run(capsys, "--manifests", CLUSTER, FRONTEND_TO_BACKEND, DENY_ALL,
                           "--from", "prod/other", "--to", "prod/backend", "--port", "8080")
        assert code == 0
        assert "Verdict:     DENIED by egress and ingress" in out
        assert "Isolated by:   prod/backend-from-frontend, prod/default-deny-all" in out
        assert ("Closest miss:  rule 0 of prod/backend-from-frontend allows app=frontend on 8080; "
                "the source has app=other") in out

    def test_json_output(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--output json prints one object with both sides."""
        code, out, _ = run(capsys, "--manifests", CLUSTER, FRONTEND_TO_BACKEND, "--output", "json",
                           "--from", "prod/other", "--to", "prod/backend", "--port", "8080")
        result = json.loads(out)
        assert code == 0
        assert result["allowed"] is False
        assert result["ingress"]["isolated"] is True
        assert result["ingress"]["policies"] == ["prod/backend-from-frontend"]
        assert result["egress"] == {**result["egress"], "allowed": True, "isolated": False, "policies": []}

    @pytest.mark.parametrize(("endpoint", "shown", "enforcement"), [
        ("10.1.0.10", "prod/frontend", "enforced"),
        ("192.168.0.1", "node/node-1", "not-a-pod"),
        ("198.51.100.4", "198.51.100.4", "not-a-pod"),
    ], ids=["pod-ip", "node-ip", "external"])
    def test_ip_resolution(self, capsys: pytest.CaptureFixture[str], endpoint: str, shown: str,
                           enforcement: str) -> None:
        """A pod IP is that pod, a node address a node, anything else an external address."""
        code, out, _ = run(capsys, "--manifests", CLUSTER, "--output", "json",
                           "--from", endpoint, "--to", "prod/backend", "--port", "8080")
        result = json.loads(out)
        assert code == 0
        assert (result["from"], result["egress"]["enforcement"]) == (shown, enforcement)

    def test_node_traffic_to_own_pod(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The pod's own node passes default-deny, unless --enforce-node-traffic."""
        args = ["--manifests", CLUSTER, DENY_ALL, "--output", "json", "--from", "192.168.0.1",
                "--to", "prod/backend", "--port", "8080"]
        assert json.loads(run(capsys, *args)[1])["ingress"]["enforcement"] == "node-traffic"
        assert json.loads(run(capsys, *args, "--enforce-node-traffic")[1])["allowed"] is False

    def test_unknown_pod_fails(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown pod is an error naming it, exit 1."""
        code, out, err = run(capsys, "--manifests", CLUSTER, "--from", "prod/ghost", "--to", "prod/backend",
                             "--port", "80")
        assert (code, out) == (1, "")
        assert "unknown pod prod/ghost" in err

    def test_missing_arguments(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Without --port (and no --queries) the command explains what is required."""
        code, _, err = run(capsys, "--manifests", CLUSTER, "--from", "prod/frontend", "--to", "prod/backend")
        assert code == 1
        assert "--from, --to and --port are required" in err

    def test_invalid_policy_is_reported(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        """A policy the API server would reject is skipped and listed with its field."""
        bad = tmp_path / "bad.yaml"
        bad.write_text("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
                       "metadata: {name: broken, namespace: prod}\n"
                       "spec: {podSelector: {}, ingress: [{ports: [{port: 0}]}]}\n")
        code, out, _ = run(capsys, "--manifests", CLUSTER, str(bad),
                           "--from", "prod/frontend", "--to", "prod/backend", "--port", "8080")
        assert code == 0
        assert "Verdict:     ALLOWED" in out
        assert "NetworkPolicy prod/broken: spec.ingress[0].ports[0].port" in out


class TestAt:
    def _events(self, tmp_path: Path) -> str:
        deny = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "deny", "namespace": "prod", "resourceVersion": "77"},
                "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
        lines = [{"time": "2026-11-20T10:00:00Z", "type": "ADDED", "object": deny},
                 {"time": "2026-11-20T11:00:00Z", "type": "DELETED", "object": deny}]
        path = tmp_path / "events.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        return str(path)

    @pytest.mark.parametrize(("at", "allowed"), [("2026-11-20T09:59:59Z", True),
                                                 ("2026-11-20T10:30:00Z", False),
                                                 ("2026-11-20T11:00:00Z", True)])
    def test_state_in_force(self, capsys: pytest.CaptureFixture[str], tmp_path: Path, at: str,
                            allowed: bool) -> None:
        """--at answers with the policies in force at that instant, naming their revision."""
        code, out, _ = run(capsys, "--manifests", CLUSTER, "--cluster-events", self._events(tmp_path),
                           "--at", at, "--output", "json", "--from", "prod/frontend", "--to", "prod/backend",
                           "--port", "8080")
        result = json.loads(out)
        assert code == 0
        assert result["allowed"] is allowed
        assert result["ingress"]["isolated_by"] == ([] if allowed else ["prod/deny@77"])

    def test_bad_time(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An --at that is not RFC 3339 is a clear error."""
        code, _, err = run(capsys, "--manifests", CLUSTER, "--at", "yesterday", "--from", "prod/frontend",
                           "--to", "prod/backend", "--port", "80")
        assert code == 1
        assert "--at" in err


class TestBatch:
    def _queries(self, tmp_path: Path, *lines: str) -> str:
        path = tmp_path / "queries.jsonl"
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    def test_one_object_per_query_in_order(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        """Each query line yields exactly one JSON line, in order; all answered means exit 0."""
        queries = self._queries(
            tmp_path,
            json.dumps({"from": "prod/frontend", "to": "prod/backend", "port": 8080}),
            json.dumps({"from": "prod/other", "to": "prod/backend", "port": 8080, "protocol": "TCP"}),
            json.dumps({"from": {"ip": "198.51.100.1"}, "to": "kube-system/coredns", "port": 53,
                        "protocol": "udp"}),
        )
        code, out, _ = run(capsys, "--manifests", CLUSTER, FRONTEND_TO_BACKEND, "--queries", queries)
        results = [json.loads(line) for line in out.splitlines()]
        assert code == 0
        assert [r["allowed"] for r in results] == [True, False, True]
        assert [r["line"] for r in results] == [1, 2, 3]
        assert results[2]["protocol"] == "UDP"
        assert all({"allowed", "isolated", "policies"} <= set(r["ingress"]) for r in results)

    def test_bad_lines_are_reported_per_line(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        """Unknown pods and malformed lines give error objects in place; the exit code is non-zero."""
        queries = self._queries(
            tmp_path,
            json.dumps({"from": "prod/ghost", "to": "prod/backend", "port": 8080}),
            "{not json",
            "",
            json.dumps({"from": "prod/frontend", "to": "prod/backend", "port": 70000}),
            json.dumps({"from": "prod/frontend", "to": "prod/backend"}),
            json.dumps({"from": "prod/frontend", "to": "prod/backend", "port": 8080}),
        )
        code, out, err = run(capsys, "--manifests", CLUSTER, "--queries", queries, "--output", "json")
        results = [json.loads(line) for line in out.splitlines()]
        assert code == 1
        assert [r["line"] for r in results] == [1, 2, 4, 5, 6]
        assert "unknown pod prod/ghost" in results[0]["error"]
        assert "not JSON" in results[1]["error"]
        assert "port 70000" in results[2]["error"]
        assert "missing port" in results[3]["error"]
        assert results[4]["allowed"] is True
        assert "4 queries could not be answered" in err

    def test_queries_exclude_single_flags(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        """--queries and --from cannot be combined."""
        query = json.dumps({"from": "prod/frontend", "to": "prod/backend", "port": 1})
        queries = self._queries(tmp_path, query)
        code, _, err = run(capsys, "--manifests", CLUSTER, "--queries", queries, "--from", "prod/frontend")
        assert code == 1
        assert "cannot be combined" in err

    def test_text_batch(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        """--queries with --output text prints one description per query."""
        queries = self._queries(tmp_path,
                                json.dumps({"from": "prod/frontend", "to": "prod/backend", "port": 1}),
                                json.dumps({"from": "prod/other", "to": "prod/backend", "port": 2}))
        code, out, _ = run(capsys, "--manifests", CLUSTER, "--queries", queries, "--output", "text")
        assert code == 0
        assert out.count("Connection:") == 2
