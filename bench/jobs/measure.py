"""Search latency of a running `imgsearch serve` while it is idle and while an indexing job runs.

Sends searches one at a time over one keep-alive connection (by id: a vector search; by image: an
upload decoded and embedded), first with the server idle, then after submitting a job over
JOB_DIR, for as long as the job runs, and prints p50/p99 of each phase and their ratio.
The token comes from DATA_DIR/server.json (starting a job needs it).

Usage: measure.py DATA_DIR JOB_DIR QUERY_IMAGE [--kind id|image] [--idle 2000] [--json OUT]
       [--label TEXT]
"""

import argparse
import http.client
import json
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchlib import append_result, percentile  # noqa: E402  (bench/ is on the path only now)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("job_dir", type=Path)
    ap.add_argument("query", type=Path)
    ap.add_argument("--kind", choices=["id", "image"], default="id")
    ap.add_argument("--idle", type=int, default=2000)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    server = json.loads((a.data / "server.json").read_text())
    host, port = server["address"].rsplit(":", 1)
    auth = {"Authorization": f"Bearer {server['token']}"}
    conn = http.client.HTTPConnection(host, int(port), timeout=300)

    def call(method, path, body=None, headers=None):
        conn.request(method, path, body=body, headers={**auth, **(headers or {})})
        res = conn.getresponse()
        data = res.read()
        if res.status >= 300:
            raise SystemExit(f"{method} {path}: {res.status} {data[:300]!r}")
        return json.loads(data)

    image = a.query.read_bytes()
    b = uuid.uuid4().hex
    upload = (
        f"--{b}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"q\"\r\n"
        f"Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + image + f"\r\n--{b}--\r\n".encode()
    first = call("POST", "/api/search", upload, {"Content-Type": f"multipart/form-data; boundary={b}"})
    qid = first["hits"][0]["id"]

    def search():
        t = time.perf_counter()
        if a.kind == "id":
            call("GET", f"/api/search?id={qid}&k=10")
        else:
            call("POST", "/api/search", upload, {"Content-Type": f"multipart/form-data; boundary={b}"})
        return (time.perf_counter() - t) * 1e3

    for _ in range(10):
        search()
    idle = [search() for _ in range(a.idle)]
    job = call("POST", "/api/jobs/index", json.dumps({"paths": [str(a.job_dir.resolve())]}),
               {"Content-Type": "application/json"})
    busy = []
    while True:
        busy.append(search())
        if len(busy) % 10 == 0 and call("GET", f"/api/jobs/{job['id']}")["state"] != "running":
            break
    end = call("GET", f"/api/jobs/{job['id']}")
    report = end.get("report") or {}
    out = {
        "label": a.label,
        "kind": a.kind,
        "idle_n": len(idle), "idle_p50_ms": round(percentile(idle, 50), 2),
        "idle_p99_ms": round(percentile(idle, 99), 2),
        "job_n": len(busy), "job_p50_ms": round(percentile(busy, 50), 2),
        "job_p99_ms": round(percentile(busy, 99), 2),
        "p99_ratio": round(percentile(busy, 99) / percentile(idle, 99), 2),
        "job_state": end["state"], "job_added": report.get("added"),
        "job_seconds": report.get("seconds"),
    }
    print(json.dumps(out))
    append_result(out, a.json)


if __name__ == "__main__":
    main()
