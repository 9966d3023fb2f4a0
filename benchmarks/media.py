"""RAW and video ingest.

    python benchmarks/media.py [--shots 30] [--video-minutes 2] [--model demo] [--workers N]

RAW: each real camera JPEG of ../shared/data/photos becomes a DNG of the same
shot, laid out as cameras write them: a full-size 12-bit RGGB mosaic of the
photo (uncompressed, 2 bytes a pixel) with the photo's own JPEG as the
embedded preview. The same shots are then ingested three ways into fresh
indexes: the JPEGs, the DNGs (read from their preview), and the DNGs without a
usable preview (LibRaw's half-size demosaic). Video: one drawn video (a shape
moving over a changing background, H.264 in MP4, written by PyAV) of
--video-minutes at --video-size, ingested alone: frames embedded per second and
seconds per minute of video. Prints JSON.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import REPO, peak_rss_mb, report
from PIL import Image

from zsindex.library import Library, default_workers

sys.path.insert(0, str(REPO))
from tests import mediafiles  # noqa: E402 - the same writers the tests use

PHOTOS = REPO.parent / "shared" / "data" / "photos"


def make_shots(folder: Path, n: int) -> tuple[Path, Path, Path]:
    jpegs, previews, bare = folder / "jpeg", folder / "dng-preview", folder / "dng-demosaic"
    for d in (jpegs, previews, bare):
        d.mkdir(parents=True)
    sources = sorted(p for p in PHOTOS.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))[:n]
    if not sources:
        raise SystemExit(f"no photos in {PHOTOS}")
    for i, src in enumerate(sources):
        rgb = np.asarray(Image.open(src).convert("RGB"))
        name = f"IMG_{i:04d}"
        shutil.copy(src, jpegs / f"{name}.JPG")
        mediafiles.write_dng(previews / f"{name}.DNG", rgb, preview_jpeg=src.read_bytes())
        mediafiles.write_dng(bare / f"{name}.DNG", rgb, thumb_width=16)
    return jpegs, previews, bare


def ingest(work: Path, folder: Path, args: argparse.Namespace, workers: int) -> dict:
    lib = Library(work / f"index-{folder.name}", model=args.model, pretrained=args.pretrained, device="cpu")
    lib.embedder  # noqa: B018 - the model loads outside the timed ingest
    r = lib.ingest([folder], workers=workers)
    assert r.skipped == 0, r.skipped_files
    size = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
    lib.close()
    return {"files": r.added, "seconds": round(r.seconds, 2), "per_second": round(r.added / r.seconds, 2),
            "decode_seconds_summed": round(r.decode_seconds, 2), "model_seconds": round(r.embed_seconds, 2),
            "megabytes": round(size)}


def make_video(path: Path, minutes: float, size: tuple[int, int], fps: int = 25) -> None:
    import av

    w, h = size
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        frames = int(minutes * 60 * fps)
        base = (rng.random((h // 8, w // 8, 3)) * 255).astype(np.uint8)
        for i in range(frames):
            if i % (fps * 10) == 0:  # a new scene every 10 s
                base = (rng.random((h // 8, w // 8, 3)) * 255).astype(np.uint8)
            img = np.kron(base, np.ones((8, 8, 1), np.uint8))
            x = (i * 4) % (w - 64)
            img[h // 2 - 32:h // 2 + 32, x:x + 64] = (30, 30, 220)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shots", type=int, default=30)
    p.add_argument("--video-minutes", type=float, default=2.0)
    p.add_argument("--video-size", default="1280x720")
    p.add_argument("--model", default="demo")
    p.add_argument("--pretrained", default=None)
    p.add_argument("--workers", type=int, default=None)
    args = p.parse_args()
    workers = default_workers() if args.workers is None else args.workers
    work = Path(tempfile.mkdtemp(prefix="zsindex-bench-media-"))
    try:
        jpegs, previews, bare = make_shots(work, args.shots)
        runs = {name: ingest(work, folder, args, workers) for name, folder in
                (("jpeg", jpegs), ("dng_preview", previews), ("dng_demosaic", bare))}
        size = tuple(int(v) for v in args.video_size.split("x"))
        video_dir = work / "video"
        video_dir.mkdir()
        t0 = time.perf_counter()
        make_video(video_dir / "long.mp4", args.video_minutes, (size[0], size[1]))
        encode_s = time.perf_counter() - t0
        lib = Library(work / "index-video", model=args.model, pretrained=args.pretrained, device="cpu")
        lib.embedder  # noqa: B018
        r = lib.ingest([video_dir], workers=workers)
        from sqlalchemy import func, select

        from zsindex import schema as s

        with lib.store.session() as session:
            n_frames = session.scalar(select(func.count()).select_from(s.Frame))
        lib.close()
        figures = [{"figure": f"{k}_files_per_second", "value": v["per_second"], "unit": "files/s"}
                   for k, v in runs.items()]
        figures += [{"figure": f"{k}_decode_ms_per_file", "unit": "ms (summed over workers)",
                     "value": round(1000 * v["decode_seconds_summed"] / v["files"], 1)} for k, v in runs.items()]
        figures += [
            {"figure": "video_frames_embedded", "value": n_frames, "unit": "frames"},
            {"figure": "video_frames_per_second", "value": round(n_frames / r.seconds, 2), "unit": "frames/s"},
            {"figure": "video_seconds_per_minute", "value": round(r.seconds / args.video_minutes, 2),
             "unit": "s per minute of video"},
            {"figure": "peak_rss", "value": peak_rss_mb(), "unit": "MB"},
        ]
        report("media", figures, runs=runs, video={"minutes": args.video_minutes, "size": args.video_size,
                                                   "ingest_seconds": round(r.seconds, 2),
                                                   "decode_seconds": round(r.decode_seconds, 2),
                                                   "encode_seconds_not_counted": round(encode_s, 1)},
               model=f"{args.model}/{args.pretrained}", workers=workers, shots=args.shots)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
