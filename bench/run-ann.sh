#!/usr/bin/env bash
# One command for the ANN comparison: prepares fashion-mnist if missing, builds `ann` in release,
# runs imgsearch's indexes and the peers (hnswlib, faiss) on the same files with the same k,
# query count and thread count, then writes bench/results/<dataset>.jsonl and .svg and prints the
# summary table with the ratios.
#
# Usage: bench/run-ann.sh [--threads N] [--queries N|all] [--repeats N] [--data DIR]
#                         (DIR bench/data/fashion-mnist-1280-cosine: real image embeddings)
#                         [--ours "hnsw flat flatbatch ivf lsh hnsw_sq ivf_sq8 flat_sq8 ivf_rabitq flat_rabitq hnsw_rabitq"]
#                         [--peers "hnswlib:hnsw faiss:hnsw faiss:hnsw_sq faiss:ivf_sq8 faiss:ivf_rabitq ..."]
#                         [--with-collection]   (also imgsearch HNSW through the Collection API)
# Environment: CARGO_TARGET_DIR (default: <repo>/target).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
threads=1
queries=2000
repeats=3
data="$here/data/fashion-mnist-784-euclidean"
# flatbatch: flat through AnyIndex::search_batch; *_sq*: SQ8 codes with exact re-ranking of
# refine_k x k candidates (imgsearch) and faiss' IndexHNSWSQ / IndexIVFScalarQuantizer (no
# re-ranking); ivf_rabitq: one-bit RaBitQ codes re-ranked by their error bound (imgsearch) and
# faiss' IndexIVFRaBitQ re-ranked by IndexRefineFlat; hnsw_rabitq: HNSW with exact distances whose
# walk skips the neighbours RaBitQ lower bounds rule out (imgsearch only).
ours="hnsw flat flatbatch ivf lsh hnsw_sq ivf_sq8 ivf_rabitq hnsw_rabitq"
peers="hnswlib:hnsw faiss:hnsw faiss:flat faiss:flat:1 faiss:ivf faiss:ivf:1 faiss:hnsw_sq faiss:ivf_sq8 faiss:ivf_rabitq"
m=16
efc=200
ef="10,16,24,32,48,64,96,128"
nlist=1024
nprobe="1,2,4,8,16,32,64"
lsh_args=(--lsh-probes 0,1,2,4)
with_collection=0

while [[ $# -gt 0 ]]; do
    case "$1" in
        --threads) threads="$2"; shift 2 ;;
        --queries) queries="$2"; shift 2 ;;
        --repeats) repeats="$2"; shift 2 ;;
        --data) data="$2"; shift 2 ;;
        --ours) ours="$2"; shift 2 ;;
        --peers) peers="$2"; shift 2 ;;
        --ef) ef="$2"; shift 2 ;;
        --nprobe) nprobe="$2"; shift 2 ;;
        --lsh-arg) lsh_args+=("$2"); shift 2 ;;   # e.g. --lsh-arg --lsh-bits=16
        --with-collection) with_collection=1; shift ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

dataset="$(basename "$data")"
if [[ ! -f "$data/base.fvecs" ]]; then
    if [[ "$dataset" == fashion-mnist-784-euclidean ]]; then
        "$here/prepare-fashion-mnist.sh"
    elif [[ "$dataset" == fashion-mnist-1280-cosine ]]; then
        "$here/prepare-fashion-mnist-1280.sh"
    else
        echo "no base.fvecs in $data" >&2
        exit 1
    fi
fi
"$here/scripts/ensure-venv.sh"
py="$root/.venv-bench/bin/python"

target="${CARGO_TARGET_DIR:-$root/target}"
(cd "$root" && cargo build --release -p imgsearch-bench --bin ann)
ann="$target/release/ann"

qargs=()
[[ "$queries" != all ]] && qargs=(--queries "$queries")
mkdir -p "$here/results"
out="$here/results/$dataset.jsonl"
[[ -f "$out" ]] && mv "$out" "$out.prev"
# ann-benchmarks names say the metric: "-angular" and "-cosine" data sets are searched by cosine.
metric=l2
[[ "$dataset" == *-angular || "$dataset" == *-cosine ]] && metric=cosine
common=(--data "$data" --metric "$metric" --threads "$threads" --k 10 "${qargs[@]}")
# An exact scan of 2000 queries takes a minute or more per pass (LSH with many probes nearly as
# long), long enough that best-of-N buys little steadiness: one pass, to bound the run's time.
repeats_for() { [[ "$1" == flat* || "$1" == lsh ]] && echo 1 || echo "$repeats"; }

{
    echo "# $(date -u +%FT%TZ) $(git -C "$root" describe --always --dirty) threads=$threads queries=$queries"
    echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg), cores: $(nproc)"
} | tee "$here/results/$dataset.meta"

run_ours() {
    local extra=() index="$1"
    case "$1" in
        hnsw|hnsw_sq|hnsw_rabitq) extra=(--m "$m" --ef-construction "$efc" --ef "$ef") ;;
        ivf|ivf_sq8|ivf_rabitq) extra=(--nlist "$nlist" --nprobe "$nprobe") ;;
        lsh) extra=("${lsh_args[@]}") ;;
        flatbatch) index=flat; extra=(--query-batch 0) ;;
    esac
    "$ann" "${common[@]}" --repeats "$(repeats_for "$index")" --index "$index" "${extra[@]}" \
        --out "$out"
}
# Which of ours runs right after which peer run (same index kind, same way of calling).
pair_of() {
    case "$1" in
        hnswlib:hnsw) echo hnsw ;;
        faiss:flat) echo flatbatch ;;
        faiss:flat:1) echo flat ;;
        faiss:ivf) echo ivf ;;
        faiss:hnsw_sq) echo hnsw_sq ;;
        faiss:ivf_sq8|faiss:ivf_sq8:1) echo ivf_sq8 ;;
        faiss:ivf_rabitq) echo ivf_rabitq ;;
    esac
}
run_peer() {
    "$py" "$here/scripts/peers.py" "${common[@]}" --repeats "$(repeats_for "${1#*:}")" \
        --runs "$1" --m "$m" \
        --ef-construction "$efc" --ef "$ef" --nlist "$nlist" --nprobe "$nprobe" --out "$out"
}

# Each index is its own process (peak RSS per index). Ours and the peers alternate, so that a
# change in the shared machine's load hits both sides rather than one.
for p in $peers; do
    run_peer "$p"
    kind="$(pair_of "$p")"
    if [[ -n "$kind" && " $ours " == *" $kind "* ]]; then
        run_ours "$kind"
        ours="$(echo " $ours " | sed "s/ $kind / /")"
    fi
done
for kind in $ours; do
    run_ours "$kind"
done
if [[ $with_collection == 1 ]]; then
    "$ann" "${common[@]}" --repeats "$repeats" --index hnsw --api collection --m "$m" --ef-construction "$efc" \
        --ef "$ef" --out "$out"
fi

echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$here/results/$dataset.meta"
"$py" "$here/plot.py" "$out" --out "$here/results/$dataset.svg"
"$py" "$here/plot.py" "$out" --y qps_cpu --out "$here/results/$dataset-cpu.svg"
"$py" "$here/scripts/summary.py" "$out"
