#!/usr/bin/env bash
# Text-to-image mAP: indexes the flowers17 photos of c1-c10 once, then asks `imgsearch search
# --text` for each class name and for words for their kinds (bench/text/eval.py says which), with
# each binary given, and prints one JSON line per query and a summary per binary.
#
# Usage: bench/text/run.sh [--photos DIR] [--bin PATH]... (default: this tree's release build)
# WordNet (Debian's wordnet-base) judges which classes a kind word is relevant for.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
photos="$root/../shared/data/flowers17"
bins=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --photos) photos=$2; shift 2 ;;
        --bin) bins+=("$2"); shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if [ ! -f /usr/share/wordnet/data.noun ]; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wordnet-base
fi
if [ ${#bins[@]} = 0 ]; then
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
    cargo build --release -p imgsearch --locked
    bins=("$CARGO_TARGET_DIR/release/imgsearch")
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
classes=(c1 c2 c3 c4 c5 c6 c7 c8 c9 c10)
# The catalog and its auto-tags are the same for every build under test: index with the first.
"${bins[0]}" --data-dir "$work/data" index --json "${classes[@]/#/$photos/}" >/dev/null
for bin in "${bins[@]}"; do
    python3 bench/text/eval.py --bin "$bin" --data-dir "$work/data" --photos "$photos" --label "$bin"
done
