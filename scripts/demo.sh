#!/usr/bin/env bash
# Installs auditor into ./.venv (the package and its runtime dependencies, not the development
# tools: scripts/test.sh installs those) and runs the built-in demo (no cluster needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --runtime
exec .venv/bin/auditor demo "$@"
