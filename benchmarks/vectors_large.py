"""Large vector indexes: the compressed IVF-PQ kind at 1M and 5M vectors against exact search.

    python benchmarks/vectors_large.py [--sizes 1000000,5000000] [--queries 200] [--dim 512]
                                       [--data isotropic|photos] [--query-noise 0.1] [--keep]
    python benchmarks/vectors_large.py --time-only INDEX [--queries 200]

For each size, builds a real index (SQLite file) of synthetic unit vectors
(``--data``, below), rebuilds its FAISS file as `ivfpq` through
`Library.rebuild("ivfpq")` (two passes over SQL: a training sample, then the
vectors chunk by chunk), and measures:

- memory per vector: the FAISS file's bytes per vector (codes, ids, lists,
  quantisers), and the growth of this process's resident memory when the file
  is read whole (what a writer holds);
- build time of the FAISS file from SQL;
- search p50/p99 through the library's path (candidates from the codes,
  exact re-ranking from the vectors in SQL), split into its two parts (FAISS's
  candidate search; the SQL fetch of the candidates' vectors), and recall@10
  of that result against exact search over every vector (computed by
  streaming SQL), with the median gap between the exact 10th and 11th scores
  (how tied the true top 10 is), and the recall a re-ranking of 2 and 4 times
  as many candidates would give (the share of the true top 10 among them);
- cold start: a new `python` process that opens the index (file memory-mapped),
  searches once with a stored vector and prints the hits, from process start
  to result.

Two data models (``benchmarks/common.py``):

- ``isotropic`` (the default, as before): 2,000 Gaussian clusters on the unit
  sphere, noise 0.35 per dimension; queries are stored vectors plus
  ``--query-noise`` per dimension, normalised. Inside a cluster every vector is
  about equally far from a query (the exact 10th and 11th scores differ by
  about 0.0003 at 1M), so recall@10 measures a draw among ties; the figures
  also say how often the query's source vector is in the top 10.
- ``photos``: ``PhotoLike``, the structure of a photo library at several scales
  (a shared direction, 1,000 topics, n / 100 events, bursts of 1 + Poisson(4)
  shots of one scene; squared weights 0.45 / 0.20 / 0.15 / 0.13 / 0.07; offsets
  with a power-law spectrum, variance ∝ 1/i along a random rotation's axes).
  Queries are new photos (one shot of a new scene in an existing event), not
  stored vectors; ``--query-noise`` does not apply.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import REPO, report, synthetic_library

from zsindex.vectors import rerank_width

COLD = """
import sys, time
import numpy as np
from zsindex.library import Library
lib = Library(sys.argv[1], create=False)
q = np.frombuffer(bytes.fromhex(sys.argv[2]), dtype=np.float32)[None, :]
scores, ids = lib.vectors().search(q, 10)
print(ids[0][0], lib.vectors().mapped)
"""


def note(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def exact_top10(lib, model_id: int, queries: np.ndarray) -> tuple[list[set[int]], np.ndarray]:
    """Exact top-10 ids per query, streaming every stored vector from SQL; and the 10th and 11th scores."""
    k = 11
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.full((len(queries), k), -1, dtype=np.int64)
    for ids, vecs in lib.store.indexed_vectors(model_id, batch=100_000):
        s = vecs @ queries.T  # (chunk, Q)
        all_s = np.concatenate([best_s, s.T], axis=1)
        all_i = np.concatenate([best_i, np.broadcast_to(ids, (len(queries), len(ids)))], axis=1)
        top = np.argpartition(-all_s, k, axis=1)[:, :k]
        best_s = np.take_along_axis(all_s, top, axis=1)
        best_i = np.take_along_axis(all_i, top, axis=1)
    order = np.argsort(-best_s, axis=1)
    best_s, best_i = np.take_along_axis(best_s, order, axis=1), np.take_along_axis(best_i, order, axis=1)
    return [set(row[:10].tolist()) for row in best_i], best_s[:, 9:11]


def drop_page_cache() -> bool:
    """Empty the kernel's page cache (root only), so that the next reads come from the disk."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


class TimedFetch:
    """The searcher's exact-vector source, timing each fetch of a search's candidates."""

    def __init__(self, exact) -> None:
        self.exact, self.seconds = exact, []

    def by_ids(self, ids):
        t = time.perf_counter()
        out = self.exact.by_ids(ids)
        self.seconds.append(time.perf_counter() - t)
        return out

    def __getattr__(self, name):
        return getattr(self.exact, name)


class SqlOnly:
    """Exact vectors from SQL alone, as before the row file (for comparison)."""

    def __init__(self, exact) -> None:
        self.exact = exact

    def by_ids(self, ids):
        return self.exact.store.vectors_by_ids(self.exact.model_id, ids)


def cold_figures(folder: Path, queries: np.ndarray, tag: str, from_sql: bool = False) -> list[dict]:
    """Searches right after the page cache was emptied: FAISS lists and candidate rows read from the disk.

    A new searcher (file memory-mapped) answers every query once; each query's first touch of its
    lists and of its candidates' rows is a disk read, as for a library far larger than the page cache.
    """
    from zsindex.library import Library

    if not drop_page_cache():
        note("cannot drop the page cache (needs root): no cold figures")
        return []
    searcher = Library(folder, create=False).vectors()
    searcher.exact = timed = TimedFetch(SqlOnly(searcher.exact) if from_sql else searcher.exact)
    times = []
    for q in queries:
        t = time.perf_counter()
        searcher.search(q[None, :], 10)
        times.append((time.perf_counter() - t) * 1000)
    fetch = [s * 1000 for s in timed.seconds]
    return [
        {"figure": f"cold_search_p50_{tag}", "value": round(float(np.percentile(times, 50)), 2), "unit": "ms"},
        {"figure": f"cold_search_p99_{tag}", "value": round(float(np.percentile(times, 99)), 2), "unit": "ms"},
        {"figure": f"cold_search_part_exact_fetch_p50_{tag}", "value": round(float(np.percentile(fetch, 50)), 2),
         "unit": "ms"},
        {"figure": f"cold_search_part_exact_fetch_p99_{tag}", "value": round(float(np.percentile(fetch, 99)), 2),
         "unit": "ms"},
    ]


def figures_at(n: int, dim: int, n_queries: int, work: Path, noise: float = 0.1,
               data: str = "isotropic") -> list[dict]:
    rng = np.random.default_rng(n)
    t = time.perf_counter()
    lib, model, source = synthetic_library(work / f"index-{n}", n, dim, rng, data=data)
    fill_s = time.perf_counter() - t
    note(f"{n:,}: SQL filled in {fill_s:.0f} s; building ivfpq")
    t = time.perf_counter()
    lib.rebuild("ivfpq")
    build_s = time.perf_counter() - t
    note(f"{n:,}: built in {build_s:.0f} s; exact top-10 of {n_queries} queries")
    faiss_bytes = (lib.folder / "vectors.faiss").stat().st_size
    if data == "photos":
        sample_ids = np.zeros(n_queries, dtype=np.int64)  # new photos: no stored source
        queries = source.queries(n_queries).astype(np.float32)
    else:
        sample_ids = np.sort(rng.choice(np.arange(1, n + 1), n_queries, replace=False))
        base = lib.store.vectors_by_ids(model.id, sample_ids)
        queries = base + noise * rng.normal(size=base.shape).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth, tenth_eleventh = exact_top10(lib, model.id, queries)
    note(f"{n:,}: searching")

    from zsindex.library import Library

    before = rss_mb()
    vi = Library(lib.folder, create=False).vectors(save=True)  # read whole, as a writer would
    in_memory_mb = rss_mb() - before
    assert vi.kind == "ivfpq" and not vi.mapped
    del vi
    searcher = Library(lib.folder, create=False).vectors()  # memory-mapped, as a search process
    shape = {"nlist": int(searcher.ivf.nlist), "nprobe": int(searcher.ivf.nprobe),
             "quantizer": type(searcher._faiss.downcast_index(searcher.ivf.quantizer)).__name__}
    note(f"{n:,}: {shape}")
    times, recalls, planted, scan, fetch = [], [], [], [], []
    for q, want, src in zip(queries, truth, sample_ids):
        t = time.perf_counter()
        _, found = searcher.search(q[None, :], 10)
        times.append(time.perf_counter() - t)
        recalls.append(len(want & set(found[0].tolist())) / 10)
        planted.append(int(src) in set(found[0].tolist()))
    wide = rerank_width(10)  # the candidates zsindex re-ranks for k = 10
    widths = (100, 200, 400, 800)
    within: dict[int, list[float]] = {w: [] for w in widths}
    fetch_widest = []
    for q, want in zip(queries, truth):  # the same searches again, in their two parts (pages now warm for both)
        t = time.perf_counter()
        _, cand = searcher._search(q[None, :], wide, None)
        scan.append(time.perf_counter() - t)
        t = time.perf_counter()
        searcher.exact.by_ids(np.unique(cand[cand >= 0]))
        fetch.append(time.perf_counter() - t)
        # what a wider re-ranking would give: the share of the true top 10 among the first w candidates
        _, cand = searcher._search(q[None, :], widths[-1], None)
        for w in widths:
            within[w].append(len(want & set(cand[0, :w].tolist())) / 10)
        t = time.perf_counter()
        searcher.exact.by_ids(np.unique(cand[cand >= 0]))
        fetch_widest.append(time.perf_counter() - t)
    sql_fetch = []
    for q in queries:  # the same candidates from SQL, as before the row file (pages warm)
        _, cand = searcher._search(q[None, :], wide, None)
        t = time.perf_counter()
        lib.store.vectors_by_ids(model.id, np.unique(cand[cand >= 0]))
        sql_fetch.append(time.perf_counter() - t)
    tag = f"{n}_ivfpq"
    cold_searches = cold_figures(lib.folder, queries, tag)
    cold = []
    for q in queries[:5]:
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", COLD, str(lib.folder), q.astype(np.float32).tobytes().hex()],
                             capture_output=True, text=True, check=True, cwd=REPO)
        cold.append(time.perf_counter() - t)
        assert out.stdout.split()[1] == "True", out.stdout
    ms = [x * 1000 for x in times]
    planted_figures = [] if data == "photos" else [
        {"figure": f"source_vector_in_top10_{tag}", "value": round(float(np.mean(planted)), 4), "unit": "fraction"},
        {"figure": f"source_vector_in_exact_top10_{tag}",
         "value": round(float(np.mean([int(src) in w for src, w in zip(sample_ids, truth)])), 4), "unit": "fraction"},
    ]
    return [
        {"figure": f"index_shape_{tag}", "value": shape, "unit": "lists, lists probed, list chooser"},
        {"figure": f"faiss_file_bytes_per_vector_{tag}", "value": round(faiss_bytes / n, 1), "unit": "bytes"},
        {"figure": f"rss_growth_per_vector_loaded_{tag}", "value": round(in_memory_mb * 2**20 / n, 1),
         "unit": "bytes"},
        {"figure": f"build_seconds_{tag}", "value": round(build_s, 1), "unit": "s"},
        {"figure": f"search_p50_{tag}", "value": round(float(np.percentile(ms, 50)), 2), "unit": "ms"},
        {"figure": f"search_p99_{tag}", "value": round(float(np.percentile(ms, 99)), 2), "unit": "ms"},
        {"figure": f"search_part_faiss_candidates_p50_{tag}", "value": round(float(np.median(scan)) * 1000, 2),
         "unit": "ms"},
        {"figure": f"rerank_width_{tag}", "value": wide, "unit": "candidates"},
        {"figure": f"search_part_exact_fetch_candidates_p50_{tag}", "value": round(float(np.median(fetch)) * 1000, 2),
         "unit": "ms"},
        {"figure": f"search_part_sql_fetch_same_candidates_p50_{tag}",
         "value": round(float(np.median(sql_fetch)) * 1000, 2), "unit": "ms"},
        {"figure": f"recall_at_10_reranked_{tag}", "value": round(float(np.mean(recalls)), 4), "unit": "fraction"},
        *[{"figure": f"recall_at_10_if_reranking_{w}_candidates_{tag}", "value": round(float(np.mean(within[w])), 4),
           "unit": "fraction"} for w in widths],
        {"figure": f"search_part_exact_fetch_{widths[-1]}_candidates_p50_{tag}",
         "value": round(float(np.median(fetch_widest)) * 1000, 2), "unit": "ms"},
        *cold_searches,
        {"figure": f"exact_score_gap_10th_to_11th_median_{tag}",
         "value": round(float(np.median(tenth_eleventh[:, 0] - tenth_eleventh[:, 1])), 5), "unit": "cosine"},
        *planted_figures,
        {"figure": f"cold_start_search_process_median_{tag}", "value": round(float(np.median(cold)), 2),
         "unit": "s"},
        {"figure": f"sql_fill_seconds_not_timed_{tag}", "value": round(fill_s, 1), "unit": "s"},
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000000,5000000", help="comma-separated vector counts")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--query-noise", type=float, default=0.1,
                   help="isotropic data: queries are stored vectors plus this much Gaussian noise per dimension, "
                        "normalised")
    p.add_argument("--data", choices=("isotropic", "photos"), default="isotropic", help="the data model (above)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="where the temporary indexes go (needs ~4.5 KB/vector on SQLite: a 2 KB vector fills half "
                        "of a 4 KB page, and the next one does not fit beside it)")
    p.add_argument("--keep", action="store_true", help="keep the indexes (their folder is printed) for --time-only")
    p.add_argument("--time-only", type=Path, default=None, metavar="INDEX",
                   help="only time --queries searches of a kept index (stored vectors plus --query-noise), "
                        "memory-mapped as a search process; no build, no recall")
    p.add_argument("--from-sql", action="store_true",
                   help="--time-only: read the candidates' exact vectors from SQL alone (as before the row file)")
    p.add_argument("--rerank-min", type=int, default=None,
                   help="re-rank at least this many candidates (default: zsindex's RERANK_MIN), to compare widths")
    args = p.parse_args()
    if args.rerank_min is not None:
        import zsindex.vectors

        zsindex.vectors.RERANK_MIN = args.rerank_min
    if args.time_only:
        report("vectors_large_time_only", time_only(args.time_only, args.queries, args.query_noise, args.from_sql),
               index=str(args.time_only), queries=args.queries, rerank_width=rerank_width(10),
               exact_vectors_from="sql" if args.from_sql else "row file, else sql",
               load_average_at_end=os.getloadavg())
        return 0
    work = Path(tempfile.mkdtemp(prefix="zsindex-bench-", dir=args.workdir))
    figures: list[dict] = []
    try:
        for n in (int(x) for x in args.sizes.split(",")):
            figures += figures_at(n, args.dim, args.queries, work, args.query_noise, args.data)
            if args.keep:
                note(f"{n:,}: kept in {work / f'index-{n}'}")
            else:
                shutil.rmtree(work / f"index-{n}", ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    report("vectors_large", figures, dim=args.dim, queries=args.queries, data=args.data,
           query_noise=None if args.data == "photos" else args.query_noise, load_average_at_end=os.getloadavg())
    return 0


def time_only(folder: Path, n_queries: int, noise: float, from_sql: bool = False) -> list[dict]:
    from zsindex.library import Library

    lib = Library(folder, create=False)
    searcher = lib.vectors()
    n = searcher.ntotal
    rng = np.random.default_rng(7)
    base = lib.store.vectors_by_ids(lib.store.model().id, np.sort(rng.choice(np.arange(1, n + 1), n_queries,
                                                                              replace=False)))
    queries = base + noise * rng.normal(size=base.shape).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    tag = f"{n}_{searcher.kind}"
    del searcher
    cold = cold_figures(folder, queries, tag, from_sql)  # the page cache emptied first (root), then each query once
    searcher = lib.vectors()
    if from_sql:
        searcher.exact = SqlOnly(searcher.exact)
    times = []
    for q in queries:  # again, now that their pages are in memory
        t = time.perf_counter()
        searcher.search(q[None, :], 10)
        times.append((time.perf_counter() - t) * 1000)
    return [*cold,
            {"figure": f"warm_search_p50_{tag}", "value": round(float(np.percentile(times, 50)), 2), "unit": "ms"},
            {"figure": f"warm_search_p99_{tag}", "value": round(float(np.percentile(times, 99)), 2), "unit": "ms"}]


if __name__ == "__main__":
    raise SystemExit(main())
