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


@pytest.mark.parametrize("change", [
    ["labels", "edit", "shapes", "--add", "hexagon"],                # a label added: version 2
    ["labels", "edit", "shapes", "--drop", "star", "--add", "star"],  # dropped and back: same names, version 3
    ["labels", "edit", "shapes", "--auto"],                           # tagging new images
    ["labels", "add", "mine", "--labels", "cat,dog"],                 # a set of the user's own
])
def test_demo_refuses_an_index_whose_label_sets_the_user_changed(demo_dir, tmp_path, change):
    """Label sets are the user's work as much as images: a re-run keeps the index when any set is not the
    demo's as it registered it."""
    folder = copy_demo(demo_dir, tmp_path)
    index = str(folder / "index")
    assert invoke(*change, "--index", index).exit_code == 0
    before = invoke("labels", "list", "--index", index, "--json").output
    r = invoke("demo", "--dir", str(folder))
    assert r.exit_code == 1 and "did not make it" in r.output, r.output
    assert invoke("labels", "list", "--index", index, "--json").output == before


def test_demo_refuses_an_index_it_did_not_make(tmp_path, demo_embedder):
    folder = tmp_path / "D"
    ingest_mine(folder / "index", tmp_path, demo_embedder)
    (folder / "index" / "notes.txt").write_text("mine")
    r = invoke("demo", "--dir", str(folder))
    assert r.exit_code == 1 and "did not make it" in r.output and "Traceback" not in r.output
    assert image_rows(folder / "index") == 1 and (folder / "index" / "notes.txt").is_file()


@pytest.mark.parametrize("kind", ["file", "link to a folder"])
def test_demo_refuses_an_index_that_is_not_a_folder_before_drawing_anything(tmp_path, kind):
    folder = tmp_path / "D"
    folder.mkdir()
    if kind == "file":
        (folder / "index").write_bytes(b"the user's own file")
    else:
        (tmp_path / "elsewhere").mkdir()
        (folder / "index").symlink_to(tmp_path / "elsewhere")
    r = invoke("demo", "--dir", str(folder))
    assert r.exit_code == 1 and "is not a folder" in r.output, r.output
    assert sorted(p.name for p in folder.iterdir()) == ["index"]  # no images, no record left behind
    if kind != "file":
        assert not list((tmp_path / "elsewhere").iterdir())  # nothing written through the link


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


def _eval_data(tmp_path: Path) -> Path:
    """Two classes of one drawn image each, for `zsindex eval`."""
    from zsindex import shapes

    for cls in ("red circle", "blue square"):
        (tmp_path / "data" / cls.replace(" ", "_")).mkdir(parents=True)
    shapes.save_world(tmp_path / "data" / "red_circle", [[shapes.Thing("red", "circle")]], size=64)
    shapes.save_world(tmp_path / "data" / "blue_square", [[shapes.Thing("blue", "square")]], size=64)
    return tmp_path / "data"


def test_eval_confusion_files_are_not_overwritten_without_force(tmp_path, monkeypatch):
    monkeypatch.setenv("ZSINDEX_HOME", str(tmp_path / "home"))
    _eval_data(tmp_path)
    png, csv = tmp_path / "c.png", tmp_path / "c.csv"
    png.write_text("precious")
    r = invoke("eval", str(tmp_path / "data"), "-m", "demo", "--confusion", str(png), "--confusion-csv", str(csv))
    assert r.exit_code == 1 and "--force" in r.output
    assert png.read_text() == "precious" and not csv.exists()
    r = invoke("eval", str(tmp_path / "data"), "-m", "demo", "--confusion", str(png), "--confusion-csv", str(csv),
               "--force")
    assert r.exit_code == 0, r.output
    assert png.read_bytes().startswith(b"\x89PNG") and csv.read_text().startswith("true")


def test_eval_checks_the_exact_name_it_writes_before_the_work(tmp_path, monkeypatch):
    """--confusion NAME writes NAME.png: that is the name checked; a name no plot can have is refused up front."""
    home = tmp_path / "home"
    monkeypatch.setenv("ZSINDEX_HOME", str(home))
    data = str(_eval_data(tmp_path))
    precious = (FIXTURES / "broken.png").read_bytes() + b"precious"
    report = tmp_path / "report.png"
    report.write_bytes(precious)
    r = invoke("eval", data, "-m", "demo", "--confusion", str(tmp_path / "report"))
    assert r.exit_code == 1 and "report.png exists" in r.output and "--force" in r.output, r.output
    assert report.read_bytes() == precious and not (tmp_path / "report").exists()
    assert not (home / "eval-cache").exists()  # refused before any image was embedded
    for bad in ("same.out", "report.v2"):  # matplotlib would refuse these only after all the work
        r = invoke("eval", data, "-m", "demo", "--confusion", str(tmp_path / bad))
        assert r.exit_code == 2 and "cannot be written as" in r.output and "--confusion" in r.output, r.output
        assert "Traceback" not in r.output and not (tmp_path / bad).exists()
    for bad in (".png", "rep.", ".SVG"):  # only an extension, or a name ending in a dot: no .png.png, rep..png
        r = invoke("eval", data, "-m", "demo", "--confusion", str(tmp_path / bad))
        assert r.exit_code == 2 and "give the plot a name" in r.output, r.output
    assert not (home / "eval-cache").exists()
    same = str(tmp_path / "both.png")
    r = invoke("eval", data, "-m", "demo", "--confusion", same, "--confusion-csv", same)
    assert r.exit_code == 2 and "same file" in r.output, r.output
    r = invoke("eval", data, "-m", "demo", "--confusion", str(tmp_path / "report"), "--force")
    assert r.exit_code == 0, r.output
    assert report.read_bytes().startswith(b"\x89PNG") and not (tmp_path / "report").exists()
    r = invoke("eval", data, "-m", "demo", "--confusion", str(tmp_path / "plot.svg"))
    assert r.exit_code == 0 and b"<svg" in (tmp_path / "plot.svg").read_bytes()[:2000], r.output
    link, target = tmp_path / "link.png", tmp_path / "target.png"  # a link at the name is a file that exists
    target.write_bytes(precious)
    link.symlink_to(target)
    r = invoke("eval", data, "-m", "demo", "--confusion", str(link))
    assert r.exit_code == 1 and target.read_bytes() == precious


def test_export_refuses_an_existing_file_before_the_work(tmp_path):
    out = tmp_path / "tags.csv"
    out.write_text("precious")
    r = invoke("export", "-l", "shapes", "--index", str(tmp_path / "no-index"), "-o", str(out))
    assert r.exit_code == 1 and "--force" in r.output and "no index" not in r.output, r.output
    assert out.read_text() == "precious"


@pytest.mark.parametrize("args", [["export", "-l", "shapes", "--index", "{index}", "-o", "{out}"],
                                  ["eval", "{data}", "-m", "demo", "--confusion", "{out}.png"],
                                  ["eval", "{data}", "-m", "demo", "--confusion-csv", "{out}"]])
def test_an_output_in_a_folder_that_does_not_exist_is_refused_before_the_work(tmp_path, monkeypatch, args):
    """Named for the user's file and its folder, never for zsindex's temporary file; before any work."""
    home = tmp_path / "home"
    monkeypatch.setenv("ZSINDEX_HOME", str(home))
    data = _eval_data(tmp_path)
    a_file = next(data.rglob("*.png"))
    for out, what in ((tmp_path / "nodir" / "x.csv", f"its folder {tmp_path / 'nodir'} does not exist"),
                      (a_file / "x.csv", f"{a_file} is a file, not a folder")):
        r = invoke(*[a.format(index=tmp_path / "no-index", out=out, data=data) for a in args])
        assert r.exit_code == 2 and f"{out}" in r.output and what in r.output, r.output
        assert "zsindex-tmp" not in r.output and not (home / "eval-cache").exists()


# -- writes never go through a symbolic link zsindex did not make ----------------------------------------
VICTIM = b"another program's file, not zsindex's\n" * 50


def test_a_forced_output_replaces_a_link_not_its_target_and_a_failure_keeps_the_old_file(demo_dir, tmp_path):
    """export -o / eval --confusion(-csv) with --force: the results go to a temporary file that takes the name
    when complete, so a link there is replaced (its target untouched) and a failed write leaves the old file."""
    from zsindex.owned import new_output_file

    index = str(copy_demo(demo_dir, tmp_path) / "index")
    target = _victim(tmp_path, "keep.csv")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    r = invoke("export", "-l", "shapes", "--index", index, "-o", str(link), "--force")
    assert r.exit_code == 0, r.output
    assert target.read_bytes() == VICTIM and not link.is_symlink() and link.read_text().startswith("path,")
    old = link.read_bytes()
    with pytest.raises(RuntimeError):
        with new_output_file(link, force=True) as out:
            out.write("half of it")
            raise RuntimeError("the export failed half-way")
    assert link.read_bytes() == old and sorted(p.name for p in tmp_path.iterdir() if "zsindex-tmp" in p.name) == []
    r = invoke("export", "-l", "shapes", "--index", index, "-o", str(link))  # without --force: refused, kept
    assert r.exit_code == 1 and link.read_bytes() == old


def _victim(tmp_path: Path, name: str) -> Path:
    target = tmp_path / "elsewhere" / name
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(VICTIM)
    return target


def _compressed_index(tmp_path: Path, world, n: int = 12) -> tuple[Path, Path]:
    photos, index = tmp_path / "photos", tmp_path / "idx"
    photos.mkdir()
    for path, _ in world[:n]:
        (photos / path.name).write_bytes(path.read_bytes())
    lib = Library(index, model="demo")
    lib.ingest([photos], workers=0)
    lib.rebuild("ivfpq")
    lib.close()
    assert (index / "vectors.rows").is_file()
    return photos, index


def test_a_row_file_that_is_a_link_is_never_written_through(tmp_path, world):
    """`rebuild` and `ingest` rewrite vectors.rows in place: a link there is replaced, its target untouched."""
    photos, index = _compressed_index(tmp_path, world)
    expected = [(h.path, round(h.score, 4)) for h in Library(index).search("a red circle", k=5)]
    rows = index / "vectors.rows"
    target = _victim(tmp_path, "rows-target")
    rows.unlink()
    rows.symlink_to(target)
    assert [(h.path, round(h.score, 4)) for h in Library(index).search("a red circle", k=5)] == expected
    r = invoke("rebuild", "--index", str(index))
    assert r.exit_code == 0, r.output
    assert target.read_bytes() == VICTIM
    assert rows.is_file() and not rows.is_symlink()  # a regular file of zsindex's own in its place
    rows.unlink()
    rows.symlink_to(target)
    for path, _ in world[12:15]:
        (photos / path.name).write_bytes(path.read_bytes())
    r = invoke("ingest", str(photos), "--index", str(index), "-m", "demo", "--workers", "0")
    assert r.exit_code == 0, r.output
    assert target.read_bytes() == VICTIM and not rows.is_symlink()
    hits = Library(index).search("a red circle", k=15)
    assert len(hits) == 15


@pytest.mark.parametrize("name", ["vectors.faiss.tmp", "vectors.json.tmp", "write.lock"])
def test_index_temp_and_lock_files_are_never_written_through_a_link(tmp_path, world, name):
    photos, index = _compressed_index(tmp_path, world, 4)
    target = _victim(tmp_path, name)
    (index / name).unlink(missing_ok=True)
    (index / name).symlink_to(target)
    r = invoke("rebuild", "--index", str(index))
    assert r.exit_code == 0, r.output
    r = invoke("ingest", str(photos), "--index", str(index), "-m", "demo", "--workers", "0")
    assert r.exit_code == 0, r.output
    assert target.read_bytes() == VICTIM
    assert not (index / name).is_symlink()


def test_the_demo_marker_is_never_written_through_a_link(demo_dir, tmp_path):
    folder = copy_demo(demo_dir, tmp_path)
    target = _victim(tmp_path, "marker")
    (folder / ".zsindex-demo.json.tmp").symlink_to(target)
    run_demo(folder)
    assert target.read_bytes() == VICTIM
    assert json.loads((folder / ".zsindex-demo.json").read_text())["kind"] == "zsindex-demo"


@pytest.mark.parametrize("name", ["index.sqlite", "index.sqlite-wal", "vectors.faiss", "vectors.json", "write.lock",
                                  "tags.csv"])
def test_no_output_file_is_written_into_an_index_folder_even_with_force(demo_dir, tmp_path, monkeypatch, name):
    """export -o and eval --confusion/--confusion-csv refuse any name in an index folder, with --force too, and
    through a link to the folder: `export -o INDEX/index.sqlite --force` replaced the index's database with
    CSV rows, and every later command found no index."""
    monkeypatch.setenv("ZSINDEX_HOME", str(tmp_path / "home"))
    folder = copy_demo(demo_dir, tmp_path)
    index = folder / "index"
    (tmp_path / "link").symlink_to(index, target_is_directory=True)
    before = {p.name: p.read_bytes() for p in index.iterdir() if p.is_file()}
    data = _eval_data(tmp_path)
    for target in (index / name, tmp_path / "link" / name):
        for force in ((), ("--force",)):
            runs = [["export", "-l", "shapes", "--index", str(index), "-o", str(target), *force],
                    ["eval", str(data), "-m", "demo", "--confusion-csv", str(target), *force]]
            for args in runs:
                r = invoke(*args)
                assert r.exit_code == 2 and "is a zsindex index folder" in r.output, (args, r.output)
    assert {p.name: p.read_bytes() for p in index.iterdir() if p.is_file()} == before
    assert invoke("status", "--index", str(index)).exit_code == 0


def test_demo_rerun_through_a_linked_folder_after_tagging(tmp_path):
    """The index names files by their real paths; the demo's re-run compared them with its folder as named (a
    link to it, /tmp for /private/tmp), took its own images for the user's once the index had changed (a tag
    run), and refused to replace its own index."""
    (tmp_path / "real").mkdir()
    (tmp_path / "via").symlink_to(tmp_path / "real", target_is_directory=True)
    folder = tmp_path / "via"
    run_demo(folder)
    assert invoke("tag", "--labels", "shapes", "--mode", "multi", "--index", str(folder / "index")).exit_code == 0
    r = invoke("demo", "--dir", str(folder))
    assert r.exit_code == 0, r.output
    assert image_rows(folder / "index") == 8
