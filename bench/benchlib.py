"""Helpers shared by the benchmark clients (bench/*/*.py), which put bench/ on sys.path to import
this module, so that every benchmark computes and records its numbers the same way."""

import json


def percentile(xs, q):
    """The q-th percentile of xs by nearest rank; 0.0 when there are no samples."""
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))] if xs else 0.0


def append_result(result, path):
    """Appends one result as a JSON line to the results file `path` (a Path; its folder is made
    if missing); does nothing when no file was asked for."""
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(json.dumps(result) + "\n")
