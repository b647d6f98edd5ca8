# syntax=docker/dockerfile:1
# auditor container image.
#
#   docker build -t auditor .
#   docker build -t auditor:0.1.0 --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#
# Two stages: the builder installs the dependencies pinned with hashes in requirements.lock
# (`python scripts/lock.py` writes it; binary wheels only), then turns the source tree into a
# wheel and installs it without dependencies into a self-contained virtualenv at /opt/auditor;
# the final stage copies only that virtualenv onto a slim Python base: no compilers, no pip, no
# source tree. The final image runs as the numeric non-root UID 65532 and works with a read-only
# root filesystem: the only path it writes is the volume /var/lib/auditor (SQLite store, HOME and
# TMPDIR). docs/deployment.md explains the layout; tests/test_dockerfile.py checks it.

# The base is pinned by digest; the tag beside it says what the digest is (Docker uses the digest).
# It is the multi-platform index digest of python:3.11-slim-bookworm (Python 3.11.16, Debian 12) as
# recorded by the official images' docker-library/repo-info (repos/python/remote/3.11-slim-bookworm.md).
# To move to a newer build: `docker buildx imagetools inspect python:3.11-slim-bookworm` and copy
# the "Digest:" line here.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:0bee7276f83efd4a1ee05bbbf4281d95ed28e079220a9457f25a93e3f1e3c31b

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Only what the wheel needs (the .dockerignore allow-list matches these paths).
COPY requirements.lock pyproject.toml README.md LICENSE ./
COPY auditor ./auditor
# The lock also pins the build backend (setuptools), so the wheel is built without build
# isolation from hash-checked parts only; `pip check` fails the build if the lock is incomplete.
RUN python -m venv /opt/auditor \
    && /opt/auditor/bin/pip install --no-cache-dir --require-hashes --only-binary=:all: -r requirements.lock \
    && /opt/auditor/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels . \
    && /opt/auditor/bin/pip install --no-cache-dir --no-deps /wheels/*.whl \
    && /opt/auditor/bin/pip check \
    && /opt/auditor/bin/python -m compileall -q /opt/auditor/lib \
    && /opt/auditor/bin/pip uninstall --yes pip setuptools wheel

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
# The canonical repository (the runbook links in deploy/ point there); a fork passes its own.
ARG SOURCE=https://github.com/cilium-auditor/auditor
LABEL org.opencontainers.image.title="auditor" \
      org.opencontainers.image.description="Explains Cilium/Hubble policy verdicts: which NetworkPolicies, in force at that moment, allowed or dropped each flow." \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

# A named user for the numeric UID/GID so anything that looks the user up (getpass.getuser,
# ps) finds "auditor"; Kubernetes' runAsNonRoot can only verify the numeric USER below.
RUN groupadd --system --gid 65532 auditor \
    && useradd --system --uid 65532 --gid 65532 --no-create-home \
       --home-dir /var/lib/auditor --shell /usr/sbin/nologin auditor \
    && install -d -o 65532 -g 65532 -m 0750 /var/lib/auditor

COPY --from=builder /opt/auditor /opt/auditor

# PYTHONDONTWRITEBYTECODE: the byte code is compiled at build time and the root filesystem
# may be read-only. HOME and TMPDIR point at the store volume so nothing tries to write to /
# or /tmp (Python's tempfile and SQLite both honour TMPDIR).
ENV PATH=/opt/auditor/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/auditor \
    TMPDIR=/var/lib/auditor

VOLUME ["/var/lib/auditor"]
WORKDIR /var/lib/auditor
USER 65532:65532
EXPOSE 9967
ENTRYPOINT ["auditor"]
CMD ["run"]
