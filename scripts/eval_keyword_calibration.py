"""Thresholds learnt from the user's keywords against unsupervised calibration (the README's figures).

    python scripts/eval_keyword_calibration.py [--images 600] [--keyworded 0.2] [--seed 2024]

Draws images with one to three shapes and gives a share of them real XMP
sidecars with their true keywords (dc:subject and lr:hierarchicalSubject,
as darktable or Lightroom would write them). Ingest reads those keywords;
then each label set is tagged in multi-label mode twice, with the
unsupervised calibration and with `calibrate_from_keywords`, and both are
scored (micro-averaged precision, recall, F1) on the images that carry no
keywords, against the drawn truth. `eval_keywords` (zsindex eval --keywords)
is reported too: the same measure on the keyworded images, from the index alone.
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
from zsindex.xmp import HIERARCHICAL, SUBJECT, XmpDoc  # noqa: E402

SETS = {
    "colour+shape": ([f"{c} {s}" for c in shapes.COLOURS for s in shapes.SHAPES], lambda t: {x.name for x in t}),
    "colour": (list(shapes.COLOURS), lambda t: {x.colour for x in t}),
    "shape": (list(shapes.SHAPES), lambda t: {x.shape for x in t}),
}


def write_sidecar(image: Path, keywords: set[str]) -> None:
    """A user's sidecar, as a photo program writes it: flat keywords, a keyword tree and a rating."""
    doc = XmpDoc()
    for word in sorted(keywords):
        doc.add(SUBJECT, word)
        doc.add(HIERARCHICAL, f"drawn|{word}")
    doc.meta.set_property("http://ns.adobe.com/xap/1.0/", "Rating", "3")
    Path(str(image) + ".xmp").write_bytes(doc.to_bytes())


def prf(got: dict[str, set], want: dict[str, set]) -> dict[str, float]:
    tp = sum(len(got.get(p, set()) & w) for p, w in want.items())
    n_got = sum(len(got.get(p, set())) for p in want)
    n_want = sum(len(w) for w in want.values())
    p, r = tp / max(n_got, 1), tp / max(n_want, 1)
    return {"precision": round(p, 3), "recall": round(r, 3), "f1": round(2 * p * r / max(p + r, 1e-9), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=600)
    ap.add_argument("--keyworded", type=float, default=0.2, help="share of the images the user keyworded")
    ap.add_argument("--model", default="demo")
    ap.add_argument("--seed", type=int, default=2024, help="which scenes are drawn and which are keyworded")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    scenes = [shapes.random_things(rng, shapes.seen_pairs(), 3) for _ in range(args.images)]
    keyworded = set(rng.choice(args.images, size=int(args.images * args.keyworded), replace=False).tolist())
    work = Path(tempfile.mkdtemp(prefix="zsindex-kwcal-"))
    try:
        paths = shapes.save_world(work / "photos", scenes, size=160, seed=99)
        for i in keyworded:  # the user's keywords for every set: colour+shape names, colours and shapes
            write_sidecar(paths[i], set().union(*(truth(scenes[i]) for _, truth in SETS.values())))
        lib = Library(work / "index", embedder=load_embedder(args.model, device="cpu"))
        lib.ingest([work / "photos"], workers=0)
        out: dict = {"images": args.images, "keyworded": len(keyworded), "model": args.model, "seed": args.seed,
                     "scored_on": "the images without keywords", "sets": {}}
        for name, (labels, truth_of) in SETS.items():
            want = {str(p): truth_of(t) for i, (p, t) in enumerate(zip(paths, scenes)) if i not in keyworded}
            label_name = ",".join(labels)
            results = {}
            for method, supervised in (("unsupervised", False), ("from keywords", True)):
                report = lib.tag(label_name, mode="multi", calibrate_from_keywords=supervised)
                got: dict[str, set] = {}
                for r in lib.tag_rows(label_name):
                    got.setdefault(r["path"], set()).add(r["label"])
                results[method] = prf(got, want)
                if supervised:
                    results["notes"] = report.warning
                else:
                    results["eval_keywords_micro"] = lib.eval_keywords(label_name)["micro"]
            out["sets"][name] = results
        print(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
