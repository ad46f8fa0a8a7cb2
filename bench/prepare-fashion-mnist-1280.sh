#!/usr/bin/env bash
# Prepares fashion-mnist-1280-cosine: the 70,000 fashion-mnist images through imgsearch's default
# model (EfficientNet-Lite0, 1280-d, unit length), 60,000 base and 10,000 query vectors with the
# 100 exact nearest neighbours of each query by cosine, in the TEXMEX layout run-ann.sh reads.
#
# The data are cached outside the repository, in $IMGSEARCH_BENCH_DATA (default
# ~/.cache/imgsearch/bench-data), and bench/data/fashion-mnist-1280-cosine links to them.
# Embedding takes about an hour of CPU time on two cores; an interrupted run resumes (each file
# is written whole or not at all).
#
# Usage: bench/prepare-fashion-mnist-1280.sh
# Environment: CARGO_TARGET_DIR (default: <repo>/target), EMBED_FMNIST_BIN (a prebuilt binary).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cache="${IMGSEARCH_BENCH_DATA:-$HOME/.cache/imgsearch/bench-data}/fashion-mnist-1280-cosine"
link="$here/data/fashion-mnist-1280-cosine"

if [[ -f "$cache/base.fvecs" && -f "$cache/query.fvecs" && -f "$cache/groundtruth.ivecs" ]]; then
    echo "fashion-mnist-1280-cosine already prepared in $cache"
else
    "$here/prepare-fashion-mnist.sh"
    if [[ -z "${EMBED_FMNIST_BIN:-}" ]]; then
        (cd "$root" && cargo build --release --locked -p imgsearch-bench --bin embed_fmnist >&2)
    fi
    bin="${EMBED_FMNIST_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/embed_fmnist}"
    mkdir -p "$cache"
    (cd "$root" && "$bin" --from "$here/data/fashion-mnist-784-euclidean" --out "$cache")
fi
mkdir -p "$here/data"
ln -sfn "$cache" "$link"
echo "bench/data/fashion-mnist-1280-cosine -> $cache"
