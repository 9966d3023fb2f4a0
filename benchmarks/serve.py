"""HTTP latency of `zsindex serve`: text search (new and repeated queries) and thumbnails.

    python benchmarks/serve.py [--sizes 100000,1000000] [--queries 60] [--repeats 200]

For each size, builds a real index (SQLite and FAISS) whose model is the
ViT-B-32 architecture with untrained weights (the text encoder's cost is that
of the real model), holding one real 12 MP camera JPEG from shared/data/photos
(ingested normally) and N synthetic clustered unit vectors. Starts a real
`zsindex serve` process on a free loopback port and measures, one request at
a time over a kept-alive connection:
- a new query: a text never seen (the text encoder runs, then FAISS);
- a repeated query: the same text again (its vector comes from the index's cache);
- thumbnails of the 12 MP JPEG at size 256: cold (cache folder emptied before each
  request: read, hash, reduced-size decode, resize, encode, write) and cached
  (sent from the cache file); and a revalidation answered 304.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import REPO, peak_rss_mb, report
from sqlalchemy import insert, select

from zsindex import schema as s
from zsindex.embedder import load_embedder
from zsindex.library import Library
from zsindex.store import now

PHOTO = REPO.parent / "shared" / "data" / "photos" / "Issue 525.jpg"  # 4032 x 3024, 12.2 MP
DIM = 512


def build(folder: Path, n: int, emb: object) -> tuple[Library, int]:
    """An index holding the photo (ingested) and n synthetic vectors; returns it and the photo's id."""
    photos = folder / "photos"
    photos.mkdir(parents=True)
    shutil.copy(PHOTO, photos / PHOTO.name)
    lib = Library(folder / "index", embedder=emb)  # type: ignore[arg-type]
    lib.ingest([photos], workers=0)
    model = lib.store.model()
    assert model is not None
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2000, DIM)).astype(np.float32)
    stamp = now()
    for start in range(0, n, 50_000):
        m = min(50_000, n - start)
        x = centres[rng.integers(0, len(centres), m)] + 0.35 * rng.normal(size=(m, DIM)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        with lib.store.session() as session:
            session.execute(insert(s.Image), [
                {"path": f"/bench/{start + i:07d}.jpg", "size": 1, "mtime_ns": 1, "sha256": f"{start + i:064d}",
                 "width": 640, "height": 480, "format": "JPEG", "status": s.STATUS_INDEXED, "first_seen": stamp,
                 "last_seen": stamp} for i in range(m)])
            session.execute(insert(s.Vector), [
                {"model_id": model.id, "sha256": f"{start + i:064d}", "vector": x[i].tobytes()} for i in range(m)])
            lib.store.bump_generation(session)
    lib.rebuild()  # the FAISS file an ingest would have left (IVF from 100,000 vectors up)
    with lib.store.session() as session:
        photo_id = session.scalar(select(s.Image.id).where(s.Image.path.like(f"%{PHOTO.name}")))
    return lib, int(photo_id or 0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(index: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("ZSINDEX_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "zsindex", "serve", "--index", str(index), "--port", str(port),
                             "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "server died")
        try:
            if httpx.get(base + "/api/status", timeout=5).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("server did not start")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def ms(samples: list[float]) -> tuple[float, float]:
    a = np.array(samples) * 1000
    return round(float(np.percentile(a, 50)), 1), round(float(np.percentile(a, 99)), 1)


def timed_get(http: object, url: str, **kwargs: object) -> float:
    t = time.perf_counter()
    r = http.get(url, **kwargs)  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - t
    assert r.status_code in (200, 304), (url, r.status_code, r.text[:200])
    return elapsed


def search_figures(base: str, n: int, queries: int, repeats: int) -> list[dict]:
    import httpx

    words = ["dog", "beach", "sunset", "mountain", "city", "car", "cat", "tree", "river", "bridge", "snow", "boat"]
    with httpx.Client(base_url=base, timeout=120) as http:
        first = timed_get(http, "/api/search", params={"q": "warm-up query", "k": 24})  # waits for the model
        new = [timed_get(http, "/api/search", params={"q": f"a {words[i % 12]} and a {words[(i * 5) % 12]} #{i}",
                                                         "k": 24}) for i in range(queries)]
        timed_get(http, "/api/search", params={"q": "a dog on a beach", "k": 24})
        repeated = [timed_get(http, "/api/search", params={"q": "a dog on a beach", "k": 24}) for _ in range(repeats)]
    (n50, n99), (r50, r99) = ms(new), ms(repeated)
    tag = f"{n // 1000}k"
    return [{"figure": f"search_new_query_p50_{tag}", "value": n50, "unit": "ms"},
            {"figure": f"search_new_query_p99_{tag}", "value": n99, "unit": "ms"},
            {"figure": f"search_repeated_query_p50_{tag}", "value": r50, "unit": "ms"},
            {"figure": f"search_repeated_query_p99_{tag}", "value": r99, "unit": "ms"},
            {"figure": f"first_query_after_start_{tag}", "value": round(first * 1000, 1), "unit": "ms"}]


def thumbnail_figures(base: str, index: Path, photo_id: int, cold_runs: int, cached_runs: int) -> list[dict]:
    import httpx

    url = f"/api/images/{photo_id}/thumbnail"
    with httpx.Client(base_url=base, timeout=120) as http:
        cold = []
        for _ in range(cold_runs):
            shutil.rmtree(index / "thumbnails", ignore_errors=True)
            cold.append(timed_get(http, url, params={"size": 256}))
        etag = http.get(url, params={"size": 256}).headers["etag"]
        cached = [timed_get(http, url, params={"size": 256}) for _ in range(cached_runs)]
        revalidated = [timed_get(http, url, params={"size": 256}, headers={"If-None-Match": etag})
                       for _ in range(cached_runs)]
        shutil.rmtree(index / "thumbnails", ignore_errors=True)
        cold_1024 = [timed_get(http, url, params={"size": 1024})]
    (c50, c99), (h50, h99), (v50, _) = ms(cold), ms(cached), ms(revalidated)
    return [{"figure": "thumbnail_12mp_cold_p50", "value": c50, "unit": "ms"},
            {"figure": "thumbnail_12mp_cold_p99", "value": c99, "unit": "ms"},
            {"figure": "thumbnail_cached_p50", "value": h50, "unit": "ms"},
            {"figure": "thumbnail_cached_p99", "value": h99, "unit": "ms"},
            {"figure": "thumbnail_304_p50", "value": v50, "unit": "ms"},
            {"figure": "thumbnail_12mp_cold_size_1024", "value": ms(cold_1024)[0], "unit": "ms"}]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100000,1000000", help="comma-separated numbers of synthetic vectors")
    p.add_argument("--queries", type=int, default=60, help="new queries per size")
    p.add_argument("--repeats", type=int, default=200, help="repeated queries per size")
    args = p.parse_args()
    if not PHOTO.is_file():
        print(f"needs {PHOTO} (the shared data folder beside the checkout)", file=sys.stderr)
        return 2
    emb = load_embedder("ViT-B-32", "random", device="cpu")
    figures: list[dict] = []
    setup: dict[str, float] = {}
    for i, n in enumerate(int(x) for x in args.sizes.split(",")):
        work = Path(tempfile.mkdtemp(prefix="zsindex-bench-serve-"))
        try:
            t = time.perf_counter()
            lib, photo_id = build(work, n, emb)
            lib.close()
            setup[f"{n}"] = round(time.perf_counter() - t, 1)
            proc, base = start_server(work / "index")
            try:
                figures += search_figures(base, n, args.queries, args.repeats)
                if i == 0:
                    figures += thumbnail_figures(base, work / "index", photo_id, 10, 200)
            finally:
                stop_server(proc)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    figures.append({"figure": "peak_rss_benchmark_and_servers", "value": peak_rss_mb(), "unit": "MB"})
    report("serve", figures, sizes=args.sizes, setup_seconds_not_timed=setup, photo=PHOTO.name,
           model="ViT-B-32 (untrained weights)", note="one request at a time over a kept-alive connection")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
