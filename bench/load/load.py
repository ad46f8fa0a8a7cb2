"""Mixed load on a running `imgsearch serve`: N clients, each on its own keep-alive connection,
for a fixed time, drawing requests from a weighted mix of what the page and API clients send,
plus a share of hostile requests that must be refused with a 4xx (oversized id lists, huge
filters, cross-site writes, unknown hosts). Prints and optionally appends one JSON line:
requests, status counts, 5xx count, p50/p99 latency, and the server's RSS before and after
(read from /proc/PID/status).

Usage: load.py HOST:PORT IMAGE_DIR --pid PID [--clients 8] [--seconds 120] [--token T] [--json OUT]
"""

import argparse
import http.client
import json
import random
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchlib import append_result, percentile  # noqa: E402  (bench/ is on the path only now)


def rss_kib(pid, field="VmRSS"):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def multipart(fields):
    b = uuid.uuid4().hex
    out = b""
    for name, value, filename in fields:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{b}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + value + b"\r\n"
    return out + f"--{b}--\r\n".encode(), f"multipart/form-data; boundary={b}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("addr")
    ap.add_argument("images", type=Path)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--token", default="")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    host, port = a.addr.rsplit(":", 1)
    images = [p.read_bytes() for p in sorted(a.images.iterdir()) if p.suffix in (".jpg", ".png")]
    auth = {"Authorization": f"Bearer {a.token}"} if a.token else {}
    own = {"Host": f"127.0.0.1:{port}"}

    setup = http.client.HTTPConnection(host, int(port), timeout=60)
    setup.request("GET", "/api/search?text=a&k=50", headers={**auth, **own})
    hits = json.loads(setup.getresponse().read()).get("hits", [])
    ids = [h["id"] for h in hits] or [1]
    body = json.dumps({"name": "load", "dimension": 8, "metric_type": "L2"})
    setup.request("POST", "/api/collections", body=body,
                  headers={**auth, **own, "Content-Type": "application/json"})
    setup.getresponse().read()
    pts = [{"id": i, "vector": [random.random() for _ in range(8)]} for i in range(1, 501)]
    setup.request("POST", "/api/collections/load/insert", body=json.dumps({"data": pts}),
                  headers={**auth, **own, "Content-Type": "application/json"})
    setup.getresponse().read()

    def request(rng):
        """One request of the mix: (method, path, body, headers, expect_4xx)."""
        r = rng.random()
        js = {**auth, **own, "Content-Type": "application/json"}
        if r < 0.25:
            body, ctype = multipart([("image", rng.choice(images), "q.jpg"), ("k", b"10", None)])
            return "POST", "/api/search", body, {**auth, **own, "Content-Type": ctype}, False
        if r < 0.40:
            return "GET", f"/api/search?id={rng.choice(ids)}&k=10", None, {**auth, **own}, False
        if r < 0.50:
            word = rng.choice(["cat", "coffee", "rocket", "clock", "tabby"])
            return "GET", f"/api/search?text={word}", None, {**auth, **own}, False
        if r < 0.65:
            return "GET", f"/api/images/{rng.choice(ids)}/thumbnail", None, {**auth, **own}, False
        if r < 0.75:
            q = {"data": [[rng.random() for _ in range(8)]], "limit": 10,
                 "filter": {"in": {"field": "n", "values": list(range(50))}}}
            return "POST", "/api/collections/load/search", json.dumps(q), js, False
        if r < 0.80:
            return "GET", "/api/status", None, {**auth, **own}, False
        if r < 0.84:
            # An upload of a fresh image: a sample with random trailing bytes, a new hash.
            img = rng.choice(images) + uuid.uuid4().bytes
            body, ctype = multipart([("image", img, "up.jpg")])
            return "POST", "/api/images", body, {**auth, **own, "Content-Type": ctype}, False
        # Hostile: each must be refused with a 4xx.
        kind = rng.randrange(5)
        if kind == 0:
            body = json.dumps({"ids": [1] * 50_000})
            return "POST", "/api/collections/load/get", body, js, True
        if kind == 1:
            body = json.dumps({"data": [[0.0] * 8] * 1024, "limit": 1000})
            return "POST", "/api/collections/load/search", body, js, True
        if kind == 2:
            body, ctype = multipart([("image", rng.choice(images), "x.jpg")])
            h = {**auth, **own, "Content-Type": ctype, "Origin": "http://evil.example",
                 "Sec-Fetch-Site": "cross-site"}
            return "POST", "/api/images", body, h, True
        if kind == 3:
            return "GET", "/api/status", None, {**auth, "Host": f"attacker.example:{port}"}, True
        f = json.dumps({"in": {"field": "size", "values": list(range(20_000))}})
        body, ctype = multipart([("image", rng.choice(images), "q.jpg"), ("filter", f.encode(), None)])
        return "POST", "/api/search", body, {**auth, **own, "Content-Type": ctype}, True

    lock = threading.Lock()
    latencies, statuses, unexpected = [], {}, []
    deadline = time.monotonic() + a.seconds

    def client(seed):
        rng = random.Random(seed)
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        while time.monotonic() < deadline:
            method, path, body, headers, hostile = request(rng)
            t = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                res = conn.getresponse()
                res.read()
                status = res.status
                if res.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPConnection(host, int(port), timeout=120)
            except (OSError, http.client.HTTPException) as e:
                status = f"error:{type(e).__name__}"
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=120)
            ms = (time.perf_counter() - t) * 1e3
            with lock:
                latencies.append(ms)
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                ok = isinstance(status, int) and (400 <= status < 500 if hostile else status < 400)
                if not ok and status != 503:
                    unexpected.append(f"{method} {path[:60]} -> {status}")

    rss_before = rss_kib(a.pid)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(a.clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    result = {
        "label": a.label,
        "clients": a.clients,
        "seconds": round(elapsed, 1),
        "requests": len(latencies),
        "per_second": round(len(latencies) / elapsed, 1),
        "statuses": dict(sorted(statuses.items())),
        "count_5xx": sum(n for s, n in statuses.items() if s.startswith("5")),
        "count_503": statuses.get("503", 0),
        "unexpected": len(unexpected),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies, default=0), 1),
        "rss_before_mib": round(rss_before / 1024, 1),
        "rss_after_mib": round(rss_kib(a.pid) / 1024, 1),
        "rss_peak_mib": round(rss_kib(a.pid, "VmHWM") / 1024, 1),
    }
    print(json.dumps(result, indent=1))
    for line in unexpected[:10]:
        print("unexpected:", line)
    append_result(result, a.json)


if __name__ == "__main__":
    main()
