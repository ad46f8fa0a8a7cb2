#!/usr/bin/env python3
"""The peer side of the ANN benchmark: hnswlib (HNSW) and faiss-cpu (HNSW, IVF-Flat, flat, the
8-bit scalar-quantised IndexHNSWSQ and IndexIVFScalarQuantizer as `hnsw_sq` and `ivf_sq8`, and
IndexIVFRaBitQ re-ranked by IndexRefineFlat as `ivf_rabitq`).

Measures what `ann` measures for imgsearch, on the same TEXMEX files, with the same k, the same
query count and the same thread count, and prints the same JSON lines (one per measured point):
  {"library": "hnswlib", "index": "hnsw", "params": {...}, "threads": 1, "recall_at_10": ...,
   "qps": ..., "build_seconds": ..., "peak_rss_mb": ..., "data_rss_mb": ..., ...}
Each index is built in its own subprocess, so peak_rss_mb (VmHWM) belongs to that index alone;
data_rss_mb is the resident memory after loading the vectors and before building, the part of the
peak that is the harness's own copy of the data rather than the index.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

CHUNK_ROWS = 8192
# Default candidates re-ranked exactly per hit for faiss' RaBitQ index (--k-factor).
RABITQ_K_FACTOR = 4


def read_vecs(path, dtype, limit=None):
    """Reads a TEXMEX .fvecs/.ivecs file into a contiguous array, chunk by chunk.

    Reading in chunks into a preallocated array keeps one copy of the data in memory, so the
    peak RSS is not inflated by a temporary copy with the dimension column.
    """
    with open(path, "rb") as f:
        dim = int(np.frombuffer(f.read(4), dtype=np.int32)[0])
        rows = os.path.getsize(path) // (4 * (dim + 1))
        if limit is not None:
            rows = min(rows, limit)
        out = np.empty((rows, dim), dtype=dtype)
        f.seek(0)
        for start in range(0, rows, CHUNK_ROWS):
            n = min(CHUNK_ROWS, rows - start)
            raw = np.fromfile(f, dtype=np.int32, count=n * (dim + 1)).reshape(n, dim + 1)
            if not np.all(raw[:, 0] == dim):
                raise SystemExit(f"{path}: rows with another dimension than {dim}")
            out[start:start + n] = raw[:, 1:].view(dtype)
    return out


def status_mb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024.0
    return None


def recall_at_k(ids, gt, k):
    found = 0
    for row, truth in zip(ids, gt):
        found += len(set(row[:k].tolist()) & set(truth[:k].tolist()))
    return found / (len(ids) * k)


def best_qps(search, queries, repeats, batch):
    """Best-of-`repeats` queries per wall-clock second and per CPU second of this process (all
    threads; on a shared machine the steadier figure), over the whole query set, and the last
    result.

    `batch` None hands the library all queries in one call (how its own benchmarks run); a
    number N hands it N queries per call, e.g. 1 for an online server's one-query-at-a-time
    load, which is what imgsearch's `ann` measures.
    """
    best, best_cpu, ids = 0.0, 0.0, None
    step = batch or len(queries)
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        ids = np.concatenate([search(queries[i:i + step]) for i in range(0, len(queries), step)])
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        best = max(best, len(queries) / elapsed)
        best_cpu = max(best_cpu, len(queries) / max(cpu, 1e-9))
    return best, best_cpu, ids


def load(cfg):
    base = read_vecs(os.path.join(cfg["data"], "base.fvecs"), np.float32)
    queries = read_vecs(os.path.join(cfg["data"], "query.fvecs"), np.float32, cfg["queries"])
    gt = read_vecs(os.path.join(cfg["data"], "groundtruth.ivecs"), np.int32, cfg["queries"])
    if cfg["metric"] == "cosine":
        # Cosine as inner product on unit vectors, which is what imgsearch's index sees too.
        base /= np.linalg.norm(base, axis=1, keepdims=True)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return base, queries, gt


def build_hnswlib(cfg, base):
    import hnswlib
    space = {"l2": "l2", "ip": "ip", "cosine": "ip"}[cfg["metric"]]
    index = hnswlib.Index(space=space, dim=base.shape[1])
    index.init_index(max_elements=base.shape[0], ef_construction=cfg["ef_construction"],
                     M=cfg["m"], random_seed=cfg["seed"])
    index.set_num_threads(cfg["threads"])
    index.add_items(base, np.arange(base.shape[0]), num_threads=cfg["threads"])
    return index


def sweep_hnswlib(cfg, index):
    for ef in cfg["ef"]:
        index.set_ef(ef)
        def search(q):
            labels, _ = index.knn_query(q, k=cfg["k"], num_threads=cfg["threads"])
            return labels
        yield {"m": cfg["m"], "ef_construction": cfg["ef_construction"], "ef": ef}, search


def faiss_metric(faiss, metric):
    return faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT


def build_faiss(cfg, base):
    import faiss
    faiss.omp_set_num_threads(cfg["threads"])
    d, metric = base.shape[1], faiss_metric(faiss, cfg["metric"])
    if cfg["index"] == "hnsw":
        index = faiss.IndexHNSWFlat(d, cfg["m"], metric)
        index.hnsw.efConstruction = cfg["ef_construction"]
    elif cfg["index"] == "hnsw_sq":
        # 8-bit scalar codes with a per-dimension range, like imgsearch's hnsw_sq; faiss builds
        # the graph on the codes and does not re-rank.
        index = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_8bit, cfg["m"], metric)
        index.hnsw.efConstruction = cfg["ef_construction"]
        index.train(base)
    elif cfg["index"] in ("ivf", "ivf_sq8"):
        quantizer = faiss.IndexFlat(d, metric)
        # faiss keeps a reference to the quantizer inside the index (add_ref_in_constructor).
        if cfg["index"] == "ivf":
            index = faiss.IndexIVFFlat(quantizer, d, cfg["nlist"], metric)
        else:
            index = faiss.IndexIVFScalarQuantizer(quantizer, d, cfg["nlist"],
                                                  faiss.ScalarQuantizer.QT_8bit, metric)
        index.cp.seed = cfg["seed"]
        index.train(base)
    elif cfg["index"] == "ivf_rabitq":
        # One-bit RaBitQ codes per list; faiss does not re-rank them itself, so IndexRefineFlat
        # re-ranks k_factor x k candidates exactly (imgsearch re-ranks by the error
        # bound instead, the paper's rule).
        quantizer = faiss.IndexFlat(d, metric)
        ivf = faiss.IndexIVFRaBitQ(quantizer, d, cfg["nlist"], metric)
        ivf.cp.seed = cfg["seed"]
        index = faiss.IndexRefineFlat(ivf)
        index.k_factor = cfg["k_factor"]
        index.train(base)
    else:
        index = faiss.IndexFlat(d, metric)
    index.add(base)
    return index


def sweep_faiss(cfg, index):
    import faiss
    # faiss 1.15's default distance_compute_blas_threshold is 128000 queries, so a batch of
    # thousands of queries takes the one-query-at-a-time SIMD path, ~10x slower here than its
    # BLAS path (see shared FINDINGS). Threshold 0 sends every batch to BLAS: best for batches,
    # but ~2x slower than the SIMD path for one query per call, so batch-1 runs keep the default.
    # It only affects flat scans (IVF's coarse quantizer included), never the results.
    if cfg["query_batch"] != 1:
        faiss.cvar.distance_compute_blas_threshold = 0
    blas = {"blas_threshold": faiss.cvar.distance_compute_blas_threshold}

    def search(q):
        _, labels = index.search(q, cfg["k"])
        return labels
    if cfg["index"] in ("hnsw", "hnsw_sq"):
        for ef in cfg["ef"]:
            index.hnsw.efSearch = ef
            yield {"m": cfg["m"], "ef_construction": cfg["ef_construction"], "ef": ef}, search
    elif cfg["index"] in ("ivf", "ivf_sq8"):
        for nprobe in cfg["nprobe"]:
            index.nprobe = nprobe
            yield {"nlist": cfg["nlist"], "nprobe": nprobe}, search
    elif cfg["index"] == "ivf_rabitq":
        ivf = faiss.downcast_index(index.base_index)
        for nprobe in cfg["nprobe"]:
            ivf.nprobe = nprobe
            yield {"nlist": cfg["nlist"], "nprobe": nprobe, "k_factor": cfg["k_factor"]}, search
    else:
        yield blas, search


def worker(cfg):
    """Builds one index in this process and prints one JSON line per parameter point."""
    base, queries, gt = load(cfg)
    data_rss = status_mb("VmRSS:")
    c0, t0 = time.process_time(), time.perf_counter()
    if cfg["library"] == "hnswlib":
        index = build_hnswlib(cfg, base)
        points = sweep_hnswlib(cfg, index)
    else:
        index = build_faiss(cfg, base)
        points = sweep_faiss(cfg, index)
    build_seconds, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    for params, search in points:
        qps, qps_cpu, ids = best_qps(search, queries, cfg["repeats"], cfg["query_batch"])
        record = {
            "library": cfg["library"], "version": library_version(cfg["library"]),
            "index": cfg["index"], "dataset": cfg["dataset"], "metric": cfg["metric"],
            "params": params, "threads": cfg["threads"], "queries": len(queries), "k": cfg["k"],
            f"recall_at_{cfg['k']}": round(recall_at_k(ids, gt, cfg["k"]), 5),
            "qps": round(qps, 1), "qps_cpu": round(qps_cpu, 1), "build_seconds": round(build_seconds, 3),
            "build_cpu_seconds": round(build_cpu, 3),
            "peak_rss_mb": round(status_mb("VmHWM:"), 1), "data_rss_mb": round(data_rss, 1),
        }
        if cfg["query_batch"]:
            record["query_batch"] = cfg["query_batch"]
        print(json.dumps(record), flush=True)


def library_version(name):
    from importlib.metadata import version
    return version("faiss-cpu" if name == "faiss" else name)


def int_list(text):
    return [int(x) for x in text.split(",") if x]


def main():
    ap = argparse.ArgumentParser(description="hnswlib and faiss figures in imgsearch's JSON lines")
    ap.add_argument("--data", help="TEXMEX directory (base.fvecs, query.fvecs, groundtruth.ivecs)")
    ap.add_argument("--dataset", help="name recorded in each line (default: the directory name)")
    ap.add_argument("--metric", choices=["l2", "ip", "cosine"], default="l2")
    ap.add_argument("--runs", default="hnswlib:hnsw,faiss:hnsw,faiss:ivf,faiss:flat",
                    help="comma-separated library:index pairs; library:index:N hands the "
                         "library N queries per call instead of all at once")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--queries", type=int, default=None, help="first N queries (default all)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--ef", type=int_list, default=int_list("10,16,24,32,48,64,96,128"))
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--nprobe", type=int_list, default=int_list("1,2,4,8,16,32,64"))
    ap.add_argument("--repeats", type=int, default=3, help="best of N passes over the queries")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--k-factor", type=int, default=RABITQ_K_FACTOR,
                    help="ivf_rabitq: candidates re-ranked exactly per hit (IndexRefineFlat)")
    ap.add_argument("--out", help="append the JSON lines to this file as well as stdout")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        worker(json.loads(args.worker))
        return
    if not args.data:
        ap.error("--data is required")
    for run in args.runs.split(","):
        library, index, *batch = run.split(":")
        if (library, index) not in {("hnswlib", "hnsw"), ("faiss", "hnsw"), ("faiss", "ivf"),
                                    ("faiss", "flat"), ("faiss", "hnsw_sq"),
                                    ("faiss", "ivf_sq8"), ("faiss", "ivf_rabitq")}:
            ap.error(f"unknown run {run}")
        cfg = {
            "library": library, "index": index, "data": args.data, "metric": args.metric,
            "dataset": args.dataset or os.path.basename(os.path.normpath(args.data)),
            "threads": args.threads, "queries": args.queries, "k": args.k, "m": args.m,
            "ef_construction": args.ef_construction, "ef": args.ef, "nlist": args.nlist,
            "nprobe": args.nprobe, "repeats": args.repeats, "seed": args.seed,
            "k_factor": args.k_factor,
            "query_batch": int(batch[0]) if batch else None,
        }
        print(f"# {library} {index}: building and sweeping", file=sys.stderr, flush=True)
        # A fresh interpreter per index, so that VmHWM is this index's peak and no allocator
        # state carries over from the previous one.
        # The thread count also bounds OpenMP and the BLAS that faiss links, which would
        # otherwise start one thread per core behind omp_set_num_threads' back.
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
                   OPENBLAS_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
        proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(cfg)],
                              stdout=subprocess.PIPE, text=True, check=True, env=env)
        sys.stdout.write(proc.stdout)
        sys.stdout.flush()
        if args.out:
            with open(args.out, "a") as f:
                f.write(proc.stdout)


if __name__ == "__main__":
    main()
