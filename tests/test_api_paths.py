"""The Python API as the command line: an empty path is a usage error, and reading never creates an index.

The classes: every API call taking a path or glob refuses "" (os.path and pathlib read it as the current
folder, so forget("") forgot every image under it; a filter of "" filtered nothing); every reading call on a
folder with no index raises "no index at ..." and leaves nothing behind, as `zsindex search`/`status` do,
while a first write (ingest, labels_add) makes the index.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import zsindex
from zsindex import shapes
from zsindex.errors import IndexStateError, UsageError
from zsindex.evaluate import load_dataset
from zsindex.labels import parse_label_file
from zsindex.search import Filters


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, demo_embedder):
    base = tmp_path_factory.mktemp("api-paths")
    scenes = [[shapes.Thing(c, s)] for c, s in (("red", "circle"), ("blue", "square"), ("green", "star"))]
    shapes.save_world(base / "photos", scenes, size=64, seed=3)
    lib = zsindex.open(base / "index", embedder=demo_embedder)
    lib.ingest([base / "photos"], workers=0)
    lib.labels_add("shapes", "circle,square,star")
    lib.tag("shapes", mode="multi", threshold=-1.0)
    return base, lib


def _rows(index: Path) -> tuple[int, int]:
    con = sqlite3.connect(index / "index.sqlite")
    try:
        return (con.execute("SELECT count(*) FROM images WHERE status = 'indexed'").fetchone()[0],
                con.execute("SELECT count(*) FROM tags").fetchone()[0])
    finally:
        con.close()


def test_every_api_call_refuses_an_empty_path_or_glob(indexed, demo_embedder, monkeypatch):
    base, lib = indexed
    monkeypatch.chdir(base / "photos")  # where "" would land: the indexed images themselves
    before = _rows(base / "index")
    calls = {
        "open": lambda: zsindex.open(""),
        "ingest": lambda: lib.ingest([""], workers=0),
        "ingest exclude": lambda: lib.ingest([base / "photos"], exclude=[""], workers=0),
        "forget": lambda: lib.forget([""]),
        "forget among others": lambda: lib.forget([str(base / "elsewhere"), ""]),
        "search like": lambda: lib.search("a circle", like=""),
        "search path": lambda: lib.search("a circle", path=""),
        "search path spaces": lambda: lib.search("a circle", path="  "),
        "image_vector": lambda: lib.image_vector(""),
        "tag path": lambda: lib.tag("shapes", path=""),
        "tag_rows path": lambda: lib.tag_rows("shapes", path=""),
        "sidecars_write path": lambda: lib.sidecars_write("shapes", path="", dry_run=True),
        "keyword_counts path": lambda: lib.keyword_counts(path=""),
        "keywords": lambda: lib.keywords([""]),
        "Filters": lambda: Filters(path=""),
        "classify": lambda: zsindex.classify([""], "circle,square", embedder=demo_embedder),
        "similarity": lambda: zsindex.similarity([""], ["a circle"], embedder=demo_embedder),
        "load_dataset": lambda: load_dataset(""),  # type: ignore[arg-type]
        "parse_label_file": lambda: parse_label_file(""),  # type: ignore[arg-type]
    }
    for name, call in calls.items():
        with pytest.raises(UsageError, match="is empty"):
            call()
            pytest.fail(f"{name} took an empty path")
    assert _rows(base / "index") == before  # nothing forgotten, untagged or re-ingested
    assert not (base / "photos" / "index.sqlite").exists()


def test_reading_a_folder_without_an_index_creates_nothing(tmp_path):
    typo = tmp_path / "x-typo"
    lib = zsindex.open(typo)
    reads = {
        "search": lambda: lib.search("x"),
        "status": lib.status,
        "errors": lib.errors,
        "ignored_files": lib.ignored_files,
        "labels_list": lib.labels_list,
        "labels_show": lambda: lib.labels_show("animals"),
        "tag_summary": lib.tag_summary,
        "tag_rows": lambda: lib.tag_rows("animals"),
        "tag": lambda: lib.tag("cat,dog"),
        "untag": lambda: lib.untag("animals"),
        "keyword_counts": lib.keyword_counts,
        "forget": lambda: lib.forget(["/somewhere"], dry_run=True),
        "rebuild": lib.rebuild,
        "vectors": lib.vectors,
        "sidecars_remove": lambda: lib.sidecars_remove(dry_run=True),
        "label_sets": lib.label_sets,
    }
    for name, call in reads.items():
        with pytest.raises(IndexStateError, match="no index at"):
            call()
            pytest.fail(f"{name} read a folder without an index")
        assert not typo.exists(), f"{name} created {typo}"
    lib.close()
    with pytest.raises(IndexStateError, match="no index at"):  # the Library class too, not only open()
        zsindex.Library(typo).search("x")
    assert not typo.exists()


def test_a_first_write_makes_the_index(tmp_path, demo_embedder):
    lib = zsindex.open(tmp_path / "new")
    assert not (tmp_path / "new").exists()
    lib.labels_add("animals", "cat,dog")
    assert (tmp_path / "new" / "index.sqlite").is_file()
    assert [s["name"] for s in lib.labels_list()] == ["animals"]
    scenes = [[shapes.Thing("red", "circle")]]
    shapes.save_world(tmp_path / "photos", scenes, size=64, seed=1)
    other = zsindex.open(tmp_path / "other", embedder=demo_embedder)
    reader = zsindex.open(tmp_path / "other")  # opened before the index exists: reads it once it does
    assert other.ingest([tmp_path / "photos"], workers=0).added == 1
    assert reader.status()["images"] == {"indexed": 1}
    with pytest.raises(UsageError, match="no such file"):  # a refused first write makes nothing either
        zsindex.open(tmp_path / "third").ingest([tmp_path / "missing"])
    assert not (tmp_path / "third").exists()


def test_the_model_of_an_index_not_made_yet_loads_without_making_it(tmp_path):
    lib = zsindex.open(tmp_path / "later", model="demo", device="cpu")
    assert lib.embedder.dim > 0  # loaded before a timed ingest, say
    assert not (tmp_path / "later").exists()
