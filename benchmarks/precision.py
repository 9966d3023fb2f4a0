"""What int8 costs in accuracy and buys in speed, against fp32 on the same runtime.

    python benchmarks/precision.py [--checkpoint FILE] [--per-pair 50] [--seed 1234]

1. Cosine between int8 and fp32 image vectors of the 30 real photos in
   ../shared/data/photos, for the demo model and, with --checkpoint, for
   ViT-B-32-256 with those (untrained) weights: min, mean.
2. Top-1 of the demo model on freshly drawn shapes (zsindex.demo's four label
   sets, --per-pair images per colour+shape pair, the same drawings for both)
   in fp32 and in int8; the goal is within 1 point.
3. With --checkpoint: image-tower speed of ViT-B-32-256 in fp32 and int8,
   batches of 32 photos already decoded, images/s (best of --repeats).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import REPO, report

from zsindex.demo import measure_quality
from zsindex.embedder import load_embedder
from zsindex.images import load_pixels

PHOTOS = REPO.parent / "shared" / "data" / "photos"


def photos(size: int) -> list:
    return [load_pixels(p, size) for p in sorted(PHOTOS.iterdir()) if p.suffix.lower() in (".jpg", ".jpeg")]


def _set_photos(folder: Path) -> None:
    global PHOTOS
    PHOTOS = folder


def drift(model: str, pretrained: str | None) -> tuple[dict, dict]:
    fp32 = load_embedder(model, pretrained, runtime="onnx", precision="fp32")
    int8 = load_embedder(model, pretrained, runtime="onnx", precision="int8")
    images = photos(fp32.image_size)
    cos = np.sum(fp32.embed_images(images) * int8.embed_images(images), axis=1)
    return {"min": round(float(cos.min()), 5), "mean": round(float(cos.mean()), 5), "photos": len(images)}, \
        {"fp32": fp32, "int8": int8, "images": images}


def speed(emb, images: list, repeats: int) -> float:
    batch = (images * 2)[:32]
    emb.embed_images(batch[:2])  # session start-up outside the timing
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        emb.embed_images(batch)
        best = min(best, time.perf_counter() - t)
    return round(len(batch) / best, 2)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, help="ViT-B-32-256 weights (e.g. from make_random_ckpt.py)")
    p.add_argument("--per-pair", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=1234, help="seed of the drawings")
    p.add_argument("--photos", type=Path, default=PHOTOS)
    args = p.parse_args()
    _set_photos(args.photos)
    figures = []
    demo_cos, demo = drift("demo", None)
    figures.append({"figure": "demo_int8_cosine_to_fp32_photos", **demo_cos})
    top = {k: measure_quality(demo[k], args.per_pair, seed=args.seed) for k in ("fp32", "int8")}
    for key in top["fp32"]:
        figures.append({"figure": f"demo_top1_{key}", "fp32": round(top["fp32"][key] * 100, 2),
                        "int8": round(top["int8"][key] * 100, 2),
                        "points": round((top["int8"][key] - top["fp32"][key]) * 100, 2)})
    if args.checkpoint:
        vit_cos, vit = drift("ViT-B-32-256", str(args.checkpoint))
        figures.append({"figure": "vit_b_32_256_int8_cosine_to_fp32_photos", **vit_cos})
        for k in ("fp32", "int8"):
            figures.append({"figure": f"vit_b_32_256_{k}_image_tower", "value": speed(vit[k], vit["images"],
                                                                                      args.repeats),
                            "unit": "images/s"})
    report("precision", figures, per_pair=args.per_pair, seed=args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
