"""Bulk tagging: 1M stored vectors against 1,000 labels, then one added label.

    python benchmarks/tag.py [--images 1000000] [--labels 1000]

Builds a real index (SQLite file) of synthetic unit vectors, dimension 512,
clustered like real embeddings, with its FAISS file, and a label set whose
vectors are cached in the index (so no model is needed). Label vectors point at some of the
clusters, so each label is really present in part of the library. Measures
`Library.tag(mode="multi")` end to end: loading the FAISS file, streaming the
vectors in batches, calibration on a sample, scoring and writing the tags; then adds one label and
re-tags, which must cost only that label's work.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from common import peak_rss_mb, report, synthetic_library
from sqlalchemy import insert

from zsindex import schema as s
from zsindex.library import Library
from zsindex.tagging import BACKGROUND, prompts_key


def build(folder: Path, n: int, n_labels: int, dim: int) -> Library:
    rng = np.random.default_rng(0)
    lib, model, centres = synthetic_library(folder, n, dim, rng)
    names = [f"label {i}" for i in range(n_labels + 1)]
    vecs = centres[rng.choice(len(centres), n_labels + 1, replace=False)] + 0.5 * rng.normal(size=(n_labels + 1, dim))
    vecs = np.vstack([vecs, rng.normal(size=(1, dim))]).astype(np.float32)  # the last is the background
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    from zsindex.labels import DEFAULT_TEMPLATES, Label

    keys = [prompts_key(Label(nm), DEFAULT_TEMPLATES) for nm in names] + [prompts_key(BACKGROUND, DEFAULT_TEMPLATES)]
    with lib.store.session() as session:
        session.execute(insert(s.LabelVector), [
            {"model_id": model.id, "prompts_sha256": k, "vector": v.tobytes()} for k, v in zip(keys, vecs)])
        lib.store.set_state(session, f"logit_scale:{model.id}", "100.0")
    lib.labels_add("bench", names[:n_labels])
    lib.rebuild()  # the FAISS file an ingest would have left
    return lib


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=1_000_000)
    p.add_argument("--labels", type=int, default=1000)
    p.add_argument("--dim", type=int, default=512)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="zsindex-bench-"))
    try:
        t = time.perf_counter()
        lib = build(work / "index", args.images, args.labels, args.dim)
        setup_s = time.perf_counter() - t
        t = time.perf_counter()
        first = lib.tag("bench", mode="multi")
        tag_s = time.perf_counter() - t
        lib.labels_edit("bench", add=[f"label {args.labels}"])
        t = time.perf_counter()
        again = lib.tag("bench", mode="multi")
        add_s = time.perf_counter() - t
        assert again.labels_computed == 1, again.summary()
        report("tag", [
            {"figure": "tag_seconds", "value": round(tag_s, 1), "unit": "s"},
            {"figure": "tags_written", "value": sum(first.counts.values()), "unit": "tags"},
            {"figure": "labels_with_tags", "value": len(first.counts), "unit": "labels"},
            {"figure": "add_one_label_retag_seconds", "value": round(add_s, 1), "unit": "s"},
            {"figure": "peak_rss", "value": peak_rss_mb(), "unit": "MB"},
            {"figure": "setup_seconds_not_timed", "value": round(setup_s, 1), "unit": "s"},
        ], images=args.images, labels=args.labels, dim=args.dim, mode="multi")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
