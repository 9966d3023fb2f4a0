"""Multi-label tagging quality on a multi-object shapes world (the figures in the README).

    python scripts/eval_tagging.py [--images 600] [--model demo] [--seed 2024]

Draws images with one to three shapes, ingests them into a temporary index,
tags them in multi-label mode with three label sets (colour+shape names,
colours, shapes) and reports micro-averaged precision, recall and F1 for the
calibrated per-label thresholds and, for comparison, for single raw cosine
cut-offs (--threshold).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zsindex import shapes  # noqa: E402
from zsindex.embedder import load_embedder  # noqa: E402
from zsindex.library import Library  # noqa: E402

SETS = {
    "colour+shape": ([f"{c} {s}" for c in shapes.COLOURS for s in shapes.SHAPES], lambda t: {x.name for x in t}),
    "colour": (list(shapes.COLOURS), lambda t: {x.colour for x in t}),
    "shape": (list(shapes.SHAPES), lambda t: {x.shape for x in t}),
}


def prf(got: dict[str, set], want: dict[str, set]) -> dict[str, float]:
    tp = sum(len(got.get(p, set()) & w) for p, w in want.items())
    n_got, n_want = sum(len(g) for g in got.values()), sum(len(w) for w in want.values())
    p, r = tp / max(n_got, 1), tp / max(n_want, 1)
    return {"precision": round(p, 3), "recall": round(r, 3), "f1": round(2 * p * r / max(p + r, 1e-9), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=600)
    ap.add_argument("--model", default="demo")
    ap.add_argument("--cutoffs", default="0.1,0.2,0.3,0.4")
    ap.add_argument("--seed", type=int, default=2024, help="which scenes are drawn")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    scenes = [shapes.random_things(rng, shapes.seen_pairs(), 3) for _ in range(args.images)]
    work = Path(tempfile.mkdtemp(prefix="zsindex-evaltag-"))
    try:
        paths = shapes.save_world(work / "photos", scenes, size=160, seed=99)
        lib = Library(work / "index", embedder=load_embedder(args.model, device="cpu"))
        lib.ingest([work / "photos"], workers=0)
        out: dict = {"images": args.images, "objects_per_image": "1-3", "model": args.model, "seed": args.seed,
                     "sets": {}}
        for name, (labels, truth_of) in SETS.items():
            want = {str(p): truth_of(t) for p, t in zip(paths, scenes)}
            results = {}
            for label, threshold in [("calibrated", None)] + [(f"cosine>={c}", float(c))
                                                               for c in args.cutoffs.split(",")]:
                lib.tag(",".join(labels), mode="multi", threshold=threshold)
                got: dict[str, set] = {}
                for r in lib.tag_rows(",".join(labels)):
                    got.setdefault(r["path"], set()).add(r["label"])
                results[label] = prf(got, want)
            out["sets"][name] = results
        print(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
