"""Peak memory of an ingest against library size: does it stay flat?

    python benchmarks/ingest_memory.py [--sizes 300,20000] [--model demo]

Each size gets a fresh folder of small distinct JPEGs (drawn shapes from
zsindex.shapes, 96x96 pixels, a different random scene per file) and a fresh
index, ingested by `zsindex ingest` in its own process at default settings.
Peak memory is the largest sum of resident memory over that process and its
decode workers, sampled every 20 ms. The shipped demo model keeps the run
short; what grows with the number of files (scan, plan, SQL rows, the FAISS
index, per-batch work) is the same for any model, whose own memory is a
constant on top.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import REPO, report
from vs_rclip import timed

from zsindex import shapes


def make_files(folder: Path, n: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(n)
    colours, kinds = list(shapes.COLOURS), list(shapes.SHAPES)
    for i in range(n):
        scene = [shapes.Thing(colours[rng.integers(len(colours))], kinds[rng.integers(len(kinds))])
                 for _ in range(1 + i % 2)]
        sub = folder / f"{i // 1000:03d}"
        sub.mkdir(exist_ok=True)
        Image.fromarray(shapes.draw(scene, size=96, rng=rng)).save(sub / f"{i:06d}.jpg", quality=90)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="300,20000")
    p.add_argument("--model", default="demo")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="zsindex-memory-"))
    env = {**os.environ, "PYTHONPATH": str(REPO), "ZSINDEX_HOME": str(work / "home"), "HF_HUB_OFFLINE": "1"}
    figures = []
    try:
        for n in (int(x) for x in args.sizes.split(",")):
            folder = work / f"files-{n}"
            make_files(folder, n)
            # the first run of a model makes its cached ONNX export; keep that out of the figures
            timed([sys.executable, "-m", "zsindex", "ingest", str(folder / "000"), "--index", str(work / "warm"),
                   "-q", "--model", args.model], env)
            run = timed([sys.executable, "-m", "zsindex", "ingest", str(folder), "--index", str(work / f"index-{n}"),
                         "-q", "--json", "--model", args.model], env, sample=True)
            added = json.loads(run["stdout"].strip().splitlines()[-1])["added"]
            figures.append({"figure": f"peak_rss_{n}_files", "value": run["peak_mb"], "unit": "MB",
                            "added": added, "seconds": round(run["seconds"], 1)})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report("ingest_memory", figures, model=args.model, files="drawn 96x96 JPEGs, distinct")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
