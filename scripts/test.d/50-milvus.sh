#!/usr/bin/env bash
# The Milvus store against a real Milvus Lite server (installed from PyPI into .venv-milvus,
# started on a free loopback port and stopped again by scripts/milvus/test-live.sh): the store
# conformance suite, equivalence with the embedded store (FLAT top-10 equal, HNSW overlap >= 0.95,
# whole engine on the sample photos), migration both ways, and filter-injection attempts.
# Set IMGSEARCH_TEST_MILVUS_STANDALONE=1 to run the same tests against Milvus standalone 2.3.5.
set -euo pipefail
cd "$(dirname "$0")/../.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Python's venv module comes in its own Debian package.
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    echo "installing python3-venv"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
fi

scripts/milvus/test-live.sh
