"""Upload latency of a running `imgsearch serve`: uploads every query image one at a time over
one keep-alive connection, and times each request from the first byte sent to the last byte of
the JSON answer read. By default to POST /api/search (multipart, k = 10: upload-to-results);
with --add to POST /api/images (upload-to-indexed: stored, embedded and committed). With --add,
every image must be new to the index (an image uploaded twice is the same image), so there is
no warm-up round and --rounds must be 1.

Usage: client.py HOST:PORT QUERY_DIR [--add] [--warmup 10] [--rounds 1] [--json OUT] [--label NAME]
"""

import argparse
import http.client
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchlib import append_result, percentile  # noqa: E402  (bench/ is on the path only now)


def multipart(image: bytes, name: str, with_k: bool):
    b = uuid.uuid4().hex
    k = f"--{b}\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n10\r\n" if with_k else ""
    head = (
        f"{k}"
        f"--{b}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
        f"Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + image + f"\r\n--{b}--\r\n".encode(), f"multipart/form-data; boundary={b}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("addr")
    ap.add_argument("queries", type=Path)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--label", default="")
    ap.add_argument("--add", action="store_true", help="time POST /api/images instead of search")
    a = ap.parse_args()
    if a.add:
        a.warmup, a.rounds = 0, 1
    route, expect = ("/api/images", 201) if a.add else ("/api/search", 200)
    host, port = a.addr.rsplit(":", 1)
    files = sorted(a.queries.glob("*.jpg"))
    bodies = [multipart(f.read_bytes(), f.name, not a.add) for f in files]
    conn = http.client.HTTPConnection(host, int(port), timeout=60)

    def one(body, ctype):
        t = time.perf_counter()
        conn.request("POST", route, body=body, headers={"Content-Type": ctype})
        r = conn.getresponse()
        data = r.read()
        dt = time.perf_counter() - t
        if r.status != expect:
            raise SystemExit(f"HTTP {r.status}: {data[:300]!r}")
        hits = json.loads(data)
        return dt, hits

    for body, ctype in bodies[: a.warmup]:
        one(body, ctype)
    ms = []
    top1_score = []
    server_ms = []
    for _ in range(a.rounds):
        for body, ctype in bodies:
            dt, hits = one(body, ctype)
            ms.append(dt * 1000)
            if a.add:
                continue
            server_ms.append(hits["took_ms"])
            results = hits["hits"]
            if results:
                top1_score.append(results[0]["score"])
    mean_kb = statistics.mean(len(b) for b, _ in bodies) / 1024
    out = {
        "label": a.label,
        "route": route,
        "queries": len(ms),
        "upload_kb_mean": round(mean_kb, 1),
        "p50_ms": round(percentile(ms, 50), 1),
        "p90_ms": round(percentile(ms, 90), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "mean_ms": round(statistics.mean(ms), 1),
        "max_ms": round(max(ms), 1),
        "server_p50_ms": round(percentile(server_ms, 50), 1) if server_ms else None,
        "server_p99_ms": round(percentile(server_ms, 99), 1) if server_ms else None,
        "top1_score_median": round(statistics.median(top1_score), 4) if top1_score else None,
    }
    print(json.dumps(out))
    append_result(out, a.json)


if __name__ == "__main__":
    main()
