#!/usr/bin/env python3
"""Summary table and the ratios imgsearch tracks, from the JSON lines of `ann` and `peers.py`.

For each library/index: build time, peak RSS, and the highest QPS among the measured points whose
recall@10 is at or above each target (0.95 and 0.99). No interpolation: a point counts only if it
was measured at or above the target, which is conservative for every library alike.
Ratios: imgsearch HNSW QPS / hnswlib QPS at each target, imgsearch HNSW build time / hnswlib
build time, imgsearch flat QPS / faiss flat QPS, and the SQ8 and RaBitQ kinds against our
unquantised index and faiss' quantised index of the same structure.
"""

import argparse
import collections
import json

TARGETS = (0.95, 0.99)


def recall_of(rec):
    return next(v for key, v in rec.items() if key.startswith("recall_at_"))


def best_at(points, target):
    ok = [p for p in points if recall_of(p) >= target]
    return max(ok, key=lambda p: p["qps"]) if ok else None


def key_of(rec):
    api, batch = rec.get("api"), rec.get("query_batch")
    index = rec["index"] + (f" ({api})" if api not in (None, "index") else "")
    return (rec["library"], index + (f" (batch {batch})" if batch else ""))


def params_text(rec):
    return ",".join(f"{k}={v}" for k, v in rec["params"].items()
                    if k not in ("m", "ef_construction", "nlist", "tables", "bits",
                                 "bucket_width")) or "-"


def best_cpu_at(points, target):
    ok = [p["qps_cpu"] for p in points if recall_of(p) >= target and "qps_cpu" in p]
    return max(ok) if ok else None


def cpu_pair(ours, peer, target):
    return best_cpu_at(ours, target), best_cpu_at(peer, target)


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "n/a"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("jsonl", nargs="+")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = ap.parse_args()

    groups = collections.defaultdict(list)
    for path in args.jsonl:
        with open(path) as f:
            for line in f:
                if line.strip().startswith("{"):
                    rec = json.loads(line)
                    groups[key_of(rec)].append(rec)

    header = ["library", "index", "build s (CPU s)", "peak RSS MB",
              "best QPS @0.95 (param, recall)", "best QPS @0.99 (param, recall)",
              "QPS per CPU s @0.95 / @0.99", "max recall"]
    rows = []
    for (lib, index), points in sorted(groups.items()):
        cpu_build = points[0].get("build_cpu_seconds")
        cells = [lib, index,
                 f"{points[0]['build_seconds']:.1f}" + (f" ({cpu_build:.1f})" if cpu_build else ""),
                 f"{max(p['peak_rss_mb'] for p in points):.0f}"]
        for t in TARGETS:
            b = best_at(points, t)
            cells.append(f"{b['qps']:.0f} ({params_text(b)}, {recall_of(b):.3f})" if b else "-")
        cpu = [best_cpu_at(points, t) for t in TARGETS]
        cells.append(" / ".join(f"{c:.0f}" if c else "-" for c in cpu))
        cells.append(f"{max(recall_of(p) for p in points):.4f}")
        rows.append(cells)
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)))

    ours, peer = groups.get(("imgsearch", "hnsw"), []), groups.get(("hnswlib", "hnsw"), [])
    print()
    for t in TARGETS:
        a, b = best_at(ours, t), best_at(peer, t)
        print(f"imgsearch HNSW QPS / hnswlib QPS at recall@10 >= {t}: "
              f"{ratio(a and a['qps'], b and b['qps'])} (wall clock); "
              f"{ratio(*cpu_pair(ours, peer, t))} (per CPU second)")
    if ours and peer:
        print(f"imgsearch HNSW build time / hnswlib build time: "
              f"{ratio(ours[0]['build_seconds'], peer[0]['build_seconds'])} (wall clock); "
              f"{ratio(ours[0].get('build_cpu_seconds'), peer[0].get('build_cpu_seconds'))} "
              f"(CPU seconds); below 1 is faster")
    for ours_key, peer_key, how in (
            ("flat", "flat (batch 1)", "one query per call"),
            ("flat (batch all)", "flat", "all queries in one call")):
        a, b = groups.get(("imgsearch", ours_key)), groups.get(("faiss", peer_key))
        if a and b:
            print(f"imgsearch flat QPS / faiss flat QPS ({how}): "
                  f"{ratio(a[0]['qps'], b[0]['qps'])} (wall clock); "
                  f"{ratio(*cpu_pair(a, b, 0.0))} (per CPU second)")
    ivf = groups.get(("imgsearch", "ivf"))
    for peer_key, how in (("ivf (batch 1)", "one query per call"), ("ivf", "faiss given all queries in one call")):
        if ivf and groups.get(("faiss", peer_key)):
            print(f"imgsearch IVF QPS / faiss IVF QPS at recall@10 >= 0.95 ({how}): "
                  f"{ratio(*cpu_pair(ivf, groups[('faiss', peer_key)], 0.95))} (per CPU second)")
    # Quantised kinds: against our unquantised index and against faiss' index of the same
    # structure and codes (SQ8: no re-ranking; RaBitQ: re-ranked by IndexRefineFlat), given all
    # queries at once or (batch 1) one per call.
    for quant, plain in (("hnsw_sq", "hnsw"), ("ivf_sq8", "ivf"), ("ivf_rabitq", "ivf"),
                         ("flat_rabitq", "flat"), ("hnsw_rabitq", "hnsw")):
        q = groups.get(("imgsearch", quant))
        if not q:
            continue
        peers = [(groups.get(("faiss", key)), f"faiss {key}")
                 for key in (quant, f"{quant} (batch 1)")]
        if plain == "hnsw":
            peers.append((groups.get(("hnswlib", "hnsw")), "hnswlib hnsw"))
        for other, label in [(groups.get(("imgsearch", plain)), f"imgsearch {plain}")] + peers:
            if other:
                cells = "; ".join(f"{ratio(*cpu_pair(q, other, t))} at recall@10 >= {t}"
                                  for t in TARGETS)
                print(f"imgsearch {quant} QPS / {label} QPS (per CPU second): {cells}")


if __name__ == "__main__":
    main()
