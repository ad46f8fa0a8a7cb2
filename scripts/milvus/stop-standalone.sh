#!/usr/bin/env bash
# Stops the Milvus standalone server started by start-standalone.sh and deletes its temp data.
# It shuts down cleanly on SIGINT to its process group (SIGTERM hangs). Idempotent.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
milvus_stop "$(milvus_state_dir standalone)" INT 60
