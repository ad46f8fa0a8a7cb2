#!/usr/bin/env bash
# Starts a real Milvus 2.3.5 standalone server (from the `milvus` PyPI package) with a fresh temp
# data directory and prints its URL (milvus://127.0.0.1:PORT) as the last line once the proxy port
# answers. The proxy port is chosen free; the embedded etcd and the internal ports keep the
# package's defaults, so only one standalone server can run per machine.
# Idempotent. Needs `scripts/milvus/install.sh --standalone` first; stop with stop-standalone.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ROOT=$(milvus_root)
DIR=$(milvus_state_dir standalone)
BIN="$ROOT/.venv-milvus-standalone/bin/milvus-server"
[[ -x "$BIN" ]] || { echo "$BIN missing: run scripts/milvus/install.sh --standalone" >&2; exit 1; }

if milvus_running "$DIR"; then
    echo "milvus://127.0.0.1:$(cat "$DIR/port")"
    exit 0
fi
[[ -d "$DIR" ]] && milvus_stop "$DIR" INT 30 >/dev/null

mkdir -p "$DIR/data"
port=$(milvus_free_port)
setsid "$BIN" --data "$DIR/data" --proxy-port "$port" >"$DIR/log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$DIR/pid"
echo "$port" >"$DIR/port"
# The proxy port opens only once the coordinators are up (~12 s on an idle machine); allow for a
# loaded one.
if milvus_wait_ready "$pid" "$port" 180; then
    echo "milvus standalone ready: pid $pid, data $DIR/data, log $DIR/log" >&2
    echo "milvus://127.0.0.1:$port"
    exit 0
fi
echo "milvus standalone did not start; log tail:" >&2
tail -n 30 "$DIR/log" >&2 || true
milvus_stop "$DIR" INT 30 >/dev/null
exit 1
