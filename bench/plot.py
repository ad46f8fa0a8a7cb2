#!/usr/bin/env python3
"""Recall-vs-QPS plot (SVG) from the JSON lines of `ann` and `scripts/peers.py`.

One line per library/index (and API, for imgsearch's Collection runs), points sorted by recall;
an exact index with a single point shows as a marker. QPS is on a log scale, as in
ann-benchmarks' plots, and up-and-to-the-right is better.
"""

import argparse
import collections
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def series_name(rec):
    name = f"{rec['library']} {rec['index']}"
    if rec.get("api") not in (None, "index"):
        name += f" ({rec['api']})"
    if rec.get("query_batch"):
        name += f" (batch {rec['query_batch']})"
    return name


def load(paths):
    records = []
    for path in paths:
        with open(path) as f:
            records.extend(json.loads(line) for line in f if line.strip().startswith("{"))
    return records


def recall_key(rec):
    return next(key for key in rec if key.startswith("recall_at_"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("jsonl", nargs="+")
    ap.add_argument("--out", required=True, help="file to write (.svg, or .png)")
    ap.add_argument("--title", default=None)
    ap.add_argument("--min-recall", type=float, default=0.5, help="left edge of the x axis")
    ap.add_argument("--y", choices=["qps", "qps_cpu"], default="qps",
                    help="qps: queries per wall-clock second; qps_cpu: per CPU second (steadier "
                         "on a shared machine)")
    args = ap.parse_args()

    records = load(args.jsonl)
    if not records:
        raise SystemExit("no JSON lines to plot")
    series = collections.defaultdict(list)
    for rec in records:
        if args.y in rec:
            series[series_name(rec)].append((rec[recall_key(rec)], rec[args.y]))

    fig, ax = plt.subplots(figsize=(8, 5.5))
    colours = plt.get_cmap("tab20").colors
    for i, name in enumerate(sorted(series)):
        points = sorted(series[name])
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        ours = name.startswith("imgsearch")
        # Ours solid and thick, the peers dashed, so that each side reads at a glance.
        style = ("-o" if ours else "--o") if len(points) > 1 else ("s" if ours else "D")
        ax.plot(xs, ys, style, label=name, markersize=4, color=colours[(2 * i) % 20 + (i // 10) % 2],
                linewidth=2.2 if ours else 1.3)
    first = records[0]
    threads = sorted({rec["threads"] for rec in records})
    ax.set_title(args.title or f"{first.get('dataset', '')}: k={first.get('k', 10)}, "
                 f"{first.get('queries', '?')} queries, threads={','.join(map(str, threads))}")
    ax.set_xlabel(f"{recall_key(first).replace('_', ' ')}")
    ax.set_ylabel("queries per second (log)" if args.y == "qps"
                  else "queries per CPU second (log)")
    ax.set_yscale("log")
    ax.set_xlim(left=args.min_recall, right=1.0005)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower left", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out)  # the format follows the extension: .svg (the default use), .png
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
