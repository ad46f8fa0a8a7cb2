#!/usr/bin/env python3
"""Builds the committed WordNet -> ImageNet-1k table that imgsearch's text search reads.

Inputs (never downloaded at run time):
  --wordnet DIR    WordNet 3.0's database (Debian package wordnet-base: /usr/share/wordnet)
  --synsets FILE   the 1,000 ImageNet-1k class ids in label order, one wnid per line
                   (timm/data/_info/imagenet_synsets.txt in the timm wheel on PyPI)
  --labels FILE    the model's labels.txt, same order, so the table can check the model it serves
Output: a text table (format in the header it writes), deterministic for the same inputs.
"""
import argparse
import collections
import hashlib
import sys

# How far above a word's own meaning the search may climb to find classes the model knows, and how
# many classes the meaning found that way may cover: "daffodil" climbs to the flowers the model
# knows, but not to "organism", which would say nothing. The direct parent may be broad ("pet" is
# an "animal"): one step up is still what the word means.
MAX_CLIMB = 4
MAX_PARENT_CLASSES = 500
MAX_FALLBACK_CLASSES = 64


def parse_data(path):
    hypernyms, words = {}, {}
    with open(path, encoding="latin-1") as f:
        for line in f:
            if line.startswith("  "):
                continue
            head = line.split(" | ", 1)[0].split()
            off = head[0]
            w_cnt = int(head[3], 16)
            ws = [head[4 + 2 * i] for i in range(w_cnt)]
            i = 4 + 2 * w_cnt
            p_cnt = int(head[i])
            ups = []
            for p in range(p_cnt):
                sym, target, pos = head[i + 1 + 4 * p: i + 4 + 4 * p]
                if sym in ("@", "@i") and pos == "n":
                    ups.append(target)
            hypernyms[off] = ups
            words[off] = ws
    return hypernyms, words


def parse_index(path):
    senses = {}
    with open(path, encoding="latin-1") as f:
        for line in f:
            if line.startswith("  "):
                continue
            parts = line.split()
            lemma = parts[0]
            synset_cnt = int(parts[2])
            senses[lemma] = parts[-synset_cnt:]
    return senses


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wordnet", default="/usr/share/wordnet")
    ap.add_argument("--synsets", required=True)
    ap.add_argument("--labels", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    hypernyms, _ = parse_data(f"{a.wordnet}/data.noun")
    senses = parse_index(f"{a.wordnet}/index.noun")
    wnids = [l.strip() for l in open(a.synsets) if l.strip()]
    labels = [l.rstrip("\n") for l in open(a.labels) if l.strip()]
    if len(wnids) != 1000 or len(labels) != 1000:
        sys.exit(f"expected 1000 synsets and labels, got {len(wnids)} and {len(labels)}")

    # Every synset that has classes below it (or is one), with those classes.
    under = collections.defaultdict(set)
    for c, wnid in enumerate(wnids):
        off = wnid[1:]
        if off not in hypernyms:
            sys.exit(f"{wnid} is not a WordNet 3.0 noun synset")
        stack, seen = [off], set()
        while stack:
            s = stack.pop()
            if s in seen:
                continue
            seen.add(s)
            under[s].add(c)
            stack.extend(hypernyms.get(s, []))

    def resolve(off):
        """The classes a meaning reaches: its own subtree, else the nearest specific ancestor's."""
        if off in under:
            return 0, under[off]
        frontier, seen = [off], {off}
        for climb in range(1, MAX_CLIMB + 1):
            nxt = []
            for s in frontier:
                for h in hypernyms.get(s, []):
                    if h not in seen:
                        seen.add(h)
                        nxt.append(h)
            found = set()
            hit = False
            for s in nxt:
                if s in under:
                    hit = True
                    found |= under[s]
            if hit:
                limit = MAX_PARENT_CLASSES if climb == 1 else MAX_FALLBACK_CLASSES
                return (climb, found) if len(found) <= limit else None
            frontier = nxt
        return None

    # Lemma -> every sense that reaches some class, as (climb, class group). The search weighs a
    # sense's classes by 2^-climb, so a word's own meaning counts fully and a guess from an
    # ancestor less: "fritillary" is a butterfly one step below classes the model knows and a
    # lily three steps below, and keeps both.
    groups = {}
    rows = []
    for lemma in sorted(senses):
        resolved = [r for r in (resolve(s) for s in senses[lemma]) if r is not None]
        if not resolved:
            continue
        refs = []
        for climb, classes in resolved:
            key = tuple(sorted(classes))
            g = groups.setdefault(key, len(groups))
            if (climb, g) not in refs:
                refs.append((climb, g))
        rows.append((lemma, refs))

    with open(a.out, "w") as out:
        out.write("# imgsearch text search: WordNet 3.0 noun lemmas -> ImageNet-1k classes.\n")
        out.write("# Made by models/wordnet/build_table.py from WordNet 3.0 (Princeton University,\n")
        out.write("# WordNet licence in LICENSE-WordNet beside this file) and the ImageNet-1k synset ids.\n")
        out.write("# Sections: 'L' the 1,000 labels in class order (checked against the model's);\n")
        out.write("# 'G' class groups, numbered from 0 in order (class numbers, runs written a-b);\n")
        out.write("# 'W' a lemma and, for each of its meanings that reaches classes, climb:group (climb 0:\n")
        out.write("# the meaning covers the group itself; n: its nearest ancestor n steps up does).\n")
        out.write("# 'X' an irregular plural and its lemma. Lemmas are WordNet's, with '_' between words.\n")
        out.write("# sha256 of the synset ids: " + hashlib.sha256("\n".join(wnids).encode()).hexdigest() + "\n")
        for l in labels:
            out.write(f"L\t{l}\n")
        for key, g in sorted(groups.items(), key=lambda kv: kv[1]):
            runs, start, prev = [], None, None
            for c in key:
                if start is None:
                    start = prev = c
                elif c == prev + 1:
                    prev = c
                else:
                    runs.append((start, prev))
                    start = prev = c
            runs.append((start, prev))
            out.write("G\t" + ",".join(f"{s}" if s == e else f"{s}-{e}" for s, e in runs) + "\n")
        # WordNet's irregular plurals ("mice mouse"), for the words the table knows.
        known = {lemma for lemma, _ in rows}
        with open(f"{a.wordnet}/noun.exc", encoding="latin-1") as exc:
            for line in exc:
                parts = line.split()
                if len(parts) >= 2 and parts[1] in known and parts[0] not in known:
                    out.write(f"X\t{parts[0]}\t{parts[1]}\n")
        for lemma, refs in rows:
            out.write(f"W\t{lemma}\t" + ",".join(f"{c}:{g}" for c, g in refs) + "\n")
    print(f"{len(rows)} lemmas, {len(groups)} groups", file=sys.stderr)


if __name__ == "__main__":
    main()
