#!/usr/bin/env bash
# Labelled near-duplicate benchmark of `imgsearch dedup` (bench/src/bin/dedup.rs says how the
# library and its labels are made): pair precision and recall per threshold, recall per kind of
# copy, and the scores of copies against their originals beside the best non-duplicate score.
#
# Usage: bench/dedup/run.sh [--data DIR] [--per-class N] [--seed S] [--profile dev|release]
# Prints one JSON line per threshold and one with the score summary.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
. bench/lib.sh
data="$root/../shared/data/flowers17"
per_class=8
seed=7
profile=release
parse_options "data per-class seed profile" "" "$@"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
if [ "$profile" = release ]; then
    cargo build --release -p imgsearch-bench --bin dedup --locked
    bin="$CARGO_TARGET_DIR/release/dedup"
else
    cargo build -p imgsearch-bench --bin dedup --locked
    bin="$CARGO_TARGET_DIR/debug/dedup"
fi
work=$(mktemp -d)
cleanup_on_exit "$work"
"$bin" --data "$data" --per-class "$per_class" --seed "$seed" --work "$work"
