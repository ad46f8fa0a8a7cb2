#!/usr/bin/env bash
# The main job on a fresh machine: build the release binary, index the sample photos in samples/
# into a data directory, and serve the search page on http://127.0.0.1:8080 (Ctrl-C stops it).
#
# The fast path by default: onnxruntime (fetched from its PyPI wheel by
# scripts/fetch-onnxruntime.sh) runs the model, and libjpeg-turbo decodes JPEGs when its headers
# are installed (libturbojpeg0-dev); when either cannot be had, the build falls back to tract and
# the pure-Rust decoder and says so in one line. Both give the same vectors for the same model.
#
# Environment: DATA_DIR (default .imgsearch-demo), BIND (default 127.0.0.1:8080),
# SAMPLES (default samples), CARGO_TARGET_DIR (default target), IMGSEARCH_FAST=0 to build the
# plain (tract) binary. Needs a Rust toolchain (rustup) and network access to crates.io (and
# PyPI, for onnxruntime) for the first build.
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

features=()
runtime=tract
if [ "${IMGSEARCH_FAST:-1}" = 1 ]; then
    if bash scripts/fetch-onnxruntime.sh >/tmp/imgsearch-fetch-ort.log 2>&1; then
        features+=(ort)
        runtime=ort
    else
        echo "==> onnxruntime could not be fetched (see /tmp/imgsearch-fetch-ort.log): using tract, slower"
    fi
    if [ -f /usr/include/turbojpeg.h ]; then
        features+=(turbojpeg)
    else
        echo "==> libjpeg-turbo headers not installed (libturbojpeg0-dev): JPEGs decode with the pure-Rust decoder, slower"
    fi
fi
feature_list=$(IFS=,; echo "${features[*]:-}")

echo "==> building the release binary${feature_list:+ with $feature_list} (the first build takes a while)"
cargo build --release -p imgsearch ${feature_list:+--features "$feature_list"}
BIN="$TARGET/release/imgsearch"

echo "==> indexing $SAMPLES into $DATA_DIR (runtime $runtime)"
"$BIN" --data-dir "$DATA_DIR" --runtime "$runtime" index "$SAMPLES"
"$BIN" --data-dir "$DATA_DIR" --runtime "$runtime" status

echo "==> serving: open http://$BIND/ in a browser (Ctrl-C to stop)"
exec "$BIN" --data-dir "$DATA_DIR" --runtime "$runtime" serve --bind "$BIND"
