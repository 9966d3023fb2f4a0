"""Search latency: vector search at 10k/100k/1M vectors, text encoding, and CLI cold start.

    python benchmarks/search.py [--sizes 10000,100000,1000000] [--queries 200]

Vectors are synthetic (dimension 512) but clustered like real embeddings
(2,000 Gaussian clusters on the unit sphere); queries are perturbed library
vectors. The index is built through zsindex.vectors (exact flat index below
IVF_THRESHOLD, IVF above), and recall@10 against exact search is reported so
the approximation is visible. Text encoding uses ViT-B-32's architecture with
untrained weights (same cost as trained). Cold start runs `zsindex search` in
a new process on an index of the demo images: once with a new query (model
load + text encoder) and once repeated (text vector from the cache).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import REPO, report

from zsindex.search import top_k
from zsindex.vectors import IVF_THRESHOLD, VectorIndex


def synthetic(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(size=(2000, dim)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def percentiles(samples: list[float]) -> tuple[float, float]:
    return round(float(np.percentile(samples, 50)) * 1000, 2), round(float(np.percentile(samples, 95)) * 1000, 2)


def vector_figures(n: int, dim: int, queries: int) -> list[dict]:
    rng = np.random.default_rng(n)
    x = synthetic(n, dim, rng)
    ids = np.arange(1, n + 1, dtype=np.int64)
    t = time.perf_counter()
    vi = VectorIndex.build(dim, ids, x)
    build_s = time.perf_counter() - t
    qs = x[rng.integers(0, n, queries)] + 0.1 * rng.normal(size=(queries, dim)).astype(np.float32)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    times, recalls = [], []
    for q in qs:
        t = time.perf_counter()
        got = top_k(vi, q, 10, None)
        times.append(time.perf_counter() - t)
        exact = set(ids[np.argpartition(-(x @ q), 10)[:10]].tolist())
        recalls.append(len(exact & {i for i, _ in got}) / 10)
    p50, p95 = percentiles(times)
    kind = "ivf" if n >= IVF_THRESHOLD else "flat"
    tag = f"{n}_{kind}"
    return [
        {"figure": f"vector_search_p50_{tag}", "value": p50, "unit": "ms"},
        {"figure": f"vector_search_p95_{tag}", "value": p95, "unit": "ms"},
        {"figure": f"recall_at_10_{tag}", "value": round(float(np.mean(recalls)), 4), "unit": "fraction"},
        {"figure": f"build_seconds_{tag}", "value": round(build_s, 1), "unit": "s"},
    ]


def text_figures(queries: int) -> list[dict]:
    from zsindex.embedder import load_embedder

    emb = load_embedder("ViT-B-32", "random", device="cpu")
    times = []
    for i in range(queries):
        t = time.perf_counter()
        emb.embed_texts([f"a photo of a dog on a beach number {i}"])
        times.append(time.perf_counter() - t)
    p50, p95 = percentiles(times)
    return [{"figure": "text_encode_p50_vit_b_32", "value": p50, "unit": "ms"},
            {"figure": "text_encode_p95_vit_b_32", "value": p95, "unit": "ms"}]


def cold_start_figures() -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="zsindex-bench-"))
    try:
        exe = [sys.executable, "-m", "zsindex"]
        subprocess.run([*exe, "demo", "--dir", str(work)], check=True, capture_output=True)
        index = str(work / "index")

        def timed(query: str) -> float:
            t = time.perf_counter()
            out = subprocess.run([*exe, "search", query, "--index", index, "-k", "1"], check=True,
                                 capture_output=True, text=True)
            assert out.stdout.strip()
            return time.perf_counter() - t

        new = timed("a blue square, first time")
        repeated = min(timed("a blue square, first time") for _ in range(3))
        return [{"figure": "cli_cold_start_new_query_demo_model", "value": round(new, 2), "unit": "s"},
                {"figure": "cli_cold_start_repeated_query", "value": round(repeated, 2), "unit": "s"}]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--queries", type=int, default=200)
    args = p.parse_args()
    figures: list[dict] = []
    for n in (int(v) for v in args.sizes.split(",")):
        figures += vector_figures(n, args.dim, args.queries)
    figures += text_figures(min(args.queries, 50))
    figures += cold_start_figures()
    report("search", figures, dim=args.dim, queries=args.queries, repo=str(REPO.name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
