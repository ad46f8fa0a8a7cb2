#!/usr/bin/env bash
# Scale benchmark of the durable collection: builds a seeded, clustered synthetic data set of N
# points into a fresh imgsearch data directory (through the engine's catalog and vecdb's
# Collection API), then measures in fresh processes (warm page cache) and prints one JSON line.
# See bench/README.md ("Scale") for the generator and the fields.
#
#   bench/scale/run.sh --points 100000 --dim 1280 --index hnsw --quantization none
#
# Options: --seed S (42), --work DIR (a fresh folder under /tmp), --keep (keep the data
# directory), --no-engine (collection only, no catalog/model: any --dim, no cli_search_s).
# Environment: SCALE_BIN / IMGSEARCH_BIN use prebuilt binaries instead of building them (how
# the "before" column was measured with the binaries of the older commit).
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh

points="" dim=1280 index=hnsw quantization=none seed=42 work="" keep=0 no_engine=0
parse_options "points dim index quantization seed work" "keep no-engine" "$@"
[ -n "$points" ] || { echo "usage: $0 --points N [--dim D] [--index flat|hnsw|ivf] [--quantization none|sq8|rabitq]" >&2; exit 2; }

target="${CARGO_TARGET_DIR:-target}"
if [ -z "${SCALE_BIN:-}" ] || { [ "$no_engine" = 0 ] && [ -z "${IMGSEARCH_BIN:-}" ]; }; then
    cargo build --release --locked -p imgsearch-bench --bin scale -p imgsearch --bin imgsearch >&2
fi
scale="${SCALE_BIN:-$target/release/scale}"
imgsearch="${IMGSEARCH_BIN:-$target/release/imgsearch}"

[ -n "$work" ] || work="$(mktemp -d /tmp/scale.XXXXXX)"
data="$work/data"
cleanup() { [ "$keep" = 1 ] || rm -rf "$work"; }
trap cleanup EXIT

extra=()
[ "$no_engine" = 1 ] && extra+=(--no-engine)
"$scale" build --data-dir "$data" --points "$points" --dim "$dim" --index "$index" \
    --quantization "$quantization" --seed "$seed" "${extra[@]}" >&2

# Warm the page cache with one open, as a user's second command would find it.
"$scale" measure --data-dir "$data" --open-only >&2

cli=()
if [ "$no_engine" = 0 ]; then
    # `imgsearch search IMAGE`: process start to printed hits, default runtime. One warm-up run,
    # then the median of three.
    run_cli() { "$imgsearch" --data-dir "$data" --quiet search samples/astronaut.jpg > /dev/null; }
    run_cli
    times=()
    for _ in 1 2 3; do
        t0=$(date +%s.%N); run_cli; t1=$(date +%s.%N)
        times+=("$(echo "$t1 - $t0" | bc -l)")
    done
    median=$(printf '%s\n' "${times[@]}" | sort -g | sed -n 2p)
    cli=(--cli-search-s "$median")
fi

line="$("$scale" measure --data-dir "$data" "${cli[@]}")"
echo "$line"
mkdir -p bench/results
echo "$line" >> bench/results/scale.jsonl
