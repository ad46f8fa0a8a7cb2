#!/usr/bin/env bash
# The onnxruntime runtime (cargo feature "ort"): fetches libonnxruntime from the pinned PyPI
# wheel into .cache/onnxruntime and runs the embed crate's tests with it, which compare its
# embeddings with tract's and with the Python references, and run the pipeline on it. The same
# run has the "turbojpeg" feature on (JPEG decoding with the system libjpeg-turbo, installed here
# from Debian when missing), so every decoding test also covers that decoder and its fallbacks;
# `cargo test --workspace` in 10-cargo.sh covers the pure-Rust decoder.
set -euo pipefail
cd "$(dirname "$0")/../.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# pip, when Debian's python3 lacks it, comes through a venv.
if ! python3 -m pip --version >/dev/null 2>&1 && ! python3 -c 'import ensurepip' 2>/dev/null; then
    echo "installing python3-venv"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
fi
if [ ! -f /usr/include/turbojpeg.h ]; then
    echo "installing libturbojpeg0-dev"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libturbojpeg0-dev
fi
bash scripts/fetch-onnxruntime.sh
cargo test -p imgsearch-embed --features ort,turbojpeg --locked
