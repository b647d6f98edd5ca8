#!/usr/bin/env bash
# Installs auditor into ./.venv and runs the built-in demo (no cluster needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/auditor demo "$@"
