"""A bounded load test on loopback: 16 clients for 20 s against a real uvicorn server while an
ingest job and a tag job run. Zero errors, nothing lost; latency p50/p99 printed (not asserted)."""

from __future__ import annotations

import json
import threading
import time

import httpx
import numpy as np
import pytest

import zsindex
from zsindex import shapes
from zsindex.service import create_app

from .service_world import build_index, running_server

CLIENTS = 16
SECONDS = 20.0
MAX_REQUESTS_PER_CLIENT = 5000
WORDS = ["red", "green", "blue", "yellow", "orange", "purple", "circle", "square", "triangle", "star", "shape"]


def client_loop(base: str, seed: int, stop_at: float, out: list, errors: list) -> None:
    rng = np.random.default_rng(seed)
    with httpx.Client(base_url=base, timeout=30) as http:
        for n in range(MAX_REQUESTS_PER_CLIENT):
            if time.monotonic() >= stop_at:
                return
            pick = n % 4
            if pick == 0:  # a repeated query
                req = ("/api/search", {"q": "a red circle", "k": 24})
            elif pick == 1:  # a new query (the text encoder runs)
                req = ("/api/search", {"q": " ".join(rng.choice(WORDS, 3)) + f" {seed}-{n}", "k": 12})
            elif pick == 2:
                req = ("/api/images/1", {})
            else:
                req = ("/api/images/2/thumbnail", {"size": 128})
            t = time.perf_counter()
            try:
                r = http.get(req[0], params=req[1])
                if r.status_code != 200:
                    errors.append((req, r.status_code, r.text[:200]))
            except httpx.HTTPError as e:
                errors.append((req, "exception", repr(e)))
            out.append((req[0], time.perf_counter() - t))


@pytest.mark.slow
def test_sixteen_clients_while_ingest_and_tag_jobs_run(tmp_path, demo_embedder):
    index, pics = build_index(tmp_path, demo_embedder, copies=1)
    before = zsindex.open(index).status()["images"]["indexed"]
    extra = shapes.save_world(pics / "extra", [[shapes.Thing("green", "star")]] * 60, seed=9)
    lib = zsindex.open(index, embedder=demo_embedder)
    lib.labels_put("shapes", ["circle", "square", "triangle", "star"])
    app = create_app(lib, roots=[pics], ingest_workers=0)
    samples: list = []
    errors: list = []
    with running_server(app) as base, httpx.Client(base_url=base, timeout=30) as http:
        ingest = http.post("/api/ingest", json={}).json()
        tag = http.post("/api/labels/shapes/tag", json={"mode": "multi"}).json()
        stop_at = time.monotonic() + SECONDS
        threads = [threading.Thread(target=client_loop, args=(base, i, stop_at, samples, errors))
                   for i in range(CLIENTS)]
        for t in threads:
            t.start()
        during = []
        while any(t.is_alive() for t in threads):
            during.append(http.get(f"/api/jobs/{ingest['id']}").json()["state"])
            time.sleep(1)
        for t in threads:
            t.join(60)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            jobs = [http.get(f"/api/jobs/{j['id']}").json() for j in (ingest, tag)]
            if all(j["state"] in ("done", "failed") for j in jobs):
                break
            time.sleep(0.5)
        status = http.get("/api/status").json()
    assert not errors, errors[:5]
    assert [j["state"] for j in jobs] == ["done", "done"], jobs
    assert "running" in during  # the clients really ran while the ingest job did
    assert jobs[0]["result"]["added"] == len(extra) and status["images"]["indexed"] == before + len(extra)
    assert jobs[1]["result"]["images"] > 0
    ms = np.array([s for _, s in samples]) * 1000
    search_ms = np.array([s for p, s in samples if p == "/api/search"]) * 1000
    print(json.dumps({"load": {"clients": CLIENTS, "seconds": SECONDS, "requests": len(samples), "errors": len(errors),
                               "p50_ms": round(float(np.percentile(ms, 50)), 1),
                               "p99_ms": round(float(np.percentile(ms, 99)), 1),
                               "search_p50_ms": round(float(np.percentile(search_ms, 50)), 1),
                               "search_p99_ms": round(float(np.percentile(search_ms, 99)), 1)}}))
    assert len(samples) > CLIENTS * 10
