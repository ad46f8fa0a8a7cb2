#!/usr/bin/env bash
# The Milvus store against real servers: installs Milvus Lite from PyPI (a venv in the repo root,
# cached between runs), starts it on a free loopback port, runs the engine's Milvus unit tests
# and its live-server tests (the shared conformance suite, equivalence with the embedded store,
# migration both ways), and stops the server again, also on failure.
#
# IMGSEARCH_TEST_MILVUS_STANDALONE=1 also installs `milvus==2.3.5` (a real Milvus standalone
# server, ~12 s to start) and runs the same live tests against it.
set -euo pipefail
cd "$(dirname "$0")/../.."  # repository root

scripts/milvus/install.sh
if [[ "${IMGSEARCH_TEST_MILVUS_STANDALONE:-0}" == 1 ]]; then
    scripts/milvus/install.sh --standalone
fi

# Build before starting any server, so a slow compile does not hold a server for nothing.
cargo test -p imgsearch-engine --features milvus --locked --no-run

started=()
cleanup() {
    for kind in "${started[@]}"; do
        "scripts/milvus/stop-$kind.sh" || true
    done
}
trap cleanup EXIT INT TERM

# Unit tests of the Milvus modules (URL parsing, filter translation and escaping, retries,
# schema mapping); they need no server.
cargo test -p imgsearch-engine --features milvus --locked --lib -- store::milvus migrate

run_against() {
    local kind=$1 url
    started+=("$kind")
    url=$("scripts/milvus/start-$kind.sh" | tail -n 1)
    echo "--- live tests against Milvus $kind at $url"
    IMGSEARCH_MILVUS_URL="$url" \
        cargo test -p imgsearch-engine --features milvus --locked --test milvus -- --test-threads 2
    "scripts/milvus/stop-$kind.sh"
}

run_against lite
if [[ "${IMGSEARCH_TEST_MILVUS_STANDALONE:-0}" == 1 ]]; then
    run_against standalone
fi
