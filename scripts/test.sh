#!/usr/bin/env bash
# Installs everything, then runs every check CI runs: stale stubs and docs, a stale
# requirements.lock, ruff, mypy --strict, import-linter layer contracts, and the whole pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --system
export PATH="$PWD/.venv/bin:$PATH"

python scripts/genproto.py --check
python scripts/gen_demo.py --check
python scripts/gen_config_doc.py --check
python scripts/lock.py --check
ruff check .
mypy auditor
lint-imports
pytest "$@"
