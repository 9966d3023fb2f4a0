"""Search on an ingested shapes world with the shipped model, checked against brute force."""

from __future__ import annotations

import fnmatch
import json
import os
import sqlite3
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from zsindex import shapes
from zsindex.cli import cli
from zsindex.errors import IndexStateError, ModelMismatchError, UsageError
from zsindex.library import Library
from zsindex.search import Filters, filter_ids, top_k

CAMERAS = [("Canon", "EOS 5D"), ("Apple", "iPhone 6"), (None, None)]


def _save(path: Path, things: list, rng, camera: tuple, when: datetime) -> None:
    im = Image.fromarray(shapes.draw(things, size=64, rng=rng))
    if path.suffix == ".jpg":
        exif = Image.Exif()
        if camera[0]:
            exif[271], exif[272] = camera
        exif.get_ifd(0x8769)[36867] = when.strftime("%Y:%m:%d %H:%M:%S")
        im.save(path, quality=95, exif=exif)
    else:
        im.save(path)
        os.utime(path, (when.timestamp(), when.timestamp()))


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, demo_embedder):
    """300 images: every seen pair, in folders by year, JPEG with EXIF or PNG with file times."""
    root = tmp_path_factory.mktemp("lib")
    rng = np.random.default_rng(21)
    pairs = shapes.seen_pairs()
    truth = {}
    for i in range(300):
        c, s = pairs[i % len(pairs)]
        year = 2020 + i % 3
        folder = root / "photos" / str(year) / ("rare" if i % 100 == 7 else "common")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{i:03d}-{c}-{s}.{'jpg' if i % 2 else 'png'}"
        _save(path, [shapes.Thing(c, s)], rng, CAMERAS[i % 3], datetime(year, 1 + i % 12, 1 + i % 28, 12))
        truth[str(path)] = (c, s, year, CAMERAS[i % 3] if path.suffix == ".jpg" else (None, None))
    lib = Library(root / "index", embedder=demo_embedder)
    report = lib.ingest([root / "photos"], workers=0)
    assert report.added == 300
    return lib, truth


def test_text_query_ranks_matching_images_first(indexed):
    lib, truth = indexed
    hits = lib.search("a red circle", k=5)
    # 15 of the 300 images are red circles; the demo model misreads about one shape in ten
    assert all(truth[h.path][0] == "red" for h in hits)
    assert sum(truth[h.path][:2] == ("red", "circle") for h in hits) >= 4
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_negative_term_removes_what_it_names(indexed):
    lib, truth = indexed
    plain = lib.search("a circle", k=40)
    assert any(truth[h.path][0] == "red" for h in plain)  # red things are among what "a circle" finds
    without_red = lib.search("a circle", not_="something red", k=20)  # default --not-weight 0.5
    assert not any(truth[h.path][0] == "red" for h in without_red)
    assert sum(truth[h.path][1] == "circle" for h in without_red) >= 12  # 60 of the 285 others are circles


def test_like_image_inside_and_outside_index(indexed, tmp_path):
    lib, truth = indexed
    inside = next(p for p, t in truth.items() if t[:2] == ("blue", "star"))
    hits = lib.search(like=inside, k=3)
    assert hits[0].path == inside and hits[0].score == pytest.approx(1.0, abs=1e-5)
    outside = tmp_path / "q.png"
    Image.fromarray(shapes.draw([shapes.Thing("blue", "star")], size=64, seed=99)).save(outside)
    assert all(truth[h.path][:2] == ("blue", "star") for h in lib.search(like=outside, k=5))


def test_path_filter_with_one_percent_still_returns_k(indexed):
    lib, truth = indexed
    rare = [p for p in truth if "/rare/" in p]
    assert len(rare) == 3  # 1% of the library
    hits = lib.search("a green star", k=3, path="*/rare/*")
    assert sorted(h.path for h in hits) == sorted(rare)
    assert len(lib.search("a green star", k=10, path="*/rare/*")) == 3  # never more than exist


def test_date_camera_and_format_filters(indexed):
    lib, truth = indexed
    hits = lib.search("a square", k=500, after=datetime(2021, 1, 1), before=datetime(2022, 1, 1))
    assert hits and {truth[h.path][2] for h in hits} == {2021}
    assert len(hits) == sum(t[2] == 2021 for t in truth.values())  # EXIF date for JPEG, file time for PNG
    canon = lib.search("a square", k=500, camera="canon")
    assert canon and all(truth[h.path][3][0] == "Canon" for h in canon)
    assert len(canon) == sum(t[3][0] == "Canon" for t in truth.values())
    pngs = lib.search("a square", k=500, format="png")
    assert len(pngs) == 150 and all(h.path.endswith(".png") for h in pngs)
    assert len(lib.search("a square", k=500, format="jpg")) == 150


def test_paging_is_stable_and_min_score(indexed):
    lib, _ = indexed
    whole = lib.search("a yellow triangle", k=30)
    pages = [h for off in range(0, 30, 7) for h in lib.search("a yellow triangle", k=7, offset=off)][:30]
    assert [h.id for h in pages] == [h.id for h in whole]
    cut = whole[10].score
    assert [h.id for h in lib.search("a yellow triangle", k=30, min_score=cut)] == [h.id for h in whole[:11]]


def test_repeated_query_does_not_run_text_encoder(indexed):
    lib, _ = indexed
    lib.search("an orange square, cached")
    before = lib.embedder.text_calls
    lib.search("an orange square, cached")
    assert lib.embedder.text_calls == before
    fresh = Library(lib.folder)  # another process would see the same cache in SQLite
    fresh.search("an orange square, cached")
    assert fresh._embedder is None  # the model was never even loaded


def test_query_errors(indexed, tmp_path):
    lib, _ = indexed
    with pytest.raises(UsageError):
        lib.search("")
    with pytest.raises(UsageError):
        lib.search(None)
    with pytest.raises(IndexStateError, match=r"Library\.ingest\(PATH\)"):
        Library(tmp_path / "empty").search("x")

    class Other:
        identity, dim, logit_scale, image_size = "sha256:other", 8, 1.0, 224

    with pytest.raises(ModelMismatchError):
        Library(lib.folder, embedder=Other()).search("x")


def test_cli_search_formats_and_exit_codes(indexed, tmp_path):
    lib, truth = indexed
    index = str(lib.folder)
    r = CliRunner().invoke(cli, ["search", "a", "red", "circle", "--index", index, "-k", "3"])
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.exit_code == 0 and [set(x) for x in rows] == [{"id", "path", "score", "exists"}] * 3
    assert [x["path"] for x in rows] == [h.path for h in lib.search("a red circle", k=3)]
    assert all(truth[x["path"]][0] == "red" for x in rows)
    r = CliRunner().invoke(cli, ["search", "red circle", "--index", index, "-k", "2", "--paths-only"])
    assert r.stdout.splitlines() == [h.path for h in lib.search("red circle", k=2)]
    r = CliRunner().invoke(cli, ["search", "red circle", "--index", index, "-k", "2", "--csv"])
    assert r.stdout.splitlines()[0] == "score,path,id,exists"
    r = CliRunner().invoke(cli, ["search", "red circle", "--index", index, "--table", "--after", "2021-13-01"])
    assert r.exit_code == 2 and "--after" in r.output
    assert CliRunner().invoke(cli, ["search", "--index", index]).exit_code == 2
    assert CliRunner().invoke(cli, ["search", " ", "--index", index]).exit_code == 2
    missing = CliRunner().invoke(cli, ["search", "x", "--index", str(tmp_path / "none")])
    assert missing.exit_code == 1 and "zsindex ingest" in missing.output


def _stored(lib: Library) -> tuple[np.ndarray, np.ndarray, list[str]]:
    con = sqlite3.connect(lib.folder / "index.sqlite")
    rows = con.execute("SELECT i.id, v.vector, i.path FROM images i JOIN vectors v ON v.sha256 = i.sha256 "
                       "WHERE i.status = 'indexed' ORDER BY i.id").fetchall()
    con.close()
    ids = np.array([r[0] for r in rows])
    return ids, np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows]), [r[2] for r in rows]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31), k=st.integers(1, 40),
       pattern=st.sampled_from([None, "*/2020/*", "*/rare/*", "*.png", "*1?-*", "*/2022/common/*.jpg"]))
def test_search_equals_brute_force(indexed, seed, k, pattern):
    lib, _ = indexed
    ids, vecs, paths = _stored(lib)
    q = np.random.default_rng(seed).normal(size=vecs.shape[1]).astype(np.float32)
    q /= np.linalg.norm(q)
    keep = np.array([pattern is None or fnmatch.fnmatchcase(p, pattern) for p in paths])
    scores = vecs @ q
    order = sorted(np.flatnonzero(keep), key=lambda i: (-scores[i], ids[i]))[:k]
    with lib.store.session() as session:
        selected = filter_ids(session, Filters(path=pattern)) if pattern else None
    got = top_k(lib.vectors(), q, k, selected)
    assert len(got) == len(order)
    # Each hit is the right one up to float rounding: FAISS and numpy round sums differently, so two
    # images whose scores differ by about 1e-7 may swap places; the exact score of every hit must
    # still be the brute-force score of its rank.
    exact = dict(zip(ids.tolist(), scores.tolist()))
    np.testing.assert_allclose([exact[i] for i, _ in got], scores[order], atol=1e-5)
    np.testing.assert_allclose([sc for _, sc in got], scores[order], atol=1e-5)
    clear = {int(ids[i]) for i in order if scores[i] > scores[order][-1] + 1e-5}
    assert clear <= {i for i, _ in got}  # every clear winner is on the page


def test_like_a_file_changed_since_ingest_uses_what_it_holds_now(tmp_path, demo_embedder):
    """An indexed path whose file changed on disk (not re-ingested yet) is embedded again, not looked up: its
    stored vector describes the old content. A file that is gone keeps its stored vector. (Eval reads the
    same lookup.)"""
    folder = tmp_path / "p"
    folder.mkdir()
    things = {"a.png": ("red", "circle"), "b.png": ("blue", "square"), "c.png": ("green", "star")}
    for name, (colour, shape) in things.items():
        Image.fromarray(shapes.draw([shapes.Thing(colour, shape)], size=64, seed=1)).save(folder / name)
    lib = Library(tmp_path / "idx", embedder=demo_embedder)
    lib.ingest([folder], workers=0)
    model_id = lib.store.model().id
    paths = [str(folder / n) for n in things]
    assert set(lib.store.stored_vectors(model_id, paths)) == set(paths)
    Image.fromarray(shapes.draw([shapes.Thing("blue", "square")], size=64, seed=2)).save(folder / "a.png")
    (folder / "c.png").unlink()
    assert set(lib.store.stored_vectors(model_id, paths)) == {paths[1], paths[2]}
    hits = lib.search(like=folder / "a.png", k=3)
    assert hits[0].path == paths[1]  # the blue square it now shows, not itself as the red circle it was
    assert not any(h.path == paths[0] and h.score == pytest.approx(1.0, abs=1e-5) for h in hits)
