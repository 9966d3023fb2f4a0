"""The HTTP API against a real index (demo model, drawn images, real SQLite and FAISS)."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import zsindex
from zsindex.library import Library
from zsindex.service import create_app

from .service_world import CAMERA_MAKE, build_index, copy_index, wait_job


@pytest.fixture(scope="module")
def built(tmp_path_factory, demo_embedder):
    return build_index(tmp_path_factory.mktemp("svc"), demo_embedder)


@pytest.fixture(scope="module")
def client(built, demo_embedder):
    app = create_app(zsindex.open(built[0], embedder=demo_embedder), roots=[built[1]], ingest_workers=0)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture
def private(built, demo_embedder, tmp_path):
    """A client over a private copy of the index, for tests that change files or the index."""
    index, pics = copy_index(built, tmp_path)
    app = create_app(zsindex.open(index, embedder=demo_embedder), roots=[pics], ingest_workers=0)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c, index, pics


def search(client, **params):
    r = client.get("/api/search", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def names(results):
    return [Path(r["path"]).name for r in results]


def error(r, status):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"]["status"] == status and body["error"]["message"]
    return body["error"]["message"]


# -- search ----------------------------------------------------------------------------------------
def test_red_circles_come_first(client):
    body = search(client, q="a red circle", k=5)
    top = names(body["results"])
    assert all("red-circle" in n for n in top[:2]), top
    hit = body["results"][0]
    assert set(hit) >= {"id", "path", "score", "width", "height", "taken", "format", "camera", "thumbnail"}
    assert not os.path.isabs(hit["path"]) and hit["width"] == 256 and hit["format"] == "PNG"
    assert hit["thumbnail"] == f"/api/images/{hit['id']}/thumbnail?size=256"
    assert body["k"] == 5 and body["offset"] == 0 and body["query"]["q"] == "a red circle"


def test_shots_group_and_keyword_filter(private):
    client, index, pics = private
    reds = sorted(p for p in Path(pics).rglob("*red-circle*.png"))
    twin = reds[0].with_suffix(".jpg")  # the same shot in two formats, as RAW + JPEG pairs are
    Image.open(reds[0]).convert("RGB").save(twin, quality=95)
    r = client.post("/api/ingest", json={})
    assert r.status_code == 202, r.text
    wait_job(client, r.json()["id"])
    loose = names(search(client, q="a red circle", k=40)["results"])
    assert reds[0].name in loose and twin.name in loose
    grouped = search(client, q="a red circle", k=40, group_stems=True)["results"]
    stems = [Path(r["path"]).stem for r in grouped]
    assert stems.count(reds[0].stem) == 1
    hit = next(r for r in grouped if Path(r["path"]).stem == reds[0].stem)
    assert hit["also"] == [(twin if Path(hit["path"]).suffix == ".png" else reds[0]).name]
    assert search(client, q="a red circle", keyword="no-such-keyword")["results"] == []


def test_paging_is_stable(client):
    whole = search(client, q="a green square", k=20)["results"]
    pages = [search(client, q="a green square", k=5, offset=o)["results"] for o in (0, 5, 10, 15)]
    assert [r["id"] for p in pages for r in p] == [r["id"] for r in whole]
    again = search(client, q="a green square", k=20)["results"]
    assert [r["id"] for r in again] == [r["id"] for r in whole]
    scores = [r["score"] for r in whole]
    assert scores == sorted(scores, reverse=True)


def test_negative_terms_and_min_score(client):
    plain = names(search(client, q="circle", k=10)["results"])
    pushed = names(search(client, q="circle", **{"not": "red"}, not_weight=2.0, k=10)["results"])
    assert sum("red" in n for n in pushed) < sum("red" in n for n in plain) or not any("red" in n for n in pushed)
    high = search(client, q="a red circle", k=50, min_score=0.3)["results"]
    assert high and all(r["score"] >= 0.3 for r in high)


def test_filters(client):
    assert {r["format"] for r in search(client, q="shape", k=50, format="png")["results"]} == {"PNG"}
    jpeg = search(client, q="shape", k=50, format="jpg")["results"]
    assert names(jpeg) == ["rotated.jpg"] and jpeg[0]["camera"] == f"{CAMERA_MAKE} Ikon 35"
    assert jpeg[0]["taken"] == "2019-05-04T10:00:00" and (jpeg[0]["width"], jpeg[0]["height"]) == (200, 320)
    assert names(search(client, q="shape", camera="zeiss")["results"]) == ["rotated.jpg"]
    assert all("red" in n for n in names(search(client, q="shape", k=50, path="*red*")["results"]))
    old = search(client, q="shape", k=50, before="2020-06-01")["results"]
    assert len(old) == 3  # two PNGs dated 2020 and the 2019 JPEG
    assert len(search(client, q="shape", k=50, after="2020-06-01")["results"]) == 38
    # an empty field is no filter value (the web app leaves empty fields out), as on the command line
    error(client.get("/api/search", params={"q": "shape", "k": 50, "after": "", "camera": "", "tag": ""}), 422)


def test_more_like_this_and_upload(client, built):
    first = search(client, q="a red circle", k=1)["results"][0]
    like = search(client, like=first["id"], k=3)["results"]
    assert like[0]["id"] == first["id"] and "red-circle" in Path(like[1]["path"]).name
    data = (built[1] / first["path"]).read_bytes()
    r = client.post("/api/search", data={"k": "3"}, files={"file": ("mine.png", data, "image/png")})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["id"] == first["id"] and r.json()["query"]["upload"] == "mine.png"
    r = client.post("/api/search", data={"k": "3", "q": "a red circle"}, files={"file": ("x.png", data)})
    assert "red-circle" in r.json()["results"][0]["path"]


def test_search_errors(client):
    assert "q" in error(client.get("/api/search"), 422)
    error(client.get("/api/search", params={"q": "x", "k": 0}), 422)
    error(client.get("/api/search", params={"q": "x", "k": 201}), 422)
    error(client.get("/api/search", params={"q": "x", "offset": -1}), 422)
    error(client.get("/api/search", params={"q": "x", "min_score": "nan"}), 422)
    assert "after" in error(client.get("/api/search", params={"q": "x", "after": "last tuesday"}), 422)
    error(client.get("/api/search", params={"like": 99999}), 404)
    error(client.get("/api/search", params={"like": "abc"}), 422)
    error(client.post("/api/search", data={"q": "x"}), 422)
    error(client.post("/api/search", files={"file": ("x.png", b"not an image")}), 422)
    error(client.get("/api/nothing-here"), 404)
    error(client.delete("/api/search"), 405)


# -- images, files, thumbnails ---------------------------------------------------------------------
def test_image_metadata_and_file(client, built):
    hit = search(client, q="a red circle", k=1)["results"][0]
    r = client.get(f"/api/images/{hit['id']}")
    meta = r.json()
    assert meta["id"] == hit["id"] and meta["path"] == hit["path"] and isinstance(meta["tags"], list)
    assert meta["file"] == f"/api/images/{hit['id']}/file" and meta["size"] == (built[1] / hit["path"]).stat().st_size
    f = client.get(meta["file"])
    assert f.status_code == 200 and f.headers["content-type"] == "image/png"
    assert f.content == (built[1] / hit["path"]).read_bytes()
    error(client.get("/api/images/99999"), 404)
    error(client.get("/api/images/0"), 422)
    error(client.get("/api/images/99999999999999999999999"), 422)


def test_thumbnails_etag_and_cache(client, built):
    hit = search(client, q="shape", camera="zeiss")["results"][0]
    r = client.get(f"/api/images/{hit['id']}/thumbnail", params={"size": 128})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert "max-age" in r.headers["cache-control"] and r.headers["etag"].startswith('"')
    im = Image.open(io.BytesIO(r.content))
    assert im.size == (80, 128)  # EXIF orientation 6 applied: the 320x200 file shows upright as portrait
    cached = list((built[0] / "thumbnails").rglob("*-128.jpg"))
    assert len(cached) == 1 and cached[0].read_bytes() == r.content
    again = client.get(f"/api/images/{hit['id']}/thumbnail", params={"size": 128},
                       headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and not again.content and again.headers["etag"] == r.headers["etag"]
    other = client.get(f"/api/images/{hit['id']}/thumbnail", params={"size": 128}, headers={"If-None-Match": '"x"'})
    assert other.status_code == 200
    for size in (256, 512, 1024):
        t = client.get(f"/api/images/{hit['id']}/thumbnail", params={"size": size})
        assert max(Image.open(io.BytesIO(t.content)).size) == min(size, 320)
    error(client.get(f"/api/images/{hit['id']}/thumbnail", params={"size": 300}), 422)
    error(client.get("/api/images/99999/thumbnail"), 404)


def test_changed_or_deleted_files_are_not_served(private):
    client, index, pics = private
    hit = search(client, q="a red circle", k=1)["results"][0]
    path = pics / hit["path"]
    path.write_bytes(b"something else entirely")
    error(client.get(f"/api/images/{hit['id']}/file"), 404)
    error(client.get(f"/api/images/{hit['id']}/thumbnail"), 404)
    path.unlink()
    job = client.post("/api/ingest", json={}).json()
    assert wait_job(client, job["id"])["result"]["deleted"] == 1
    error(client.get(f"/api/images/{hit['id']}"), 404)
    error(client.get(f"/api/images/{hit['id']}/file"), 404)


def test_facets(client):
    facets = client.get("/api/facets").json()
    assert {"value": "PNG", "count": 40} in facets["formats"] and {"value": "JPEG", "count": 1} in facets["formats"]
    assert facets["cameras"] == [{"value": f"{CAMERA_MAKE} Ikon 35", "count": 1}]
    assert isinstance(facets["tags"], list)


def test_status(client):
    status = client.get("/api/status").json()
    assert status["model"]["name"] and status["images"]["indexed"] == 41
    assert status["read_only"] is False and status["watch"] is False
    assert status["runs"][0]["added"] == 41 and "sizes" in status and isinstance(status["label_sets"], list)


def test_classify_upload(client, built):
    data = next(built[1].glob("*red-circle.png")).read_bytes()
    r = client.post("/api/classify", data={"labels": "red circle, blue square, green triangle"},
                    files={"file": ("../../etc/c.png", data, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["path"] == "c.png" and body["labels"][0]["label"] == "red circle"
    assert abs(sum(x["score"] for x in body["labels"]) - 1) < 1e-4
    client.put("/api/labels/colours-shapes", json={"labels": ["red circle", "blue square"]})
    r = client.post("/api/classify", data={"label_set": "colours-shapes"}, files={"file": ("c.png", data)})
    assert r.json()["labels"][0]["label"] == "red circle"
    error(client.post("/api/classify", files={"file": ("c.png", data)}), 422)
    error(client.post("/api/classify", data={"labels": "a,b", "label_set": "x"}, files={"file": ("c.png", data)}), 422)
    error(client.post("/api/classify", data={"label_set": "no-such-set"}, files={"file": ("c.png", data)}), 404)
    error(client.post("/api/classify", data={"labels": "a,b"}, files={"file": ("c.png", b"GIF89a broken")}), 422)



def test_library_messages_name_the_servers_routes(built, demo_embedder, tmp_path):
    """A library message names a Python method (Library.labels_edit('x')); a client of the server reads the
    route that does the same, and for what only the CLI does, the command on the server's machine."""
    from zsindex.errors import ZsindexError
    from zsindex.service.messages import server_text

    lib = Library(copy_index(built, tmp_path)[0], embedder=demo_embedder)
    lib.labels_add("my set?1", "a,b")
    messages = []
    for call in (lambda: lib.labels_add("my set?1", "c"), lambda: lib.untag("nosuch")):
        with pytest.raises(ZsindexError) as caught:
            call()
        messages.append(server_text(str(caught.value)))
    assert "PUT /api/labels/my%20set%3F1" in messages[0] and "Library." not in messages[0], messages
    assert "PUT /api/labels/nosuch" in messages[1] and "Library." not in messages[1], messages
    assert server_text("run Library.rebuild() first") == "run `zsindex rebuild` (on the server's machine) first"
    assert server_text("run Library.ingest(PATH) first") == "run POST /api/ingest first"


# -- label sets, tag jobs, ingest jobs --------------------------------------------------------------
def test_label_sets_crud(client):
    r = client.put("/api/labels/shapes-crud", json={"labels": ["circle", "square"], "auto": True})
    assert r.status_code == 201 and r.json()["labels"] == ["circle", "square"] and r.json()["auto"] is True
    r = client.put("/api/labels/shapes-crud", json={"labels": ["circle", "square", "triangle"]})
    assert r.status_code == 200 and r.json()["version"] == 2 and r.json()["auto"] is True
    same = client.put("/api/labels/shapes-crud", json={"labels": ["circle", "square", "triangle"], "auto": False})
    assert same.json()["version"] == 2 and same.json()["auto"] is False
    t = client.put("/api/labels/shapes-crud", json={"labels": ["circle", "square", "triangle"],
                                                    "templates": ["a drawing of a {}."]})
    assert t.json()["templates"] == ["a drawing of a {}."] and t.json()["version"] == 3
    listed = client.get("/api/labels").json()["label_sets"]
    assert any(s["name"] == "shapes-crud" and s["tagged"] == 0 for s in listed)
    assert [c["label"] for c in client.get("/api/labels/shapes-crud").json()["counts"]] == ["circle", "square",
                                                                                            "triangle"]
    error(client.put("/api/labels/bad", json={"labels": []}), 422)
    error(client.put("/api/labels/bad", json={"labels": ["a", "A"]}), 422)
    error(client.put("/api/labels/bad", json={"labels": ["a"], "templates": ["no slot"]}), 422)
    error(client.put("/api/labels/bad", json={"labels": ["a"], "colour": "red"}), 422)
    assert client.delete("/api/labels/shapes-crud").status_code == 204
    error(client.get("/api/labels/shapes-crud"), 404)
    error(client.delete("/api/labels/shapes-crud"), 404)
    error(client.delete("/api/labels/a,b/tags"), 404)  # never registers an ad-hoc set as a side effect
    assert all(s["name"] != "a,b" for s in client.get("/api/labels").json()["label_sets"])


def test_tag_job_with_events_counts_images_and_untag(client):
    client.put("/api/labels/shapes", json={"labels": ["circle", "square", "triangle"]})
    r = client.post("/api/labels/shapes/tag", json={"mode": "single"})
    assert r.status_code == 202
    job = r.json()
    assert job["kind"] == "tag" and job["state"] in ("queued", "running", "done")
    with client.stream("GET", f"/api/jobs/{job['id']}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = [line for line in stream.iter_lines() if line.startswith("data: ")]
    import json

    last = json.loads(events[-1][6:])
    assert last["state"] == "done" and last["progress"]["done"] == last["progress"]["total"] == 41
    assert last["result"]["counts"] and client.get(f"/api/jobs/{job['id']}").json()["state"] == "done"
    assert any(j["id"] == job["id"] for j in client.get("/api/jobs").json()["jobs"])
    shown = client.get("/api/labels/shapes").json()
    counts = {c["label"]: c["count"] for c in shown["counts"]}
    assert counts["circle"] >= 8 and shown["tagged"] == sum(counts.values())
    circles = client.get("/api/labels/shapes/images", params={"label": "circle", "k": 5}).json()["results"]
    assert len(circles) == 5 and all("circle" in r["path"] for r in circles)
    p1 = client.get("/api/labels/shapes/images", params={"label": "circle", "k": 3, "offset": 3}).json()["results"]
    assert [r["id"] for r in p1[:2]] == [r["id"] for r in circles[3:5]]
    tagged = search(client, q="shape", tag="circle", k=50)["results"]
    assert len(tagged) == counts["circle"] and all("circle" in r["path"] for r in tagged)
    # "more": whether the next page has any result, so that a page that ends exactly at the last one says no
    n = counts["circle"]
    def more(route: str, extra: dict, k: int, offset: int = 0) -> bool:
        body = client.get(route, params={**extra, "k": k, "offset": offset}).json()
        assert len(body["results"]) == max(0, min(k, n - offset)), (route, k, offset)
        return body["more"]

    for route, extra in (("/api/labels/shapes/images", {"label": "circle"}),
                         ("/api/search", {"q": "shape", "tag": "circle"})):
        pages = [(n,), (n - 1,), (1, n - 1), (1, n - 2), (5, n)]
        assert [more(route, extra, *p) for p in pages] == [False, True, False, True, False], route
    meta = client.get(f"/api/images/{circles[0]['id']}").json()
    assert {"set": "shapes", "label": "circle"} == {k: meta["tags"][0][k] for k in ("set", "label")}
    assert any(t["set"] == "shapes" for t in client.get("/api/facets").json()["tags"])
    error(client.get("/api/labels/shapes/images", params={"label": "hexagon"}), 404)
    assert client.delete("/api/labels/shapes/tags").json()["removed"] == sum(counts.values())
    assert client.get("/api/labels/shapes").json()["tagged"] == 0
    error(client.post("/api/labels/shapes/tag", json={"mode": "both"}), 422)
    error(client.post("/api/labels/nope/tag", json={}), 404)
    error(client.get("/api/jobs/nope"), 404)
    error(client.get("/api/jobs/nope/events"), 404)


def test_ingest_job_and_paths(private):
    client, index, pics = private
    (pics / "new").mkdir()
    next(pics.glob("*red-circle.png")).rename(pics / "new" / "moved.png")
    Image.new("RGB", (64, 64), "red").save(pics / "new" / "plain-red.png")
    r = client.post("/api/ingest", json={"paths": None})
    assert r.status_code == 202
    result = wait_job(client, r.json()["id"])["result"]
    assert (result["added"], result["moved"], result["deleted"]) == (1, 1, 0)
    assert set(result) >= {"added", "unchanged", "changed", "moved", "deleted", "skipped", "run_id", "seconds"}
    job = wait_job(client, client.post("/api/ingest", json={"paths": [str(pics / "new")]}).json()["id"])
    assert job["state"] == "done" and job["result"]["unchanged"] == 2
    for outside in ("/etc", str(pics / ".." / ".."), "../../etc/passwd", str(index)):
        message = error(client.post("/api/ingest", json={"paths": [outside]}), 403)
        assert "etc" not in message and str(pics) not in message
    error(client.post("/api/ingest", json={"paths": [str(pics / "nothing-here")]}), 404)
    error(client.post("/api/ingest", json={"paths": ["a\x00b"]}), 422)
    error(client.post("/api/ingest", json={"paths": "/etc"}), 422)


# -- concurrency with a writer ---------------------------------------------------------------------
def test_a_held_write_transaction_does_not_stall_a_new_query(private):
    """A long tag run holds SQLite's write lock; a new query's text-cache write gives up instead of waiting."""
    import sqlite3
    import time

    client, index, _ = private
    client.get("/api/search", params={"q": "warm up"})
    blocker = sqlite3.connect(index / "index.sqlite", timeout=1)
    blocker.execute("BEGIN IMMEDIATE")  # the writer's lock, as during a tag run's one transaction
    try:
        started = time.perf_counter()
        r = client.get("/api/search", params={"q": "a never seen query about red circles", "k": 3})
        elapsed = time.perf_counter() - started
    finally:
        blocker.rollback()
        blocker.close()
    assert r.status_code == 200 and len(r.json()["results"]) == 3
    assert elapsed < 10  # the busy timeout would have made it wait 30 s


def test_reader_keeps_its_index_while_a_job_writes(built, demo_embedder, tmp_path):
    index, pics = copy_index(built, tmp_path)
    reader = zsindex.open(index, embedder=demo_embedder)
    n = reader.vectors().ntotal
    writer = reader.sibling()
    reader.hold_vectors(True)
    Image.new("RGB", (64, 64), "red").save(pics / "plain-red.png")
    writer.ingest([pics], workers=0)
    assert reader.vectors().ntotal == n  # held: no rebuild while the job runs
    reader.refresh_vectors()
    reader.hold_vectors(False)
    assert reader.vectors().ntotal == n + 1


def test_any_file_name_is_served_as_valid_json(private):
    client, index, pics = private
    raw = os.path.join(os.fsencode(pics), b"caf\xe9 <b>&amp;.png")  # not UTF-8, and markup-like
    Image.new("RGB", (64, 64), "red").save(raw)
    wait_job(client, client.post("/api/ingest", json={}).json()["id"])
    r = client.get("/api/search", params={"q": "red", "k": 50})
    assert r.status_code == 200 and b"\\udce9" in r.content  # ASCII-escaped, parseable JSON
    [hit] = [h for h in r.json()["results"] if "caf" in h["path"]]
    assert os.fsencode(hit["path"]) == b"caf\xe9 <b>&amp;.png"  # the same bytes back
    f = client.get(f"/api/images/{hit['id']}/file")
    assert f.status_code == 200 and f.content == open(raw, "rb").read()
    assert client.get(f"/api/images/{hit['id']}").status_code == 200


def test_a_stopping_server_stops_its_running_ingest_at_the_next_step(tmp_path, demo_embedder):
    """Ctrl-C on `zsindex serve` during a long ingest job: the job stops at its next batch, recorded as
    interrupted (the next run finishes it), instead of the server waiting for the whole ingest."""
    from zsindex.service.jobs import JobRunner

    folder = tmp_path / "p"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(400):
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    lib = Library(tmp_path / "idx", embedder=demo_embedder)
    runner = JobRunner()
    job = runner.submit("ingest", lambda job: lib.ingest([folder], progress=job.progress, batch_size=1,
                                                         workers=0).summary())
    deadline = time.monotonic() + 60
    while job.done < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.state == "running" and job.done >= 2
    started = time.monotonic()
    runner.stop(timeout=60)
    assert time.monotonic() - started < 10  # not the rest of the 400 images
    assert job.state == "failed" and "interrupted" in job.error
    status = lib.status()
    assert status["last_run"]["status"] == "interrupted" and 0 < status["images"]["indexed"] < 400
    lib.ingest([folder], workers=0)  # the next run finishes the job
    assert lib.status()["images"]["indexed"] == 400


def test_job_runner_reports_failures_without_traces():
    from zsindex.errors import IndexLockedError
    from zsindex.service.jobs import JobRunner

    runner = JobRunner()

    def locked(job):
        raise IndexLockedError("another zsindex process is writing")

    def buggy(job):
        raise KeyError("secret internals")

    def fine(job):
        job.progress("x", 1, 1)
        return {"ok": True}

    jobs = [runner.submit("ingest", locked), runner.submit("tag", buggy), runner.submit("tag", fine)]
    assert runner.wait_idle(30)
    assert [j.state for j in jobs] == ["failed", "failed", "done"]
    assert "another zsindex process" in jobs[0].error
    assert jobs[1].error == "internal error (see the server log)" and "secret" not in str(jobs[1].to_dict())
    assert jobs[2].result == {"ok": True} and jobs[2].to_dict()["progress"] == {"done": 1, "total": 1, "stage": "x"}
    assert [j.id for j in runner.all()] == [j.id for j in reversed(jobs)] and runner.pending() == []
    runner.stop()


def test_thumbnails_use_the_ingest_decoders_bomb_guard(built, tmp_path):
    import hashlib

    from zsindex.errors import ImageError
    from zsindex.thumbcache import cache_path, make_thumbnail

    source = next(built[1].glob("*.png"))
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    with pytest.raises(ImageError, match="decompression bomb guard"):
        make_thumbnail(tmp_path, str(source), sha, 128, max_megapixels=0.01)  # 256x256 is 0.066 MP
    assert not cache_path(tmp_path, sha, 128).exists()
    made = make_thumbnail(tmp_path, str(source), sha, 128)
    assert cache_path(tmp_path, sha, 128).read_bytes() == made and Image.open(io.BytesIO(made)).size == (128, 128)


def test_pages_are_their_main_inside_one_layout(client):
    """Each page is whole HTML: one layout (head, scripts, top bar) around the page's own <main>."""
    titles = {"/": "Search", "/labels": "Labels", "/status": "Status", "/image/1": "Image", "/login": "Log in",
              "/image/abc": "Image", "/image/99999999999999999999": "Image"}  # the page says there is no such image
    for path, title in titles.items():
        r = client.get(path)
        page = r.text
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), path
        assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>"), path
        assert f"<title>{title} · zsindex</title>" in page and "{{" not in page, path
        assert page.count("<main") == 1 and page.count('<script type="module" src="/static/app.js">') == 1, path
        assert page.count('<header class="topbar">') == (0 if path == "/login" else 1), path
    r = client.get("/favicon.ico", follow_redirects=False)  # browsers ask for it whatever a page names
    assert r.status_code == 301 and r.headers["location"] == "/static/favicon.svg"
    assert client.get("/static/favicon.svg").headers["content-type"].startswith("image/svg")


def test_head_answers_as_get_does_without_a_body(client):
    """Every GET resource answers HEAD with GET's status and headers (a file's size and type), no body."""
    hit = search(client, q="a red circle", k=1)["results"][0]
    for url in (f"/api/images/{hit['id']}/file", f"/api/images/{hit['id']}/thumbnail?size=256",
                "/api/status", "/api/search?q=red&k=2", "/", f"/image/{hit['id']}", "/static/app.css"):
        got, head = client.get(url), client.head(url)
        assert head.status_code == got.status_code == 200, url
        assert head.content == b"" and head.headers["content-type"] == got.headers["content-type"], url
        if "content-length" in got.headers and url.startswith("/api/images"):
            assert head.headers["content-length"] == got.headers["content-length"] == str(len(got.content))
    assert client.head("/api/images/999999/file").status_code == 404


def test_a_body_that_is_not_json_says_so(client):
    r = client.put("/api/labels/anything", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    message = r.json()["error"]["message"]
    assert message.startswith("the request body is not valid JSON") and "0:" not in message, message


# -- text parameters: UTF-8 without NUL, never empty ------------------------------------------------
def _operations(schema: dict) -> list[tuple[str, str, dict]]:
    return [(path, method.upper(), op) for path, item in schema["paths"].items() for method, op in item.items()]


def _text_schema(schema: dict) -> bool:
    kinds = [schema] + schema.get("anyOf", [])
    return any(k.get("type") == "string" or (k.get("type") == "array" and k.get("items", {}).get("type") == "string")
               for k in kinds)


def _refused(r, where) -> None:
    assert 400 <= r.status_code < 500, (where, r.status_code, r.text)
    assert r.json()["error"]["message"], where


def test_every_text_parameter_of_every_route_takes_only_text(built, demo_embedder, tmp_path):
    """`GET /api/search?q=%ff%fe` and `q=%00` answered 200 with results while the command line refuses a query
    that is not UTF-8: every text parameter of every operation (path, query, JSON and form fields), sent as bytes
    that are not UTF-8, a NUL, or a JSON string's lone surrogate, is refused with a JSON 4xx, on a real server."""
    import httpx

    from .service_world import running_server

    index, pics = copy_index(built, tmp_path)
    app = create_app(zsindex.open(index, embedder=demo_embedder), roots=[pics], ingest_workers=0)
    png = next(Path(pics).rglob("*.png")).read_bytes()
    with running_server(app) as base, httpx.Client(base_url=base, timeout=60) as http:
        schema = http.get("/openapi.json").json()
        components = schema["components"]["schemas"]
        tried = 0
        for path, method, op in _operations(schema):
            params = op.get("parameters", [])
            fill = {p["name"]: "1" if p["in"] == "path" else None for p in params}
            for p in params:
                if p["in"] not in ("path", "query") or not _text_schema(p.get("schema", {})):
                    continue
                for bad in ("%ff%fe", "a%00b"):
                    url = path
                    for name, value in fill.items():
                        if value is not None:
                            url = url.replace("{" + name + "}", bad if name == p["name"] else "colours")
                    if p["in"] == "query":
                        url += f"?{p['name']}={bad}" if p["name"] == "q" else f"?q=red&{p['name']}={bad}"
                    _refused(http.request(method, url), (method, url))
                    tried += 1
            content = op.get("requestBody", {}).get("content", {})
            url = path.replace("{name}", "colours").replace("{job_id}", "1")
            for kind, body in content.items():
                ref = body["schema"].get("$ref") or next(s["$ref"] for s in body["schema"].get("anyOf", [])
                                                          if "$ref" in s)
                for field, spec in components[ref.rsplit("/", 1)[-1]].get("properties", {}).items():
                    if not _text_schema(spec) or field == "file":
                        continue
                    many = spec.get("type") == "array" or any(s.get("type") == "array" for s in spec.get("anyOf", []))
                    if kind == "application/json":
                        for bad in ('"a\\u0000b"', '"a\\udcffb"'):
                            text = f'{{"{field}": {"[" + bad + "]" if many else bad}}}'
                            r = http.request(method, url, content=text.encode(),
                                             headers={"Content-Type": "application/json"})
                            _refused(r, (method, url, text))
                            tried += 1
                    else:
                        files = {"file": ("f.png", png, "image/png")} if kind == "multipart/form-data" else None
                        r = http.request(method, url, data={field: "a\x00b"}, files=files)
                        _refused(r, (method, url, field))
                        tried += 1
        assert tried >= 20, tried
        assert http.get("/api/search", params={"q": "red"}).status_code == 200
        assert http.get("/api/search", params={"q": "café"}).status_code == 200  # UTF-8 text is text


@pytest.mark.parametrize("name", ["q", "not", "path", "after", "before", "camera", "format", "tag", "keyword"])
def test_an_empty_text_parameter_is_refused_as_the_cli_and_the_api_refuse_it(client, name):
    """`camera=` and `path=` were "no filter" over HTTP while `zsindex search --camera ''` and
    lib.search(filters={"camera": ""}) refuse an empty value."""
    params = {"q": "red", name: ""} if name != "q" else {"q": "", "like": 1}
    message = error(client.get("/api/search", params=params), 422)
    assert "empty" in message or "''" in message, message


def test_a_parameter_named_with_its_value_reads_as_words():
    """`format'apng' is not...`: a message's parameter followed by its value keeps a space between them."""
    from zsindex.service.messages import server_text

    assert server_text("format='apng' is not a format") == "format 'apng' is not a format"
    assert server_text('camera="x" y') == 'camera "x" y'
    assert server_text("give after=, e.g. 2024") == "give after, e.g. 2024"


def test_format_apng_message_keeps_its_space(client):
    message = error(client.get("/api/search", params={"q": "red", "format": "apng"}), 422)
    assert message.startswith("format 'apng' is not"), message


def test_a_job_stream_ends_with_the_state_that_ended_the_job():
    """The job's thread can finish it between the stream's reading of its state and the stream's check
    whether it ended: the stream then stopped with "running" as its last event (seen once under load in
    CI). Whether it ended is now read from the state that was sent, so the last event is always the end."""
    import asyncio
    import json

    from zsindex.service.jobs import Job
    from zsindex.service.routes_labels import job_events

    class FinishesWhileRead(Job):
        def to_dict(self):
            state = super().to_dict()
            if self.state == "running":  # the job's thread finishes it just after this snapshot
                self.result, self.state = {"counts": {}}, "done"
                self.version += 1
            return state

    job = FinishesWhileRead("tag-1", "tag", state="running", version=1)

    async def never() -> bool:
        return False

    async def collect() -> list[dict]:
        return [json.loads(e[6:]) async for e in job_events(job, never) if e.startswith("data: ")]

    events = asyncio.run(asyncio.wait_for(collect(), 10))
    assert [e["state"] for e in events] == ["running", "done"]
