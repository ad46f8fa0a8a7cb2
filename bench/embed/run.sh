#!/usr/bin/env bash
# Embedding benchmark: Rust (tract and onnxruntime via ort) against Python onnxruntime on the
# same images and thread counts, in one run. Usage: bench/embed/run.sh [--limit N] [--dir DIR]
# Needs the registry for the first run (venv .venv-models, onnxruntime library).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
out="$root/bench/results"
mkdir -p "$out"
bash scripts/fetch-onnxruntime.sh
venv="$root/.venv-models"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet -r models/requirements.txt
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
# JPEGs are decoded with libjpeg-turbo when its headers are installed (libturbojpeg0-dev), as a
# release build with the "turbojpeg" feature does; EMBED_TURBOJPEG=0 measures the pure-Rust decoder.
features=ort
decoder="image crate (zune-jpeg)"
if [ "${EMBED_TURBOJPEG:-1}" = 1 ] && [ -f /usr/include/turbojpeg.h ]; then
    features=ort,turbojpeg
    decoder="libjpeg-turbo"
fi
cargo build --release -p imgsearch-embed --features "$features" --example embed_bench
echo "== Rust (machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); JPEG decoder: $decoder)"
"$CARGO_TARGET_DIR/release/examples/embed_bench" --json "$out/embed_rust.json" "$@"
echo "== Python onnxruntime, model only"
"$venv/bin/python" bench/embed/peer_onnxruntime.py --json "$out/embed_python.json" "$@"
"$venv/bin/python" - "$out/embed_rust.json" "$out/embed_python.json" <<'PY'
import json, sys
rust = json.load(open(sys.argv[1]))
py = {r["threads"]: r for r in json.load(open(sys.argv[2]))}
by = {(r["runtime"], r["threads"]): r for r in rust}
print("== ratios")
for t in sorted(py):
    o, tr = by.get(("ort", t)), by.get(("tract", t))
    # The peer's best way to use t threads: one session, or t single-threaded sessions.
    best = max(py[t]["model"], py[t].get("model_sessions", 0))
    if o:
        print(f"threads {t}: ort end-to-end / python model-only = {o['end_to_end'] / best:.2f}"
              f"  (ort model-only / python model-only = {o['model'] / best:.2f};"
              f" python best of one session {py[t]['model']:.1f}"
              f" and {t} sessions {py[t].get('model_sessions', float('nan')):.1f} images/s)")
    if o and tr:
        print(f"threads {t}: tract / ort  model = {tr['model'] / o['model']:.2f}, "
              f"end-to-end = {tr['end_to_end'] / o['end_to_end']:.2f}")
PY
