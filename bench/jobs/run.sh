#!/usr/bin/env bash
# Search latency while an indexing job runs, against idle (issue 15's "within 3x" target).
#
# Makes a corpus of N images (copies of samples/, each copy its own file to embed), starts
# `imgsearch serve` on an empty data directory with one image indexed, then measures searches
# (bench/jobs/measure.py) idle and during a job over the corpus, for searches by id and by image.
#
# Usage: bench/jobs/run.sh [--images 10000] [--bin PATH] [--kinds "id image"]
#        (default: a release build, both kinds of search)
# Results: bench/results/jobs.jsonl, one line per search kind.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
. bench/lib.sh
images=10000
bin=
kinds="id image"
parse_options "images bin kinds" "" "$@"
bin=$(imgsearch_bin "$bin")
work=$(mktemp -d)
cleanup_on_exit "$work"
mkdir -p "$work/seed" bench/results
cp samples/coffee.jpg "$work/seed/"
srcs=(samples/*.jpg samples/*.png)
for kind in $kinds; do
    corpus="$work/corpus-$kind"
    mkdir -p "$corpus"
    for ((i = 0; i < images; i++)); do
        src=${srcs[$((i % ${#srcs[@]}))]}
        cp "$src" "$corpus/$i-$(basename "$src")"
    done
    data="$work/data-$kind"
    "$bin" --data-dir "$data" --quiet index "$work/seed" >/dev/null
    port=$(free_port)
    "$bin" --data-dir "$data" serve --bind "127.0.0.1:$port" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 600); do [[ -f "$data/server.json" ]] && break; sleep 0.1; done
    python3 bench/jobs/measure.py "$data" "$corpus" samples/coffee.jpg --kind "$kind" \
        --json bench/results/jobs.jsonl --label "images=$images bin=$bin"
    kill "$pid"; wait "$pid" || true; pid=
done
