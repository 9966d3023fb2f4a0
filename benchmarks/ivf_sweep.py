"""How many lists, how many probed, how wide a re-ranking? IVF-PQ variants on one data set, in memory.

    python benchmarks/ivf_sweep.py [--data photos|isotropic] [--vectors 1000000]
                                   [--configs 447:flat,2000:flat,2000:hnsw] [--queries 200]

The data models of ``vectors_large.py`` (``benchmarks/common.py``), held in
memory (no SQL: only FAISS differs). Each config is ``LISTS:QUANTIZER`` with
QUANTIZER ``flat`` (an exact scan of the centroids chooses lists) or ``hnsw``
(an HNSW graph over the same trained centroids, as zsindex uses from
``HNSW_LISTS`` lists); every variant has 64-byte codes and spherical k-means
(ten rounds) on 40 training vectors per list, as ``zsindex.vectors`` trains
them. For 8–128 lists probed it reports FAISS's search p50 (one query at a
time, 400 candidates) and recall@10 after exact re-ranking of the first 100,
200 and 400 candidates (the share of the true top 10 among them), plus
training and adding seconds.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from common import PhotoLike, report

from zsindex.vectors import _faiss, pq_bytes


def data(kind: str, n: int, dim: int, n_queries: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if kind == "photos":
        g = PhotoLike(n, dim, rng)
        x = np.concatenate([g.chunk(min(50_000, n - s)) for s in range(0, n, 50_000)])
        return x, g.queries(n_queries).astype(np.float32)
    centres = rng.normal(size=(2000, dim)).astype(np.float32)
    x = np.empty((n, dim), np.float32)
    for s in range(0, n, 50_000):
        m = min(50_000, n - s)
        part = centres[rng.integers(0, 2000, m)] + 0.35 * rng.normal(size=(m, dim)).astype(np.float32)
        x[s:s + m] = part / np.linalg.norm(part, axis=1, keepdims=True)
    q = x[rng.choice(n, n_queries, replace=False)] + 0.1 * rng.normal(size=(n_queries, dim)).astype(np.float32)
    return x, q / np.linalg.norm(q, axis=1, keepdims=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=("photos", "isotropic"), default="photos")
    p.add_argument("--vectors", type=int, default=1_000_000)
    p.add_argument("--configs", default="447:flat,2000:flat,2000:hnsw")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--dim", type=int, default=512)
    args = p.parse_args()
    faiss = _faiss()
    n, dim = args.vectors, args.dim
    x, q = data(args.data, n, dim, args.queries, np.random.default_rng(n))
    scores = q @ x.T
    top = np.argsort(-scores, axis=1)[:, :11]
    gap = np.take_along_axis(scores, top, axis=1)
    del scores
    truth = [set(row[:10].tolist()) for row in top]
    figures: list[dict] = [{"figure": "exact_score_gap_10th_to_11th_median",
                            "value": round(float(np.median(gap[:, 9] - gap[:, 10])), 5), "unit": "cosine"}]
    for config in args.configs.split(","):
        nlist_text, chooser = config.split(":")
        nlist = int(nlist_text)
        t = time.perf_counter()
        index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, pq_bytes(dim), 8, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter, index.cp.spherical = 10, True
        index.train(x[np.random.default_rng(0).choice(n, min(n, max(40 * nlist, 10_000)), replace=False)])
        graph = None
        if chooser == "hnsw":
            graph = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            graph.hnsw.efConstruction = 80
            graph.add(index.quantizer.reconstruct_n(0, nlist))
            graph.hnsw.efSearch = 128
            index.quantizer = graph  # kept alive by `graph`
        train_s = time.perf_counter() - t
        t = time.perf_counter()
        index.add(x)
        add_s = time.perf_counter() - t
        figures += [{"figure": f"train_seconds_{config}", "value": round(train_s, 1), "unit": "s"},
                    {"figure": f"add_seconds_{config}", "value": round(add_s, 1), "unit": "s"}]
        for nprobe in (8, 16, 32, 64, 128):
            if nprobe > nlist:
                continue
            params = faiss.SearchParametersIVF(nprobe=nprobe)
            times, found = [], []
            for row in q:
                t = time.perf_counter()
                found.append(index.search(row[None, :], 400, params=params)[1][0])
                times.append(time.perf_counter() - t)
            tag = f"{config}_nprobe{nprobe}"
            figures.append({"figure": f"faiss_p50_{tag}", "value": round(float(np.median(times)) * 1000, 2),
                            "unit": "ms"})
            for w in (100, 200, 400):
                recall = np.mean([len(want & set(f[:w].tolist())) / 10 for want, f in zip(truth, found)])
                figures.append({"figure": f"recall_at_10_reranking_{w}_{tag}", "value": round(float(recall), 4),
                                "unit": "fraction"})
        del index, graph
    report("ivf_sweep", figures, data=args.data, vectors=n, dim=dim, queries=args.queries,
           load_average_at_end=os.getloadavg())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
