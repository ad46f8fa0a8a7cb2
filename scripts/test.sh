#!/usr/bin/env bash
# The whole test suite of imgsearch, from a fresh machine: installs what the tests need, builds,
# and runs every test. `.ci/run` calls exactly this.
#
# Steps live in scripts/test.d/NN-name.sh and run in name order; each one installs what it needs
# (Debian packages, Python venvs, servers) and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export ROOT
# Builds are cached outside the clone so that repeated runs on one machine skip the cold build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/imgsearch/target}"
export CARGO_TERM_COLOR=never
mkdir -p "$CARGO_TARGET_DIR"

status=0
for step in scripts/test.d/*.sh; do
    echo "=== ${step#scripts/test.d/} ==="
    start=$(date +%s)
    if ! bash "$step"; then
        echo "FAILED: $step"
        status=1
    fi
    echo "=== ${step#scripts/test.d/}: $(( $(date +%s) - start )) s ==="
done
exit $status
