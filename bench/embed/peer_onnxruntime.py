#!/usr/bin/env python3
"""Peer figure for the embed benchmark: Python onnxruntime, model only, same images and threads.

Lists the images exactly as crates/embed/examples/embed_bench.rs does (recursive, sorted,
`limit` evenly spaced), preprocesses them with Pillow (not timed), then times
InferenceSession.run over all of them in batches of --batch (default 8, like the Rust ort
runtime) after one warm-up batch. With several threads it is timed two ways: one session with
that many intra-op threads (`model`), and as many single-threaded sessions run side by side from
Python threads (`model_sessions`; onnxruntime releases the GIL while it runs), the way the Rust
ort runtime runs many batches. Prints a table and writes JSON rows with --json.
"""
from concurrent.futures import ThreadPoolExecutor

import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def list_images(root, limit):
    files = sorted(str(p) for p in Path(root).rglob("*") if p.is_file() and p.suffix.lower() in EXTS)
    n = min(len(files), limit)
    # Rust sorts PathBufs component-wise; for these plain names that equals string order.
    return [files[i * len(files) // n] for i in range(n)]


def preprocess(path, shorter=256, crop=224):
    img = Image.open(path).convert("RGB")
    w, h = img.size
    rw, rh = (shorter, shorter * h // w) if w <= h else (shorter * w // h, shorter)
    left, top = (rw - crop) // 2, (rh - crop) // 2
    small = img.resize((rw, rh), Image.BILINEAR).crop((left, top, left + crop, top + crop))
    return ((np.asarray(small, dtype=np.float32) - 127.0) / 128.0).transpose(2, 0, 1)


def main():
    root = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=str(root / "../shared/data/flowers17"))
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--model", default=str(root / "models/efficientnet-lite0/model.onnx"))
    ap.add_argument("--json")
    args = ap.parse_args()
    paths = list_images(args.dir, args.limit)
    x = np.stack([preprocess(p) for p in paths])
    rows = []
    print(f"python onnxruntime {ort.__version__}, {len(paths)} images, batch {args.batch}")
    for threads in [int(t) for t in args.threads.split(",")]:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
        sess.run(["embedding", "logits"], {"input": x[: args.batch]})
        start = time.perf_counter()
        for i in range(0, len(x), args.batch):
            sess.run(["embedding", "logits"], {"input": x[i:i + args.batch]})
        rate = len(x) / (time.perf_counter() - start)
        row = {"runtime": "python-onnxruntime", "threads": threads, "batch": args.batch,
               "images": len(x), "model": round(rate, 2)}
        msg = f"threads {threads}: model {rate:.1f} images/s (one session)"
        if threads > 1:
            one = ort.SessionOptions()
            one.intra_op_num_threads = 1
            one.inter_op_num_threads = 1
            sessions = [ort.InferenceSession(args.model, one, providers=["CPUExecutionProvider"])
                        for _ in range(threads)]
            for s in sessions:
                s.run(["embedding", "logits"], {"input": x[: args.batch]})
            batches = [x[i:i + args.batch] for i in range(0, len(x), args.batch)]

            def worker(k):
                for b in batches[k::threads]:
                    sessions[k].run(["embedding", "logits"], {"input": b})

            start = time.perf_counter()
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(worker, range(threads)))
            multi = len(x) / (time.perf_counter() - start)
            row["model_sessions"] = round(multi, 2)
            msg += f", {multi:.1f} images/s ({threads} single-threaded sessions)"
        print(msg)
        rows.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=0) + "\n")


if __name__ == "__main__":
    main()
