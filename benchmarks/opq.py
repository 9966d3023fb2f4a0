"""Does OPQ help zsindex's compressed index? IVF-PQ with and without an OPQ rotation, same data.

    python benchmarks/opq.py [--vectors 500000] [--queries 200] [--dim 512]

Synthetic unit vectors clustered like real embeddings (as the other benchmarks
make them), held in memory (no SQL: only the FAISS side differs). Both
variants use the parameters `zsindex.vectors.new_faiss_index` picks for
`ivfpq` (lists, code bytes, lists probed, training sample); the OPQ variant
puts FAISS's `OPQMatrix` (a learnt rotation that balances the variance over
the sub-quantisers) in front of the same IVF-PQ index. Reported per variant:
build seconds (training and adding), bytes per vector of the written file,
search p50 of the candidate search, and recall@10 after exact re-ranking: the
share of the true top-10 found among the candidates zsindex re-ranks (the
re-ranking itself is exact, so that share is the final recall), plus the
recall@10 of the codes alone, without re-ranking.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from common import report

from zsindex.vectors import RERANK, _faiss, new_faiss_index


def clustered(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(size=(2000, dim)).astype(np.float32)
    x = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        part = centres[rng.integers(0, len(centres), m)] + 0.35 * rng.normal(size=(m, dim)).astype(np.float32)
        x[start:start + m] = part / np.linalg.norm(part, axis=1, keepdims=True)
    return x


def with_opq(plain, dim: int):
    """The same IVF-PQ (lists, code size, probes), behind a learnt OPQ rotation."""
    faiss = _faiss()
    ivf = faiss.downcast_index(faiss.extract_index_ivf(plain))
    m = ivf.pq.M
    inner = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, ivf.nlist, m, ivf.pq.nbits, faiss.METRIC_INNER_PRODUCT)
    inner.cp.niter = ivf.cp.niter
    inner.nprobe = ivf.nprobe
    return faiss.IndexPreTransform(faiss.OPQMatrix(dim, m), inner)


def measure(name: str, make, x: np.ndarray, queries: np.ndarray, truth: np.ndarray,
            k: int = 10) -> tuple[object, list[dict]]:
    faiss = _faiss()
    t = time.perf_counter()
    index = faiss.IndexIDMap2(make())
    index.add_with_ids(x, np.arange(len(x), dtype=np.int64))
    build_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "i.faiss"
        faiss.write_index(index, str(path))
        size = path.stat().st_size
    wide = max(k * RERANK, 100)
    times, found = [], []
    for q in queries:
        t = time.perf_counter()
        _, ids = index.search(q[None, :], wide)
        times.append(time.perf_counter() - t)
        found.append(ids[0])
    pool = [len(set(truth[i]) & set(f.tolist())) / k for i, f in enumerate(found)]
    codes = [len(set(truth[i]) & set(f[:k].tolist())) / k for i, f in enumerate(found)]
    tag = f"{name}_{len(x)}"
    return index, [
        {"figure": f"build_seconds_{tag}", "value": round(build_s, 1), "unit": "s"},
        {"figure": f"file_bytes_per_vector_{tag}", "value": round(size / len(x), 1), "unit": "bytes"},
        {"figure": f"candidate_search_p50_{tag}", "value": round(float(np.percentile(times, 50)) * 1000, 2),
         "unit": "ms"},
        {"figure": f"recall_at_10_reranked_{tag}", "value": round(float(np.mean(pool)), 4), "unit": "fraction"},
        {"figure": f"recall_at_10_codes_only_{tag}", "value": round(float(np.mean(codes)), 4), "unit": "fraction"},
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vectors", type=int, default=500_000)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--dim", type=int, default=512)
    args = p.parse_args()
    rng = np.random.default_rng(5)
    x = clustered(args.vectors, args.dim, rng)
    base = x[rng.choice(len(x), args.queries, replace=False)]
    queries = base + 0.1 * rng.normal(size=base.shape).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    faiss = _faiss()
    exact = faiss.IndexFlatIP(args.dim)
    exact.add(x)
    truth = exact.search(queries, 10)[1]
    del exact
    sample = x[rng.choice(len(x), min(len(x), 200_000), replace=False)]  # as zsindex's rebuild samples

    plain, figures = measure("ivfpq", lambda: new_faiss_index(args.dim, sample, "ivfpq"), x, queries, truth)
    _, more = measure("opq_ivfpq", lambda: _trained(with_opq(plain.index, args.dim), sample), x, queries, truth)
    figures += more
    report("opq", figures, vectors=args.vectors, dim=args.dim, queries=args.queries,
           load_average_at_end=os.getloadavg())
    return 0


def _trained(index, sample: np.ndarray):
    index.train(sample)
    return index


if __name__ == "__main__":
    raise SystemExit(main())
