#!/usr/bin/env python3
"""Turn Debian's dataset-fashion-mnist IDX files into the TEXMEX layout used by bench/.

Input: the directory holding train-images-idx3-ubyte.gz and t10k-images-idx3-ubyte.gz (the
shell wrapper extracts them from the .deb). Output, in --out:
  base.fvecs         60,000 training images, 784 raw pixels each as float32 (0..255)
  query.fvecs        10,000 test images, same encoding
  groundtruth.ivecs  for each query, the ids of the exact 100 nearest base vectors under L2

This is exactly ann-benchmarks' fashion-mnist-784-euclidean, except that we compute the ground
truth ourselves (with numpy, in blocks), then verify a sample of rows by plain brute force.
"""

import argparse
import gzip
import pathlib
import struct
import sys

import numpy as np

GT_K = 100


def read_idx_images(path: pathlib.Path) -> np.ndarray:
    """Reads an IDX3 unsigned-byte image file; returns float32 rows of rows*cols pixels."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, count, rows, cols = struct.unpack(">IIII", data[:16])
    if magic != 0x00000803:
        raise ValueError(f"{path}: bad IDX3 magic {magic:#x}")
    pixels = np.frombuffer(data, dtype=np.uint8, offset=16)
    if pixels.size != count * rows * cols:
        raise ValueError(f"{path}: expected {count * rows * cols} pixels, found {pixels.size}")
    return pixels.reshape(count, rows * cols).astype(np.float32)


def write_vecs(path: pathlib.Path, rows: np.ndarray) -> None:
    """TEXMEX .fvecs/.ivecs: each row is an int32 dimension followed by the row's 4-byte values."""
    n, dim = rows.shape
    out = np.empty((n, dim + 1), dtype=np.int32)
    out[:, 0] = dim
    out[:, 1:] = rows.view(np.int32)
    tmp = path.with_suffix(path.suffix + ".tmp")
    out.tofile(tmp)
    tmp.replace(path)


def exact_neighbours(base: np.ndarray, queries: np.ndarray, k: int, block: int) -> np.ndarray:
    """Exact k nearest base ids per query under L2, by blocks of queries.

    Distances are computed in float64 as |q|^2 - 2 q.b + |b|^2 so that the expansion's rounding
    cannot reorder neighbours (the pixel values are integers up to 255, so float64 is exact).
    Ties are broken by the smaller id, as a stable sort on the distance gives.
    """
    base64 = base.astype(np.float64)
    base_sq = np.einsum("ij,ij->i", base64, base64)
    result = np.empty((queries.shape[0], k), dtype=np.int32)
    for start in range(0, queries.shape[0], block):
        q = queries[start:start + block].astype(np.float64)
        d = base_sq[None, :] - 2.0 * (q @ base64.T) + np.einsum("ij,ij->i", q, q)[:, None]
        part = np.argpartition(d, k, axis=1)[:, :k + 1]
        # argpartition leaves the order inside the first k+1 arbitrary: sort them stably by
        # (distance, id), then keep k. Using k+1 candidates is not enough for ties at the
        # boundary, so re-select among all ids whose distance equals the k-th distance.
        for row in range(q.shape[0]):
            drow = d[row]
            kth = np.sort(drow[part[row]])[k - 1]
            cand = np.nonzero(drow <= kth)[0]
            order = np.lexsort((cand, drow[cand]))
            result[start + row] = cand[order[:k]]
        print(f"  ground truth {min(start + block, queries.shape[0])}/{queries.shape[0]}",
              file=sys.stderr, flush=True)
    return result


def verify(base: np.ndarray, queries: np.ndarray, gt: np.ndarray, rows: list[int]) -> None:
    """Brute force, one query at a time in float64, must give the same sets of distances."""
    for r in rows:
        diff = base.astype(np.float64) - queries[r].astype(np.float64)
        d = np.einsum("ij,ij->i", diff, diff)
        order = np.lexsort((np.arange(d.size), d))[:GT_K]
        if not np.array_equal(np.sort(d[order]), np.sort(d[gt[r]])):
            raise SystemExit(f"ground truth row {r} disagrees with brute force")
        if not np.array_equal(order, gt[r]):
            raise SystemExit(f"ground truth row {r}: ids differ from brute force")
    print(f"  verified {len(rows)} ground-truth rows by brute force", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idx-dir", required=True, type=pathlib.Path)
    ap.add_argument("--out", required=True, type=pathlib.Path)
    ap.add_argument("--block", type=int, default=500, help="queries per ground-truth block")
    args = ap.parse_args()

    base = read_idx_images(args.idx_dir / "train-images-idx3-ubyte.gz")
    queries = read_idx_images(args.idx_dir / "t10k-images-idx3-ubyte.gz")
    if base.shape != (60000, 784) or queries.shape != (10000, 784):
        raise SystemExit(f"unexpected shapes {base.shape} {queries.shape}")
    print(f"base {base.shape}, queries {queries.shape}", file=sys.stderr)

    gt = exact_neighbours(base, queries, GT_K, args.block)
    rng = np.random.default_rng(7)
    verify(base, queries, gt, [0, 1, queries.shape[0] - 1] + list(rng.integers(0, queries.shape[0], 7)))

    args.out.mkdir(parents=True, exist_ok=True)
    write_vecs(args.out / "base.fvecs", base)
    write_vecs(args.out / "query.fvecs", queries)
    write_vecs(args.out / "groundtruth.ivecs", gt)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
