"""Ingest on a two-node Ray cluster started on this machine, against a local ingest of the same files.

    python benchmarks/ray_ingest.py [--files 400] [--model demo] [--workers N] [--cpus-per-node 2] [--batch-size 16]

The camera JPEGs of ../shared/data/photos are copied to --files distinct
files (as in benchmarks/ingest.py), ingested into a fresh index locally and
then through `ingest(..., ray_address=...)` on a cluster of two Ray nodes
(`ray start --head` and `ray start --address`, both here, stopped at the end).
Prints images/s of each, end to end (the cluster's figure includes connecting
and starting its model actors, the local one loading the model) and steady
(over the second half of the files), how far their vectors are apart, and
the machine's load average before and after.
On one machine the two nodes share its cores, so the cluster cannot beat
the local ingest here: the figure shows what the cluster step costs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import report
from ingest import make_library

from tests import ray_cluster  # the tests' throw-away cluster (common puts the checkout on sys.path)
from zsindex.library import Library, default_workers


def vectors_by_path(lib: Library) -> dict[str, np.ndarray]:
    from sqlalchemy import select

    from zsindex import schema as s

    with lib.store.session() as session:
        found = session.execute(select(s.Image.path, s.Vector.vector).join(
            s.Vector, s.Vector.sha256 == s.Image.sha256)).all()
    return {path: np.frombuffer(v, dtype=np.float32) for path, v in found}


def timed_ingest(folder: Path, photos: Path, model: str, batch_size: int, address: str | None,
                 workers: int | None = None) -> dict[str, Any]:
    """End-to-end seconds, and images/s over the second half of the run."""
    lib = Library(folder, model=model, device="cpu", db=False)
    marks: list[tuple[float, int]] = []
    t0 = time.perf_counter()
    r = lib.ingest([photos], batch_size=batch_size, ray_address=address, workers=workers,
                   progress=lambda _stage, done, _total: marks.append((time.perf_counter(), done)))
    seconds = time.perf_counter() - t0
    # From half-way to the end: start-up is over, and the files decoded ahead (up to 2 chunks per CPU
    # and actor on the cluster) no longer flatter the rate, as they would just after the first batch.
    half = next((m for m in marks if m[1] >= marks[-1][1] / 2), marks[-1])
    steady = (marks[-1][1] - half[1]) / max(marks[-1][0] - half[0], 1e-9)
    return {"seconds": seconds, "steady": steady, "lib": lib, "report": r}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=400)
    p.add_argument("--model", default="demo")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=None,
                   help="decode threads of the local ingest  [default: as zsindex ingest, CPU cores - 1]")
    p.add_argument("--cpus-per-node", type=int, default=2, help="CPUs each Ray node offers (Ray's --num-cpus)")
    args = p.parse_args()
    if not ray_cluster.available():
        raise SystemExit("Ray is not installed: pip install 'zsindex[ray]'")
    work = Path(tempfile.mkdtemp(prefix="zsindex-bench-ray-"))
    load_before = os.getloadavg()
    try:
        make_library(work / "photos", args.files)
        local = timed_ingest(work / "local", work / "photos", args.model, args.batch_size, None, args.workers)
        t0 = time.perf_counter()
        with ray_cluster.local_cluster(cpus_per_node=args.cpus_per_node) as address:
            cluster_start_s = time.perf_counter() - t0
            remote = timed_ingest(work / "ray", work / "photos", args.model, args.batch_size, address)
        assert local["report"].added == remote["report"].added == args.files
        a, b = vectors_by_path(local["lib"]), vectors_by_path(remote["lib"])
        assert sorted(a) == sorted(b)
        diff = max(float(np.abs(a[k] - b[k]).max()) for k in a)
        local_s, ray_s = local["seconds"], remote["seconds"]
        report("ray_ingest", [
            {"figure": "local_images_per_second", "value": round(args.files / local_s, 2), "unit": "images/s"},
            {"figure": "cluster_images_per_second", "value": round(args.files / ray_s, 2), "unit": "images/s"},
            {"figure": "cluster_over_local", "value": round(local_s / ray_s, 3), "unit": "ratio"},
            {"figure": "local_steady_images_per_second", "value": round(local["steady"], 2), "unit": "images/s"},
            {"figure": "cluster_steady_images_per_second", "value": round(remote["steady"], 2), "unit": "images/s"},
            {"figure": "local_seconds", "value": round(local_s, 1), "unit": "s"},
            {"figure": "cluster_seconds", "value": round(ray_s, 1), "unit": "s"},
            {"figure": "cluster_start_seconds", "value": round(cluster_start_s, 1), "unit": "s"},
            {"figure": "max_vector_difference", "value": diff, "unit": "abs"},
        ], files=args.files, model=args.model, local_workers=args.workers or default_workers(),
            batch_size=args.batch_size, ray_nodes=2,
            cpus_per_node=args.cpus_per_node, load_average_before=[round(x, 2) for x in load_before],
            load_average_after=[round(x, 2) for x in os.getloadavg()])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
