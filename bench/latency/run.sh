#!/usr/bin/env bash
# Upload-to-results latency of `imgsearch serve` with a large index, tract and ort side by side.
#
# Builds the release binary with the `ort` feature, derives a corpus of N JPEGs from a folder of
# real photos (bench/latency/make_corpus.py), indexes it once (ort; both runtimes give the same
# vectors for the same ONNX file, so one index serves both), then for each runtime starts the
# server on loopback, uploads the query photos one at a time and reports p50/p90/p99.
#
# Usage: bench/latency/run.sh [--src DIR] [--images 10000] [--queries 200] [--index hnsw|flat]
# Results: bench/results/latency.jsonl (one line per runtime and query size).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
. bench/lib.sh
src="$root/../shared/data/flowers17"
images=10000
queries=200
index=hnsw
parse_options "src images queries index" "" "$@"
work="$root/bench/data/latency-$images"
out="$root/bench/results/latency.jsonl"
mkdir -p "$work" "$(dirname "$out")"

bash scripts/fetch-onnxruntime.sh
venv="$root/.venv-models"
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet -r models/requirements.txt
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
# JPEGs are decoded with libjpeg-turbo when its headers are installed (libturbojpeg0-dev), as the
# fastest release build does; EMBED_TURBOJPEG=0 measures the pure-Rust decoder.
features=ort
if [ "${EMBED_TURBOJPEG:-1}" = 1 ] && [ -f /usr/include/turbojpeg.h ]; then
    features=ort,turbojpeg
fi
echo "== build (features $features)"
cargo build --release --locked -p imgsearch --features "$features"
bin="$CARGO_TARGET_DIR/release/imgsearch"

echo "== corpus: $images images from $src"
"$venv/bin/python" bench/latency/make_corpus.py "$src" "$work" --images "$images" --queries "$queries"

# One index per model file: a collection refuses vectors of another model.
model_hash=$(sha256sum models/efficientnet-lite0/model.onnx | cut -c1-12)
data="$work/data-$index-$model_hash"
echo "== index ($index, ort; incremental, so a second run only checks the files)"
start=$(date +%s.%N)
IMGSEARCH_INDEX="$index" "$bin" --data-dir "$data" --runtime ort --quiet index "$work/corpus"
echo "indexed in $(echo "$(date +%s.%N) - $start" | bc) s"
"$bin" --data-dir "$data" status

port=$(free_port)
cleanup_on_exit
echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for runtime in tract ort; do
    IMGSEARCH_INDEX="$index" "$bin" --data-dir "$data" --runtime "$runtime" --quiet serve --bind "127.0.0.1:$port" \
        >"$work/serve-$runtime.log" 2>&1 &
    pid=$!
    wait_healthy "$port" "$pid" "$work/serve-$runtime.log"
    for size in original large; do
        python3 bench/latency/client.py "127.0.0.1:$port" "$work/queries/$size" \
            --label "$runtime $size images=$images index=$index" --json "$out"
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
done
