"""Builds the latency benchmark's corpus: N JPEG photos derived from a folder of real photos.

Every source photo yields several variants (random crop, flip, small rotation, colour change,
scale, JPEG quality), so the index holds N distinct real-looking images while the source set
(../shared/data/flowers17 has 800) stays small. Deterministic for a seed. Also writes the query
sets: `queries/original` (source photos as they are) and `queries/large` (the same photos scaled
to 12 megapixels, the size of a phone photo).

Usage: make_corpus.py SRC OUT [--images 10000] [--queries 200] [--seed 0]
"""

import argparse
import json
import random
from pathlib import Path

from PIL import Image, ImageEnhance, ImageOps


def sources(src: Path):
    exts = {".jpg", ".jpeg", ".png", ".webp"}
    return sorted(p for p in src.rglob("*") if p.suffix.lower() in exts)


def variant(img: Image.Image, rng: random.Random) -> Image.Image:
    w, h = img.size
    f = rng.uniform(0.6, 0.95)
    cw, ch = int(w * f), int(h * f)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    out = img.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        out = ImageOps.mirror(out)
    out = out.rotate(rng.uniform(-10, 10), resample=Image.BILINEAR, expand=False)
    out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.75, 1.25))
    out = ImageEnhance.Contrast(out).enhance(rng.uniform(0.75, 1.25))
    out = ImageEnhance.Color(out).enhance(rng.uniform(0.7, 1.3))
    side = rng.randint(400, 800)
    scale = side / max(out.size)
    return out.resize((max(1, int(out.width * scale)), max(1, int(out.height * scale))), Image.BILINEAR)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    stamp = a.out / "corpus.json"
    want = {"images": a.images, "queries": a.queries, "seed": a.seed, "src": str(a.src.resolve())}
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        print(f"corpus in {a.out} is up to date")
        return
    files = sources(a.src)
    if not files:
        raise SystemExit(f"no photos under {a.src}")
    rng = random.Random(a.seed)
    corpus = a.out / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    per = -(-a.images // len(files))
    n = 0
    for i, f in enumerate(files):
        img = Image.open(f).convert("RGB")
        for k in range(per):
            if n == a.images:
                break
            d = corpus / f"{i // 100:02d}"
            d.mkdir(exist_ok=True)
            variant(img, rng).save(d / f"{f.stem}-{i:04d}-v{k:02d}.jpg", quality=rng.randint(70, 92))
            n += 1
        if (i + 1) % 100 == 0:
            print(f"  {n} / {a.images} images", flush=True)

    picked = rng.sample(files, min(a.queries, len(files)))
    for kind in ("original", "large"):
        (a.out / "queries" / kind).mkdir(parents=True, exist_ok=True)
    for j, f in enumerate(picked):
        img = Image.open(f).convert("RGB")
        img.save(a.out / "queries" / "original" / f"q{j:04d}.jpg", quality=90)
        scale = (12e6 / (img.width * img.height)) ** 0.5
        big = img.resize((int(img.width * scale), int(img.height * scale)), Image.BICUBIC)
        big.save(a.out / "queries" / "large" / f"q{j:04d}.jpg", quality=90)
    stamp.write_text(json.dumps(want))
    print(f"wrote {n} images to {corpus} and {len(picked)} queries of each size")


if __name__ == "__main__":
    main()
