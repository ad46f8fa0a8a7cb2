#!/usr/bin/env bash
# Starts a real Milvus 2.3.5 standalone server (from the `milvus` PyPI package) with a fresh temp
# data directory and prints its URL (milvus://127.0.0.1:PORT) as the last line once the proxy port
# answers. The proxy port is chosen free; the embedded etcd and the internal ports keep the
# package's defaults, so only one standalone server can run per machine.
# Idempotent. Needs `scripts/milvus/install.sh --standalone` first; stop with stop-standalone.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
BIN="$(milvus_root)/.venv-milvus-standalone/bin/milvus-server"
[[ -x "$BIN" ]] || { echo "$BIN missing: run scripts/milvus/install.sh --standalone" >&2; exit 1; }
# The proxy port opens only once the coordinators are up (~12 s on an idle machine; 180 s allows
# for a loaded one). It shuts down cleanly on SIGINT. One try: a failed start is rarely a port race
# here, and a retry would cost minutes.
milvus_start standalone INT 30 180 1 "$BIN" --data {data} --proxy-port {port}
