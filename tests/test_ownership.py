"""Commands remove or overwrite only what they can show they made (issue 10, item 1).

The class: `demo` re-runs, new indexes in folders holding files of zsindex's
names, foreign SQLite files, and output files (`export -o`, `eval --confusion`).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from zsindex.cli import cli
from zsindex.demo import run_demo
from zsindex.errors import ForeignFileError, IndexStateError
from zsindex.library import Library

from .conftest import FIXTURES


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    """A folder the demo ran in once; tests copy it."""
    folder = tmp_path_factory.mktemp("demo") / "D"
    run_demo(folder)
    return folder


def copy_demo(demo_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "D"
    shutil.copytree(demo_dir, target)
    # The marker records paths relative to the folder, so the copy is the demo's own folder too;
    # its index rows name the original's images, so re-point them as the demo would have written them.
    con = sqlite3.connect(target / "index" / "index.sqlite")
    con.execute("UPDATE images SET path = replace(path, ?, ?)", (str(demo_dir), str(target)))
    con.commit()
    con.close()
    return target


def image_rows(index: Path) -> int:
    con = sqlite3.connect(index / "index.sqlite")
    try:
        return con.execute("SELECT count(*) FROM images").fetchone()[0]
    finally:
        con.close()


def test_demo_rerun_replaces_its_own_index_and_keeps_unrelated_files(demo_dir, tmp_path):
    folder = copy_demo(demo_dir, tmp_path)
    # Searching the demo's index changes the file (query cache) but adds nothing of the user's.
    assert invoke("search", "a yellow star", "--index", str(folder / "index"), "-k", "1").exit_code == 0
    (folder / "index" / "notes.txt").write_text("mine")
    (folder / "images" / "holiday.png").write_bytes((FIXTURES / "broken.png").read_bytes())
    r = invoke("demo", "--dir", str(folder), "--json")
    assert r.exit_code == 0, r.output
    assert (folder / "index" / "notes.txt").read_text() == "mine"
    assert (folder / "images" / "holiday.png").is_file()
    assert image_rows(folder / "index") == 8  # only the drawn images were ingested, afresh
    assert invoke("status", "--index", str(folder / "index"), "--json").exit_code == 0


def ingest_mine(index: Path, tmp_path: Path, embedder) -> None:
    (tmp_path / "mine").mkdir()
    shutil.copy(FIXTURES / "cmyk.jpg", tmp_path / "mine" / "cmyk.jpg")
    lib = Library(index, embedder=embedder)
    lib.ingest([tmp_path / "mine"], workers=0)
    lib.close()


def test_demo_refuses_an_index_with_the_users_images(demo_dir, tmp_path, demo_embedder):
    folder = copy_demo(demo_dir, tmp_path)
    ingest_mine(folder / "index", tmp_path, demo_embedder)
    before = sorted(p.name for p in (folder / "index").iterdir())
    r = invoke("demo", "--dir", str(folder))
    assert r.exit_code == 1
    assert "index.sqlite exists and zsindex demo did not make it" in r.output
    assert sorted(p.name for p in (folder / "index").iterdir()) == before
    assert image_rows(folder / "index") == 9


def test_demo_refuses_an_index_it_did_not_make(tmp_path, demo_embedder):
    folder = tmp_path / "D"
    ingest_mine(folder / "index", tmp_path, demo_embedder)
    (folder / "index" / "notes.txt").write_text("mine")
    r = invoke("demo", "--dir", str(folder))
    assert r.exit_code == 1 and "did not make it" in r.output and "Traceback" not in r.output
    assert image_rows(folder / "index") == 1 and (folder / "index" / "notes.txt").is_file()


@pytest.mark.parametrize("name", ["images/000-red-circle.png", "index/vectors.faiss", "index/write.lock"])
def test_demo_refuses_any_file_of_its_names_it_did_not_make(tmp_path, name):
    folder = tmp_path / "D"
    (folder / name).parent.mkdir(parents=True)
    (folder / name).write_bytes(b"the user's own file")
    r = invoke("demo", "--dir", str(folder))
    assert r.exit_code == 1, r.output
    assert (folder / name).read_bytes() == b"the user's own file"


def test_demo_refuses_a_changed_image_and_a_foreign_marker(demo_dir, tmp_path):
    folder = copy_demo(demo_dir, tmp_path)
    (folder / "images" / "000-red-circle.png").write_bytes(b"edited by the user")
    r = invoke("demo", "--dir", str(folder))
    assert r.exit_code == 1 and "changed since" in r.output
    assert (folder / "images" / "000-red-circle.png").read_bytes() == b"edited by the user"
    other = tmp_path / "other"
    other.mkdir()
    (other / ".zsindex-demo.json").write_text(json.dumps({"files": {"x": "y"}}))
    with pytest.raises(ForeignFileError, match="not a record zsindex wrote"):
        run_demo(other)


@pytest.mark.parametrize("name", ["vectors.faiss", "vectors.json", "vectors.rows", "write.lock"])
def test_new_index_refuses_folder_with_stray_files_of_its_names(tmp_path, demo_embedder, name):
    folder = tmp_path / "idx"
    folder.mkdir()
    (folder / name).write_bytes(b"someone else's")
    with pytest.raises(ForeignFileError, match=f"{name} but no index.sqlite"):
        Library(folder, embedder=demo_embedder)
    assert (folder / name).read_bytes() == b"someone else's"
    assert not (folder / "index.sqlite").exists()


def test_every_file_an_index_writes_is_one_of_its_names(tmp_path, world):
    """The names the refusal above guards are all the names zsindex writes, compressed index included."""
    from zsindex.owned import INDEX_FILE_NAMES

    folder = tmp_path / "idx"
    lib = Library(folder, model="demo")
    lib.ingest([world[0][0].parent], workers=0)
    lib.rebuild("ivfpq")
    lib.search("a red circle")
    written = {p.name for p in folder.iterdir()}
    assert "vectors.rows" in written and written <= set(INDEX_FILE_NAMES)


def test_foreign_sqlite_file_is_left_alone(tmp_path):
    folder = tmp_path / "idx"
    folder.mkdir()
    con = sqlite3.connect(folder / "index.sqlite")
    con.execute("CREATE TABLE notes (body TEXT)")
    con.commit()
    con.close()
    before = (folder / "index.sqlite").read_bytes()
    with pytest.raises(IndexStateError, match="SQLite database that zsindex did not make"):
        Library(folder)
    r = invoke("status", "--index", str(folder))
    assert r.exit_code == 1 and "did not make" in r.output
    assert (folder / "index.sqlite").read_bytes() == before


def test_output_files_are_not_overwritten_without_force(demo_dir, tmp_path):
    index = str(demo_dir / "index")
    out = tmp_path / "tags.csv"
    out.write_text("precious")
    r = invoke("export", "-l", "shapes", "--index", index, "-o", str(out))
    assert r.exit_code == 1 and "--force" in r.output
    assert out.read_text() == "precious"
    r = invoke("export", "-l", "shapes", "--index", index, "-o", str(out), "--force", "--csv")
    assert r.exit_code == 0 and out.read_text().startswith("path,label,score")
    fresh = tmp_path / "new.jsonl"
    assert invoke("export", "-l", "shapes", "--index", index, "-o", str(fresh), "--json").exit_code == 0
    assert len(fresh.read_text().splitlines()) == len(out.read_text().splitlines()) - 1 > 0


def test_eval_confusion_files_are_not_overwritten_without_force(tmp_path, monkeypatch):
    monkeypatch.setenv("ZSINDEX_HOME", str(tmp_path / "home"))
    for cls in ("red circle", "blue square"):
        (tmp_path / "data" / cls.replace(" ", "_")).mkdir(parents=True)
    from zsindex import shapes

    shapes.save_world(tmp_path / "data" / "red_circle", [[shapes.Thing("red", "circle")]], size=64)
    shapes.save_world(tmp_path / "data" / "blue_square", [[shapes.Thing("blue", "square")]], size=64)
    png, csv = tmp_path / "c.png", tmp_path / "c.csv"
    png.write_text("precious")
    r = invoke("eval", str(tmp_path / "data"), "-m", "demo", "--confusion", str(png), "--confusion-csv", str(csv))
    assert r.exit_code == 1 and "--force" in r.output
    assert png.read_text() == "precious" and not csv.exists()
    r = invoke("eval", str(tmp_path / "data"), "-m", "demo", "--confusion", str(png), "--confusion-csv", str(csv),
               "--force")
    assert r.exit_code == 0, r.output
    assert png.read_bytes().startswith(b"\x89PNG") and csv.read_text().startswith("true")
