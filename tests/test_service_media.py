"""The service and media that are not plain images: thumbnails of videos (from the frames ingest sampled,
cached by content hash and frame time) and the media types of original files (videos, JPEG XL, RAW)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import zsindex
from zsindex.service import create_app

from .mediafiles import scene, write_dng, write_jxl, write_video

pytest.importorskip("av")

VIDEOS = {".mp4": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm"}


@pytest.fixture(scope="module")
def world(tmp_path_factory, demo_embedder):
    root = tmp_path_factory.mktemp("media")
    pics = root / "pics"
    pics.mkdir()
    red, blue = scene("red", "circle", 128), scene("blue", "square", 128)
    for ext in VIDEOS:
        # Red for the first half, blue for the second: ingest samples 4 frames (two red, two blue).
        write_video(pics / f"clip{ext}", [(red, 2.0), (blue, 2.0)])
    write_jxl(pics / "photo.jxl", scene("green", "triangle", 96))
    write_dng(pics / "raw.dng", scene("yellow", "star", 96))
    Image.fromarray(scene("purple", "circle", 96)).save(pics / "plain.png")
    index = root / "index"
    lib = zsindex.open(index, embedder=demo_embedder)
    report = lib.ingest([pics], workers=0)
    assert report.skipped == 0, report.skipped_files
    lib.close()
    app = create_app(zsindex.open(index, embedder=demo_embedder), roots=[pics], ingest_workers=0)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client, index, pics


def _ids(client) -> dict[str, int]:
    hits = client.get("/api/search", params={"q": "a picture", "k": 50}).json()["results"]
    return {h["path"].rsplit("/", 1)[-1]: h["id"] for h in hits}


def _colour(jpeg: bytes) -> tuple[int, int, int]:
    im = Image.open(io.BytesIO(jpeg))
    assert im.format == "JPEG"
    arr = np.asarray(im.convert("RGB"), dtype=float)
    return tuple(int(v) for v in arr.reshape(-1, 3).mean(axis=0))


def _redder(rgb) -> bool:
    return rgb[0] > rgb[2]


@pytest.mark.parametrize("ext", sorted(VIDEOS))
def test_video_thumbnails_show_a_sampled_frame(world, ext):
    client, index, _ = world
    vid = _ids(client)[f"clip{ext}"]
    r = client.get(f"/api/images/{vid}/thumbnail", params={"size": 128})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg" and max(Image.open(io.BytesIO(r.content)).size) == 128
    assert _redder(_colour(r.content))  # no time: the first frame ingest sampled (red)
    late = client.get(f"/api/images/{vid}/thumbnail", params={"size": 128, "t": 3.5})
    assert late.status_code == 200 and not _redder(_colour(late.content))  # a best frame in the blue half
    assert late.headers["etag"] != r.headers["etag"]
    # Cached by content hash and frame time; a time between samples takes the nearest sampled frame.
    cached = sorted(p.name for p in (index / "thumbnails").rglob("*-128.jpg") if "@" in p.name)
    assert cached and all("@" in n for n in cached)
    near = client.get(f"/api/images/{vid}/thumbnail", params={"size": 128, "t": 3.4})
    assert near.headers["etag"] == late.headers["etag"]
    assert client.get(f"/api/images/{vid}/thumbnail", params={"size": 128, "t": 3.5},
                      headers={"If-None-Match": late.headers["etag"]}).status_code == 304
    assert client.get(f"/api/images/{vid}/thumbnail", params={"t": -1}).status_code == 422
    assert client.get(f"/api/images/{vid}/thumbnail", params={"t": "nan"}).status_code == 422


def test_a_video_hit_links_the_thumbnail_of_its_best_frame(world):
    client, _, _ = world
    hits = client.get("/api/search", params={"q": "a blue square", "k": 50}).json()["results"]
    videos = [h for h in hits if "time" in h]
    assert videos
    for hit in videos:
        assert hit["thumbnail"] == f"/api/images/{hit['id']}/thumbnail?size=256&t={hit['time']:g}"
        assert client.get(hit["thumbnail"]).status_code == 200


def test_original_files_are_served_with_their_media_type(world):
    client, _, _ = world
    ids = _ids(client)
    expected = {**{f"clip{ext}": kind for ext, kind in VIDEOS.items()},
                "photo.jxl": "image/jxl", "raw.dng": "image/x-adobe-dng", "plain.png": "image/png"}
    for name, kind in expected.items():
        r = client.get(f"/api/images/{ids[name]}/file")
        assert r.status_code == 200, (name, r.text)
        assert r.headers["content-type"] == kind, name
        assert r.headers["content-disposition"].startswith("inline")


def test_media_type_never_guesses_a_page():
    from zsindex.service.routes_search import media_type

    assert media_type("/x/a.html", None, {}) == "application/octet-stream"
    assert media_type("/x/a.svg", None, {}) == "application/octet-stream"
    assert media_type("/x/a.MOV", "MOV", {}) == "video/quicktime"
    assert media_type("/x/a.jpg", "PNG", {"PNG": "image/png"}) == "image/png"  # the content, not the name
