#!/usr/bin/env bash
# Mixed load on `imgsearch serve` (issue 14): 8 clients for 2 minutes, searches by image, id and
# words, thumbnails, uploads, vector-API searches with filters, and hostile requests that must
# be refused. Reports the count of 5xx answers, p50/p99 latency and the server's RSS before and
# after (and its peak).
#
# Usage: [IMGSEARCH_BIN=PATH] bench/load/run.sh [--clients 8] [--seconds 120] [--images DIR]
# Results: bench/results/load.jsonl (one line per run).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
. bench/lib.sh
clients=8
seconds=120
images="$root/samples"
parse_options "clients seconds images" "" "$@"
# IMGSEARCH_BIN measures a binary built elsewhere (say which build in the results).
bin=$(imgsearch_bin "${IMGSEARCH_BIN:-}")
work=$(mktemp -d)
cleanup_on_exit "$work"
echo "== index $images"
"$bin" --data-dir "$work/data" --quiet index "$images"
port=$(free_port)
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$token" >"$work/token"
"$bin" --data-dir "$work/data" --quiet serve --bind "127.0.0.1:$port" --token-file "$work/token" \
    >"$work/serve.log" 2>&1 &
pid=$!
wait_healthy "$port" "$pid" "$work/serve.log"
echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 bench/load/load.py "127.0.0.1:$port" "$images" --pid "$pid" --clients "$clients" \
    --seconds "$seconds" --token "$token" \
    --label "clients=$clients seconds=$seconds bin=${IMGSEARCH_BIN:-release build}" \
    --json "$root/bench/results/load.jsonl"
kill -TERM "$pid"
wait "$pid" && echo "== server stopped cleanly on SIGTERM" || echo "== server exit code $?"
pid=
