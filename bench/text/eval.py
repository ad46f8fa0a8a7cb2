#!/usr/bin/env python3
"""Text-to-image mAP of `imgsearch search --text` on a folder-per-class photo set.

The photos must already be indexed in --data-dir. Queries are plain words: each class's name,
and words for kinds of those classes. Which classes a kind word is relevant for is decided by
WordNet itself (a class is relevant when its meaning lies under the word's), so the judgement
does not depend on the search under test. Kind words relevant for no class or for every class
are left out (for the latter every ranking is perfect).

Prints one JSON line per query and a summary line; AP counts every relevant image of the set
(an image the search does not return counts as a miss).
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "models", "wordnet"))
from build_table import parse_data, parse_index  # noqa: E402

# The Oxford 17 Category Flower Dataset's first ten classes, in its order (c1..c10).
FLOWERS17 = ["daffodil", "snowdrop", "lily of the valley", "bluebell", "crocus", "iris",
             "tiger lily", "tulip", "fritillary", "sunflower"]
KINDS = ["bulbous plant", "lily", "liliaceous plant", "iridaceous plant", "wildflower",
         "bulb", "flowering plant"]
PLANT = "00017222"  # WordNet 3.0: plant, flora, plant life


def ancestors(off, hypernyms):
    seen, stack = set(), [off]
    while stack:
        s = stack.pop()
        if s not in seen:
            seen.add(s)
            stack.extend(hypernyms.get(s, []))
    return seen


def plant_senses(word, senses, hypernyms):
    """The word's meanings that are plants (so "iris" is the flower, not the eye)."""
    return [s for s in senses.get(word.replace(" ", "_"), []) if PLANT in ancestors(s, hypernyms)]


def average_precision(ranked, relevant, total_relevant):
    hits, precision_sum = 0, 0.0
    for rank, item in enumerate(ranked, 1):
        if item in relevant:
            hits += 1
            precision_sum += hits / rank
    return precision_sum / total_relevant if total_relevant else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--photos", required=True, help="folder with one sub-folder per class")
    ap.add_argument("--classes", default="c1,c2,c3,c4,c5,c6,c7,c8,c9,c10")
    ap.add_argument("--wordnet", default="/usr/share/wordnet")
    ap.add_argument("--label", default="")
    a = ap.parse_args()

    hypernyms, _ = parse_data(f"{a.wordnet}/data.noun")
    senses = parse_index(f"{a.wordnet}/index.noun")
    classes = a.classes.split(",")
    names = FLOWERS17[: len(classes)]
    class_ancestors = [set().union(*(ancestors(s, hypernyms) for s in plant_senses(n, senses, hypernyms)))
                       for n in names]
    members = {c: {os.path.realpath(os.path.join(a.photos, c, f))
                   for f in os.listdir(os.path.join(a.photos, c))} for c in classes}
    total = sum(len(m) for m in members.values())

    queries = [(n, {c}, "class name") for n, c in zip(names, classes)]
    for kind in KINDS:
        kind_senses = set(plant_senses(kind, senses, hypernyms))
        rel = {c for c, anc in zip(classes, class_ancestors) if anc & kind_senses}
        if 0 < len(rel) < len(classes):
            queries.append((kind, rel, "kind"))

    results = {"class name": [], "kind": []}
    for words, rel_classes, what in queries:
        relevant = set().union(*(members[c] for c in rel_classes))
        p = subprocess.run([a.bin, "--data-dir", a.data_dir, "search", "--text", words,
                            "-k", str(min(total, 1000)), "--json"],
                           capture_output=True, text=True)
        if p.returncode == 0:
            hits = json.loads(p.stdout)
            hits = hits["hits"] if isinstance(hits, dict) else hits
            ranked = [os.path.realpath(h["path"]) for h in hits]
            note = ""
        else:
            ranked, note = [], p.stderr.strip().splitlines()[-1][:200] if p.stderr.strip() else f"exit {p.returncode}"
        ap_value = average_precision(ranked, relevant, len(relevant))
        results[what].append(ap_value)
        print(json.dumps({"build": a.label, "query": words, "kind": what,
                          "relevant": sorted(rel_classes), "returned": len(ranked),
                          "ap": round(ap_value, 4), "chance": round(len(relevant) / total, 4),
                          "note": note}))
    summary = {"build": a.label, "summary": True}
    for what, aps in results.items():
        summary[f"map_{what.replace(' ', '_')}"] = round(sum(aps) / len(aps), 4) if aps else None
        summary[f"queries_{what.replace(' ', '_')}"] = len(aps)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
