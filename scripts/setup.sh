#!/usr/bin/env bash
# Installs auditor and its development tools into ./.venv; with --system also the servers the
# tests drive for real (Prometheus/promtool, Chromium, kubectl, PostgreSQL) from Debian's packages; with
# --runtime only auditor and what it needs to run (no dev tools: what scripts/demo.sh uses).
set -euo pipefail
cd "$(dirname "$0")/.."

want_system=0
extras='[dev]'
case "${1:-}" in
    --system) want_system=1 ;;
    --runtime) extras='' ;;
    "") ;;
    *) echo "setup: unknown option $1 (expected --system or --runtime)" >&2; exit 2 ;;
esac

if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
if [[ -n $extras ]]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".$extras"
else
    # Byte-compiling every installed file (the kubernetes client has thousands) takes longer
    # than the demo; Python compiles the modules it imports on first use instead.
    .venv/bin/python -m pip install --quiet --no-compile -e .
fi

if [[ $want_system -eq 1 ]]; then
    missing=()
    command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
    # The store suite runs on a real PostgreSQL server too (tests/pg_support.py starts a throwaway one).
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
    if [[ ${#missing[@]} -gt 0 ]]; then
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
            echo "setup: installing ${missing[*]} from Debian packages" >&2
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        else
            echo "setup: not root or no apt-get; tests needing ${missing[*]} will be skipped outside CI" >&2
        fi
    fi
fi
