"""Ingest throughput on real camera JPEGs.

    python benchmarks/ingest.py [--files 300] [--model ViT-B-32 --pretrained random] [--workers N]

The 30 photos of ../shared/data/photos are copied to --files distinct files
(a few unique bytes after the JPEG end marker give each a different content
hash, so none is skipped as a duplicate) and ingested into a fresh index.
ViT-B-32 with untrained weights costs exactly what the trained model costs.
Prints images/s end to end, decode time (summed over workers) against model
time, and peak memory.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from common import REPO, peak_rss_mb, report

from zsindex.library import Library, default_workers

PHOTOS = REPO.parent / "shared" / "data" / "photos"


def make_library(folder: Path, n: int) -> list[Path]:
    sources = sorted(p for p in PHOTOS.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    if not sources:
        raise SystemExit(f"no photos in {PHOTOS}")
    folder.mkdir(parents=True)
    out = []
    for i in range(n):
        src = sources[i % len(sources)]
        dst = folder / f"{i:05d} {src.name}"
        dst.write_bytes(src.read_bytes() + f"zsindex-bench-{i}".encode())
        out.append(dst)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=300)
    p.add_argument("--model", default="ViT-B-32")
    p.add_argument("--pretrained", default="random")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="zsindex-bench-"))
    try:
        files = make_library(work / "photos", args.files)
        megabytes = sum(f.stat().st_size for f in files) / 1e6
        lib = Library(work / "index", model=args.model, pretrained=args.pretrained, device="cpu")
        t0 = time.perf_counter()
        lib.embedder  # noqa: B018 - load the model outside the timed ingest
        load_s = time.perf_counter() - t0
        workers = default_workers() if args.workers is None else args.workers
        r = lib.ingest([work / "photos"], workers=workers, batch_size=args.batch_size)
        assert r.added == args.files, r.to_dict()
        report("ingest", [
            {"figure": "images_per_second", "value": round(r.added / r.seconds, 2), "unit": "images/s"},
            {"figure": "total_seconds", "value": round(r.seconds, 1), "unit": "s"},
            {"figure": "decode_seconds_summed_over_workers", "value": round(r.decode_seconds, 1), "unit": "s"},
            {"figure": "model_seconds", "value": round(r.embed_seconds, 1), "unit": "s"},
            {"figure": "decode_share_of_wall_time", "value": round(r.decode_seconds / max(workers, 1) / r.seconds, 3),
             "unit": "fraction"},
            {"figure": "peak_rss", "value": peak_rss_mb(), "unit": "MB"},
            {"figure": "model_load_seconds", "value": round(load_s, 1), "unit": "s"},
        ], files=args.files, input_megabytes=round(megabytes), model=f"{args.model}/{args.pretrained}",
            workers=workers, batch_size=args.batch_size)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
