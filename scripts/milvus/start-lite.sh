#!/usr/bin/env bash
# Starts a Milvus Lite server on loopback, on a free port, with a fresh temp data directory, and
# prints its URL (milvus://127.0.0.1:PORT) as the last line of stdout once the port answers.
# Idempotent: if this clone's server already runs, it only prints the URL again.
# Needs scripts/milvus/install.sh first. Stop it with scripts/milvus/stop-lite.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
BIN="$(milvus_root)/.venv-milvus/bin/milvus-lite"
[[ -x "$BIN" ]] || { echo "$BIN missing: run scripts/milvus/install.sh first" >&2; exit 1; }
# Lite starts in about a second and stops on SIGTERM; three tries against port races.
milvus_start lite TERM 10 60 3 "$BIN" server --data-dir {data} --host 127.0.0.1 --port {port}
