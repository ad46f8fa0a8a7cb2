#!/usr/bin/env bash
# Installs Milvus Lite (and, with --standalone, a real Milvus standalone server) from PyPI into
# virtual environments in the repository root. Idempotent: an environment that already holds the
# pinned versions is left alone, so repeated test runs cost nothing here.
#
#   scripts/milvus/install.sh               -> .venv-milvus (milvus-lite 3.2.2, pymilvus 3.0.2)
#   scripts/milvus/install.sh --standalone  -> also .venv-milvus-standalone (milvus 2.3.5)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}

# Creates venv $1 and installs the pinned requirements $2.. unless a stamp says they are there.
ensure_venv() {
    local dir=$1
    shift
    local want="$*"
    if [[ -f "$dir/.imgsearch-stamp" && "$(cat "$dir/.imgsearch-stamp")" == "$want" ]]; then
        echo "$dir: already has $want"
        return 0
    fi
    echo "$dir: installing $want"
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
    echo "$want" > "$dir/.imgsearch-stamp"
}

ensure_venv "$ROOT/.venv-milvus" milvus-lite==3.2.2 pymilvus==3.0.2
if [[ "${1:-}" == "--standalone" ]]; then
    # milvus 2.3.5 bundles the server binaries (etcd, milvus) inside its wheel.
    ensure_venv "$ROOT/.venv-milvus-standalone" milvus==2.3.5
fi
