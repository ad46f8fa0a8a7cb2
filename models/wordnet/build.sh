#!/usr/bin/env bash
# Rebuilds crates/engine/data/wordnet-imagenet.tsv.gz, the table behind text search by meaning,
# from WordNet 3.0 (Debian's wordnet-base) and the ImageNet-1k class ids (the timm wheel on PyPI).
# Nothing here runs at build or run time of imgsearch: the table is committed.
set -euo pipefail
cd "$(dirname "$0")/../.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if [ ! -f /usr/share/wordnet/data.noun ]; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wordnet-base
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps --quiet -d "$tmp" "timm==1.0.31"
python3 -m zipfile -e "$tmp"/timm-*.whl "$tmp/timm"
python3 models/wordnet/build_table.py --wordnet /usr/share/wordnet \
    --synsets "$tmp/timm/timm/data/_info/imagenet_synsets.txt" \
    --labels models/efficientnet-lite0/labels.txt --out "$tmp/table.tsv"
# -n leaves the time stamp out, so the same inputs give the same bytes.
gzip -9 -n -c "$tmp/table.tsv" > crates/engine/data/wordnet-imagenet.tsv.gz
echo "wrote crates/engine/data/wordnet-imagenet.tsv.gz"
