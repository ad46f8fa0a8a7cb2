#!/usr/bin/env bash
# Browser test of the search page: indexes a few images, starts `imgsearch serve` on a free
# loopback port and drives the page in Debian's Chromium with playwright-core (tests/browser/).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# What the test needs from Debian: Chromium (the browser), Node.js and npm (the driver).
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
(cd tests/browser && npm ci --no-audit --no-fund --silent)

cargo build -p imgsearch --locked
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/imgsearch"

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -INT "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# A few real photos: the embedder's fixtures, else the repository's samples.
mkdir -p "$WORK/photos"
for dir in crates/embed/tests/fixtures samples; do
    [ -d "$dir" ] || continue
    find "$dir" -maxdepth 1 -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) \
        | sort | head -n 6 | while read -r f; do cp "$f" "$WORK/photos/"; done
    [ "$(ls "$WORK/photos" | wc -l)" -ge 3 ] && break
    rm -f "$WORK/photos"/*
done
count=$(ls "$WORK/photos" | wc -l)
if [ "$count" -lt 3 ]; then
    echo "0 passed, 1 failed (need at least 3 images in crates/embed/tests/fixtures or samples)"
    exit 1
fi
QUERY_IMAGE="$WORK/photos/$(ls "$WORK/photos" | head -n 1)"
# A photo that is not indexed, for adding through the page: a sample whose subject none of the
# fixture photos above shows (chelsea.jpg, say, is the cat of chelsea.png).
NEW_IMAGE=
for name in flower.jpg china.jpg grass.jpg; do
    f="samples/$name"
    [ -f "$f" ] && [ ! -e "$WORK/photos/$name" ] && { NEW_IMAGE="$ROOT/$f"; break; }
done
if [ -z "$NEW_IMAGE" ]; then
    echo "0 passed, 1 failed (no photo left to add through the page)"
    exit 1
fi

# Photos for the watched library folder (colon-separated), copied there by the test before it
# clicks "Rescan": every sample not indexed above and not the one added through the page.
LIBRARY_IMAGES=
for f in "$ROOT"/samples/*.jpg "$ROOT"/samples/*.png; do
    [ -f "$f" ] && [ ! -e "$WORK/photos/$(basename "$f")" ] && [ "$f" != "$NEW_IMAGE" ] \
        && LIBRARY_IMAGES="${LIBRARY_IMAGES:+$LIBRARY_IMAGES:}$f"
done
mkdir -p "$WORK/library"

"$BIN" --data-dir "$WORK/data" index "$WORK/photos"

PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
URL="http://127.0.0.1:$PORT"
"$BIN" --data-dir "$WORK/data" serve --bind "127.0.0.1:$PORT" --watch "$WORK/library" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 300); do
    if node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "$URL/healthz"; then
        break
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        cat "$WORK/server.log"
        echo "0 passed, 1 failed (the server exited before answering /healthz)"
        exit 1
    fi
    sleep 0.2
done

status=0
IMGSEARCH_URL="$URL" QUERY_IMAGE="$QUERY_IMAGE" NEW_IMAGE="$NEW_IMAGE" \
    LIBRARY_DIR="$WORK/library" LIBRARY_IMAGES="$LIBRARY_IMAGES" \
    node tests/browser/search-page.test.mjs || status=$?
if [ "$status" != 0 ]; then
    echo "--- server log ---"
    tail -n 50 "$WORK/server.log"
fi
exit "$status"
