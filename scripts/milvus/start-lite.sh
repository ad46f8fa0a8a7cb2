#!/usr/bin/env bash
# Starts a Milvus Lite server on loopback, on a free port, with a fresh temp data directory, and
# prints its URL (milvus://127.0.0.1:PORT) as the last line of stdout once the port answers.
# Idempotent: if this clone's server already runs, it only prints the URL again.
# Needs scripts/milvus/install.sh first. Stop it with scripts/milvus/stop-lite.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ROOT=$(milvus_root)
DIR=$(milvus_state_dir lite)
BIN="$ROOT/.venv-milvus/bin/milvus-lite"
[[ -x "$BIN" ]] || { echo "$BIN missing: run scripts/milvus/install.sh first" >&2; exit 1; }

if milvus_running "$DIR"; then
    echo "milvus://127.0.0.1:$(cat "$DIR/port")"
    exit 0
fi
# A stale state directory (crashed server) is cleaned before starting afresh.
[[ -d "$DIR" ]] && milvus_stop "$DIR" TERM 10 >/dev/null

# The kernel-chosen port can be taken by someone else before the server binds it: retry then.
for attempt in 1 2 3; do
    mkdir -p "$DIR/data"
    port=$(milvus_free_port)
    # setsid makes the server the leader of its own process group, so stop can signal the group.
    setsid "$BIN" server --data-dir "$DIR/data" --host 127.0.0.1 --port "$port" \
        >"$DIR/log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$DIR/pid"
    echo "$port" >"$DIR/port"
    if milvus_wait_ready "$pid" "$port" 60; then
        echo "milvus lite ready: pid $pid, data $DIR/data, log $DIR/log" >&2
        echo "milvus://127.0.0.1:$port"
        exit 0
    fi
    echo "milvus lite attempt $attempt failed; log:" >&2
    tail -n 20 "$DIR/log" >&2 || true
    milvus_stop "$DIR" TERM 10 >/dev/null
done
exit 1
