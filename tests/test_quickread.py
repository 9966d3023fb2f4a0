"""A plain text query is answered from the SQLite file without SQLAlchemy, with the full path's very results."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from zsindex import quickread, store, vectors, warm
from zsindex.cli import cli
from zsindex.library import Library

from . import mediafiles as mf
from .test_ingest import draw

REPO = Path(__file__).resolve().parents[1]
QUERIES = ["a red circle", "a blue square", "a green triangle"]


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("quick")
    photos = root / "photos"
    draw(photos, ["red-circle", "blue-square", "green-triangle", "yellow-star", "red-square", "blue-circle"])
    odd = os.fsencode(photos) + b"/caf\xe9-\xff.png"  # a name that is not UTF-8
    os.rename(photos / "blue-circle.png", odd)
    lib = Library(root / "index", model="demo")
    lib.ingest([photos], workers=0)
    for text in QUERIES + ["blue"]:
        lib.search(text)  # cached
    return root / "index"


def _cli(*args: str) -> tuple[int, bytes]:
    done = CliRunner().invoke(cli, list(args))
    return done.exit_code, done.stdout_bytes


def _both(monkeypatch, args: list[str]) -> tuple[tuple[int, bytes], tuple[int, bytes], int]:
    """(quick answer, full answer, how many times the quick path answered)."""
    answered = []
    real = quickread.search

    def counted(*a, **kw):
        out = real(*a, **kw)
        answered.append(out is not None)
        return out

    monkeypatch.setattr(quickread, "search", counted)
    quick = _cli(*args)
    monkeypatch.setattr(quickread, "search", lambda *a, **kw: None)
    full = _cli(*args)
    monkeypatch.setattr(quickread, "search", real)
    return quick, full, sum(answered)


@pytest.mark.parametrize("extra", [
    [], ["-k", "2", "--offset", "1"], ["-k", "50"], ["--not", "blue"], ["--not", "blue", "--not-weight", "1.5"],
    ["--min-score", "0.2"], ["--csv"], ["--table"], ["--paths-only"], ["--print0"], ["--model", "demo"],
])
def test_repeated_queries_answer_as_the_full_path_does(index, monkeypatch, extra):
    for text in QUERIES:
        quick, full, answered = _both(monkeypatch, ["search", text, "--index", str(index), *extra])
        assert answered == 1, "the quick path did not answer a plain repeated query"
        assert quick == full and quick[0] == 0 and quick[1]


def test_a_name_that_is_not_utf8_reads_back_the_same(index, monkeypatch):
    quick, full, answered = _both(monkeypatch, ["search", "a blue circle", "--index", str(index), "-k", "6"])
    assert answered == 1 and quick == full
    paths = [json.loads(line)["path"] for line in quick[1].splitlines()]
    assert any("\\xff" in p for p in paths)  # the escaped form of the README
    code, out = _cli("search", "a blue circle", "--index", str(index), "-k", "6", "--print0")
    assert os.fsencode(index.parent / "photos") + b"/caf\xe9-\xff.png" in out


def _probe(index: Path, text: str) -> tuple[list[str], list[dict]]:
    """(SQLAlchemy modules imported, hits) of `zsindex search TEXT` in a new process."""
    probe = ("import json, sys\nfrom zsindex.cli import main\nsys.argv = ['zsindex'] + sys.argv[1:]\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy')), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", probe, "search", text, "--index", str(index), "-k", "3"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO,
                          check=True)
    return json.loads(done.stderr.strip().splitlines()[-1]), [json.loads(x) for x in done.stdout.splitlines()]


def test_neither_a_repeated_nor_a_new_query_imports_sqlalchemy(index):
    imported, hits = _probe(index, "a red circle")
    assert imported == [] and len(hits) == 3 and hits[0]["path"].endswith("red-circle.png")
    con = quickread.connect(index)
    model_id = quickread.the_model(con)[0]
    assert "a yellow star, never asked" not in quickread.cached_texts(con, model_id, ["a yellow star, never asked"])
    imported, hits = _probe(index, "a yellow star, never asked")
    assert imported == [] and len(hits) == 3 and hits[0]["path"].endswith("yellow-star.png")
    assert "a yellow star, never asked" in quickread.cached_texts(con, model_id, ["a yellow star, never asked"])
    con.close()
    imported, again = _probe(index, "a yellow star, never asked")  # now from the cache
    assert imported == [] and again == hits


def test_a_new_text_is_embedded_and_cached_as_the_full_path_does(index, tmp_path, monkeypatch):
    import shutil

    quick_copy, full_copy = tmp_path / "a", tmp_path / "b"
    shutil.copytree(index, quick_copy)
    shutil.copytree(index, full_copy)
    text = "a purple hexagon, new here"
    args = ["search", text, "--not", "a green thing, new too", "-k", "6"]
    quick, _, answered = _both(monkeypatch, [*args, "--index", str(quick_copy)])
    monkeypatch.setattr(quickread, "search", lambda *a, **kw: None)
    full = _cli(*args, "--index", str(full_copy))
    assert answered == 1 and quick == full and quick[0] == 0
    cached = [Library(folder).store.cached_texts(Library(folder).store.model().id, [text])[text]
              for folder in (quick_copy, full_copy)]
    assert (cached[0] == cached[1]).all()  # the same vector, readable by the store
    assert Library(quick_copy).store.cache_texts(Library(quick_copy).store.model().id, {text: cached[0]})


def test_a_busy_database_answers_without_caching(index, tmp_path):
    import shutil
    import time

    copy = tmp_path / "index"
    shutil.copytree(index, copy)
    writer = sqlite3.connect(copy / store.DB_NAME)
    writer.execute("BEGIN IMMEDIATE")  # another writer holds the database, as a long tag run would
    try:
        start = time.monotonic()
        hits = quickread.search(copy, ["an orange circle, new"], [], 0.5, 3, 0, None)
        took = time.monotonic() - start
    finally:
        writer.rollback()
        writer.close()
    assert hits is not None and len(hits) == 3
    assert took < 10  # not the store's 30 s patience: one second for the cache, then the answer
    con = quickread.connect(copy)
    assert not quickread.cached_texts(con, quickread.the_model(con)[0], ["an orange circle, new"])
    con.close()


def test_anything_but_the_plain_case_goes_the_full_way(index, tmp_path, monkeypatch):
    folder = Path(index)
    args = dict(nots=[], not_weight=0.5, k=3, offset=0, min_score=None)
    assert quickread.search(folder, ["a red circle"], **args) is not None
    assert quickread.search(folder, ["a red circle"], **{**args, "nots": [" "]}) is None  # the full path's message
    assert quickread.search(folder, ["a red circle"], **args, db="postgresql+psycopg://u@h/db") is None
    monkeypatch.setenv("ZSINDEX_DB", "postgresql+psycopg://u@h/db")
    assert quickread.search(folder, ["a red circle"], **args) is None
    monkeypatch.delenv("ZSINDEX_DB")
    assert quickread.search(folder, ["a red circle"], **args, model="ViT-B-32") is None  # another model
    other = {"int8": "fp32", "fp32": "int8"}[Library(folder).store.model().precision]
    assert quickread.search(folder, ["a red circle"], **args, model="demo", precision=other) is None
    code, _ = _cli("search", "a red circle", "--index", str(index), "--model", "demo", "--precision", other)
    assert code != 0  # refused by the full path, with its message
    assert quickread.search(tmp_path / "nothing-here", ["a red circle"], **args) is None
    code, out = _cli("search", "a red circle", "--index", str(index), "--model", "ViT-B-32")
    assert code != 0  # the full path refuses another model, with its message


def test_a_stale_or_missing_faiss_file_or_another_schema_goes_the_full_way(index, tmp_path, monkeypatch):
    import shutil

    copy = tmp_path / "index"
    shutil.copytree(index, copy)
    args = dict(nots=[], not_weight=0.5, k=3, offset=0, min_score=None)
    want = quickread.search(copy, ["a red circle"], **args)
    meta = json.loads((copy / vectors.META_NAME).read_text())
    (copy / vectors.META_NAME).write_text(json.dumps({**meta, "generation": meta["generation"] - 1}))
    assert quickread.search(copy, ["a red circle"], **args) is None
    quick, full, answered = _both(monkeypatch, ["search", "a red circle", "--index", str(copy), "-k", "3"])
    assert quick == full and answered == 0  # the full path rebuilt the file...
    assert quickread.search(copy, ["a red circle"], **args) == want  # ...and the next query is quick again
    (copy / vectors.FAISS_NAME).unlink()
    assert quickread.search(copy, ["a red circle"], **args) is None
    Library(copy).vectors()  # rebuilt
    con = sqlite3.connect(copy / store.DB_NAME)
    con.execute("UPDATE alembic_version SET version_num = 'zz_newer'")
    con.commit()
    con.close()
    assert quickread.search(copy, ["a red circle"], **args) is None


def test_a_quantised_index_goes_the_full_way(index, tmp_path, monkeypatch):
    import shutil

    copy = tmp_path / "index"
    shutil.copytree(index, copy)
    assert Library(copy).rebuild("ivf") > 0
    args = dict(nots=[], not_weight=0.5, k=3, offset=0, min_score=None)
    assert quickread.search(copy, ["a red circle"], **args) is not None  # IVF: full vectors in the file
    monkeypatch.setattr(vectors.VectorIndex, "quantised", property(lambda self: True))
    assert quickread.search(copy, ["a red circle"], **args) is None  # codes need their exact vectors from SQL


def test_a_video_among_the_hits_goes_the_full_way(tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    draw(photos, ["blue-square"])
    mf.write_video(photos / "clip.mp4", [(mf.scene("red", "circle", 64), 1.0), (mf.scene("blue", "square", 64), 1.0)])
    lib = Library(tmp_path / "index", model="demo")
    lib.ingest([photos], workers=0)
    lib.search("a red circle")
    args = dict(nots=[], not_weight=0.5, k=5, offset=0, min_score=None)
    assert quickread.search(tmp_path / "index", ["a red circle"], **args) is None
    quick, full, _ = _both(monkeypatch, ["search", "a red circle", "--index", str(tmp_path / "index")])
    assert quick == full and sum(json.loads(x)["path"].endswith("clip.mp4") for x in quick[1].splitlines()) == 1


def test_names_shared_with_the_store_agree():
    assert quickread.DB_NAME == store.DB_NAME and quickread.KIND_STATE == vectors.KIND_STATE
    assert warm  # warm peeks through quickread.connect


def test_a_new_text_starts_its_text_tower_early_and_a_cached_one_does_not(index, tmp_path, monkeypatch):
    import shutil

    copy = tmp_path / "index"
    shutil.copytree(index, copy)
    asked: list[str] = []
    monkeypatch.setattr(warm, "text_tower_of", asked.append)
    identity = Library(copy).store.model().identity
    assert quickread.search(copy, ["a red circle"], [], 0.5, 3, 0, None) is not None
    assert asked == []  # cached: no tower, no thread
    assert quickread.search(copy, ["a violet moon, new"], [], 0.5, 3, 0, None) is not None
    assert asked == [identity]
    assert quickread.search(copy, ["a grey cloud, new"], [], 0.5, 3, 0, None, model="demo") is not None
    assert asked == [identity]  # a model named by the user is loaded as named, without an early tower
