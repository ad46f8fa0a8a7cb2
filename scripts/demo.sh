#!/usr/bin/env bash
# The main job on a fresh machine: build the release binary, index the sample photos in samples/
# into a data directory, and serve the search page on http://127.0.0.1:8080 (Ctrl-C stops it).
#
# Environment: DATA_DIR (default .imgsearch-demo), BIND (default 127.0.0.1:8080),
# SAMPLES (default samples), CARGO_TARGET_DIR (default target). Needs a Rust toolchain (rustup)
# and network access to crates.io for the first build.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA_DIR="${DATA_DIR:-.imgsearch-demo}"
BIND="${BIND:-127.0.0.1:8080}"
SAMPLES="${SAMPLES:-samples}"
TARGET="${CARGO_TARGET_DIR:-target}"

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust from https://rustup.rs and run this again" >&2
    exit 1
fi

echo "==> building the release binary (the first build takes a while)"
cargo build --release -p imgsearch
BIN="$TARGET/release/imgsearch"

echo "==> indexing $SAMPLES into $DATA_DIR"
"$BIN" --data-dir "$DATA_DIR" index "$SAMPLES"
"$BIN" --data-dir "$DATA_DIR" status

echo "==> serving: open http://$BIND/ in a browser (Ctrl-C to stop)"
exec "$BIN" --data-dir "$DATA_DIR" serve --bind "$BIND"
