#!/usr/bin/env bash
# Upload-to-results latency of `imgsearch serve` with a large index, tract and ort side by side.
#
# Builds the release binary with the `ort` feature, derives a corpus of N JPEGs from a folder of
# real photos (bench/latency/make_corpus.py), indexes it once (ort; both runtimes give the same
# vectors for the same ONNX file, so one index serves both), then for each runtime starts the
# server on loopback, uploads the query photos one at a time and reports p50/p90/p99.
#
# Then, with ort, it uploads the original-size query photos into a copy of the index
# (POST /api/images: stored, embedded and committed), so the upload-to-indexed latency is measured
# against a library of N images too.
#
# Usage: bench/latency/run.sh [--src DIR] [--images 10000] [--queries 200] [--index hnsw|flat]
#                             [--bin PATH --label NAME]
# --bin measures a binary built elsewhere (an older commit, say, built with the `ort` feature);
# --label names it in the results and in its data dir, as formats differ between builds.
# Results: bench/results/latency.jsonl (one line per runtime and query size, and one for adding).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
. bench/lib.sh
src="$root/../shared/data/flowers17"
images=10000
queries=200
index=hnsw
bin=
label=this
parse_options "src images queries index bin label" "" "$@"
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
if [[ -z "$bin" ]]; then
    echo "== build (features $features)"
    cargo build --release --locked -p imgsearch --features "$features"
    bin="$CARGO_TARGET_DIR/release/imgsearch"
fi

echo "== corpus: $images images from $src"
"$venv/bin/python" bench/latency/make_corpus.py "$src" "$work" --images "$images" --queries "$queries"

# One index per model file: a collection refuses vectors of another model.
model_hash=$(sha256sum models/efficientnet-lite0/model.onnx | cut -c1-12)
data="$work/data-$index-$model_hash-$label"
echo "== index ($index, ort; incremental, so a second run only checks the files)"
start=$(date +%s.%N)
IMGSEARCH_INDEX="$index" "$bin" --data-dir "$data" --runtime ort --quiet index "$work/corpus"
echo "indexed in $(echo "$(date +%s.%N) - $start" | bc) s"
"$bin" --data-dir "$data" status

port=$(free_port)
scratch="$work/data-adding"
cleanup_on_exit "$scratch"
# Serves data dir $1 with runtime $2 (log $work/serve-$3.log) until stop_server.
start_server() {
    IMGSEARCH_INDEX="$index" "$bin" --data-dir "$1" --runtime "$2" --quiet serve --bind "127.0.0.1:$port" \
        >"$work/serve-$3.log" 2>&1 &
    pid=$!
    wait_healthy "$port" "$pid" "$work/serve-$3.log"
}
stop_server() {
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for runtime in tract ort; do
    start_server "$data" "$runtime" "$runtime"
    for size in original large; do
        python3 bench/latency/client.py "127.0.0.1:$port" "$work/queries/$size" \
            --label "$label $runtime $size images=$images index=$index" --json "$out"
    done
    stop_server
done

# Upload-to-indexed, into a copy, so that the index stays as it was for the next run.
rm -rf "$scratch"
cp -a "$data" "$scratch"
start_server "$scratch" ort adding
python3 bench/latency/client.py "127.0.0.1:$port" "$work/queries/original" --add \
    --label "$label ort add images=$images index=$index" --json "$out"
stop_server
