"""Shared pieces of the service tests: a real index of drawn images made with the demo model,
apps over it, and a real uvicorn server on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from zsindex import shapes

OLD = datetime(2020, 1, 1).timestamp()
CAMERA_MAKE, CAMERA_MODEL = "Zeiss", "Ikon 35"


def draw_pictures(folder: Path, copies: int = 2, seed: int = 3) -> list[Path]:
    """Every seen colour+shape pair `copies` times (PNG), the first two dated 2020, plus one JPEG
    with camera EXIF, a 2019 date and orientation 6 (stored landscape, shown portrait)."""
    scenes = [[shapes.Thing(c, s)] for c, s in shapes.seen_pairs()] * copies
    paths = shapes.save_world(folder, scenes, seed=seed)
    for p in paths[:2]:
        os.utime(p, (OLD, OLD))
    paths.append(camera_jpeg(folder / "camera" / "rotated.jpg"))
    return paths


def camera_jpeg(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    pixels = shapes.draw([shapes.Thing("blue", "square")], size=256, rng=rng)
    im = Image.fromarray(pixels).resize((320, 200))
    exif = Image.Exif()
    exif[271], exif[272], exif[274], exif[306] = CAMERA_MAKE, CAMERA_MODEL, 6, "2019:05:04 10:00:00"
    im.save(path, "JPEG", quality=90, exif=exif)
    return path


def build_index(folder: Path, embedder: Any, copies: int = 2) -> tuple[Path, Path]:
    """(index folder, pictures folder) for a fresh index under folder."""
    pics, index = folder / "pics", folder / "index"
    draw_pictures(pics, copies)
    import zsindex

    lib = zsindex.open(index, embedder=embedder)
    report = lib.ingest([pics], workers=0)
    assert report.skipped == 0, report.skipped_files
    lib.close()
    return index, pics


def copy_index(src: tuple[Path, Path], dest: Path) -> tuple[Path, Path]:
    """A private copy of a built index whose recorded roots point at the copied pictures."""
    index, pics = dest / "index", dest / "pics"
    shutil.copytree(src[1], pics)
    for p in sorted(pics.rglob("*")):  # keep the recorded mtimes: files stay 'unchanged'
        original = src[1] / p.relative_to(pics)
        st = original.stat()
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    import zsindex

    shutil.copytree(src[0], index)
    lib = zsindex.open(index, create=False)
    with lib.store.engine.begin() as conn:  # the copy's files live elsewhere: move the recorded paths along
        conn.exec_driver_sql("UPDATE images SET path = replace(path, ?, ?)", (str(src[1]), str(pics)))
        conn.exec_driver_sql("UPDATE ingest_runs SET roots = replace(roots, ?, ?)", (str(src[1]), str(pics)))
    lib.close()
    return index, pics


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_server(app: Any) -> Iterator[str]:
    """A real uvicorn server in a thread on 127.0.0.1; yields its base URL and stops it afterwards."""
    import httpx
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/api/status", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the test server did not start")
        yield base
    finally:
        server.should_exit = True
        thread.join(30)


def wait_job(client: Any, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return dict(job)
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout}s")
