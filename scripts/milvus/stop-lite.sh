#!/usr/bin/env bash
# Stops the Milvus Lite server started by start-lite.sh and deletes its temp data. Milvus Lite
# ignores SIGINT (it handles signals in a background thread), so it gets SIGTERM, sent to its whole
# process group. Idempotent: stopping a server that is not running succeeds.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
milvus_stop "$(milvus_state_dir lite)" TERM 15
