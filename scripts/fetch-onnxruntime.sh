#!/usr/bin/env bash
# Puts libonnxruntime.so (CPU build, from the pinned `onnxruntime` wheel on PyPI) into
# .cache/onnxruntime/, where the embed crate's "ort" feature looks for it by default
# (or point ORT_DYLIB_PATH / RuntimeConfig::ort_library at it).
# Only the optional onnxruntime runtime needs this; the default (tract) build does not.
set -euo pipefail
VERSION="${ONNXRUNTIME_VERSION:-1.32.0}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.cache/onnxruntime"
if [ -f "$dest/libonnxruntime.so" ] && [ "$(cat "$dest/VERSION" 2>/dev/null)" = "$VERSION" ]; then
    echo "onnxruntime $VERSION already in $dest"
    exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# Debian's python3 may come without pip: a throwaway venv has it.
py=python3
if ! python3 -m pip --version >/dev/null 2>&1; then
    python3 -m venv "$tmp/venv"
    py="$tmp/venv/bin/python"
fi
"$py" -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "onnxruntime==$VERSION"
wheel="$(ls "$tmp"/onnxruntime-*.whl)"
mkdir -p "$dest"
python3 - "$wheel" "$dest" <<'PY'
import os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    libs = [n for n in z.namelist() if os.path.basename(n).startswith("libonnxruntime.so")]
    if not libs:
        sys.exit("no libonnxruntime.so in " + wheel)
    for name in libs:
        target = os.path.join(dest, os.path.basename(name))
        with z.open(name) as src, open(target, "wb") as out:
            out.write(src.read())
        print("extracted", target)
PY
# The wheel ships a versioned file name; the crate looks for the plain one.
if [ ! -f "$dest/libonnxruntime.so" ]; then
    ln -sf "$(cd "$dest" && ls libonnxruntime.so.* | head -1)" "$dest/libonnxruntime.so"
fi
echo "$VERSION" > "$dest/VERSION"
echo "onnxruntime $VERSION ready: $dest/libonnxruntime.so"
