#!/usr/bin/env bash
# Prepares bench/data/fashion-mnist-784-euclidean/ (TEXMEX layout) from Debian's
# dataset-fashion-mnist package. Needs apt-get (download only, nothing is installed system-wide)
# and python3; creates the venv .venv-bench at the repository root if it is missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="$here/data/fashion-mnist-784-euclidean"

if [[ -f "$out/base.fvecs" && -f "$out/query.fvecs" && -f "$out/groundtruth.ivecs" ]]; then
    echo "fashion-mnist already prepared in $out"
    exit 0
fi

"$here/scripts/ensure-venv.sh"
py="$root/.venv-bench/bin/python"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
if ! apt-get download dataset-fashion-mnist; then
    echo "apt-get download failed; refreshing the package lists and retrying" >&2
    apt-get update
    apt-get download dataset-fashion-mnist
fi
dpkg-deb -x dataset-fashion-mnist_*.deb extracted
"$py" "$here/scripts/prepare_fashion_mnist.py" \
    --idx-dir extracted/usr/share/datasets/fashion-mnist --out "$out"
