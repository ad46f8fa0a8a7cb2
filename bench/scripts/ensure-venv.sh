#!/usr/bin/env bash
# Creates .venv-bench at the repository root with bench/requirements.txt, once.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.venv-bench"
stamp="$venv/.requirements-installed"
if [[ -f "$stamp" ]] && cmp -s "$stamp" "$root/bench/requirements.txt"; then
    exit 0
fi
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet -r "$root/bench/requirements.txt"
cp "$root/bench/requirements.txt" "$stamp"
