"""forget: rows under a path (gone or not) leave SQL and FAISS; nothing else does. Vanished search hits are marked."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from zsindex.cli import cli
from zsindex.library import Library

from .test_ingest import draw


def _rows(lib: Library) -> dict[str, str]:
    con = sqlite3.connect(lib.folder / "index.sqlite")
    out = dict(con.execute("SELECT path, status FROM images").fetchall())
    con.close()
    return out


def test_forget_a_folder_that_is_gone(tmp_path, demo_embedder):
    a, ab = tmp_path / "a", tmp_path / "ab"  # "ab" shares the prefix "a" but is not under it
    draw(a, ["red-circle", "blue-square"])
    draw(ab, ["green-star"])
    shutil.copy(a / "red-circle.png", ab / "same-as-red.png")  # shares a stored vector with a/red-circle.png
    lib = Library(tmp_path / "index", embedder=demo_embedder)
    lib.ingest([a, ab], workers=0)
    lib.tag("red,green", mode="multi", threshold=-1.0)
    shutil.rmtree(a)
    r = CliRunner().invoke(cli, ["ingest", str(a), "--index", str(lib.folder)])
    assert r.exit_code == 2 and "zsindex forget" in r.output  # the error points at the fix
    dry = CliRunner().invoke(cli, ["forget", str(a), "--index", str(lib.folder), "--dry-run", "--json"])
    assert json.loads(dry.stdout) == {"forgotten": 2, "indexed": 2, "vectors_removed": 1, "dry_run": True}
    assert len(_rows(lib)) == 4
    r = CliRunner().invoke(cli, ["forget", str(a), "--index", str(lib.folder), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"forgotten": 2, "indexed": 2, "vectors_removed": 1, "dry_run": False}
    fresh = Library(lib.folder, embedder=demo_embedder)
    assert sorted(_rows(fresh)) == sorted(str(p) for p in ab.iterdir())
    assert fresh.vectors().ntotal == 2 and fresh.status()["faiss_fresh"]
    hits = fresh.search("a red circle", top_k=10)
    assert {h.path for h in hits} == {str(p) for p in ab.iterdir()}
    assert fresh.tag_counts("red,green") == {"red": 2, "green": 2}  # the other folder keeps its tags
    assert fresh.search(like=ab / "same-as-red.png", top_k=1)[0].path == str(ab / "same-as-red.png")
    again = CliRunner().invoke(cli, ["forget", str(a), "--index", str(lib.folder)])
    assert again.exit_code == 0 and "nothing was forgotten" in again.stderr


def test_vanished_hits_are_marked_and_left_out_of_path_lists(tmp_path, demo_embedder):
    draw(tmp_path / "p", ["red-circle", "red-square", "blue-star"])
    lib = Library(tmp_path / "index", embedder=demo_embedder)
    lib.ingest([tmp_path / "p"], workers=0)
    gone = tmp_path / "p" / "red-circle.png"
    gone.unlink()
    hits = lib.search("something red", top_k=3)
    assert {h.path: h.exists for h in hits}[str(gone)] is False
    index = str(lib.folder)
    r = CliRunner().invoke(cli, ["search", "something red", "-k", "3", "--index", index])
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(rows) == 3 and [x["exists"] for x in rows if x["path"] == str(gone)] == [False]
    assert "1 of these files no longer exist" in r.stderr and "zsindex forget" in r.stderr
    r = CliRunner().invoke(cli, ["search", "something red", "-k", "3", "--index", index, "--print0"])
    assert str(gone).encode() not in r.stdout_bytes and r.stdout_bytes.count(b"\0") == 2
    r = CliRunner().invoke(cli, ["forget", "--missing", "--index", index, "--json"])
    assert json.loads(r.stdout)["forgotten"] == 1
    assert len(lib.search("something red", top_k=3)) == 2


def _count(lib: Library, table: str) -> int:
    con = sqlite3.connect(lib.folder / "index.sqlite")
    n = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    con.close()
    return n


def test_a_dry_run_reports_exactly_what_forget_does(tmp_path, demo_embedder):
    """forget --dry-run against forget itself, on images and videos whose stored vectors are shared with
    files that stay, or not: the same report, and the real run removes what it says (the frames of a video
    leave FAISS and SQL too)."""
    from . import mediafiles as mf

    a, b = tmp_path / "a", tmp_path / "b"
    draw(a, ["red-circle", "blue-square"])
    draw(b, ["green-star"])
    shutil.copy(a / "red-circle.png", b / "same-as-red.png")  # shares a/red-circle.png's vector: it stays
    mf.write_video(a / "clip.mp4", [(mf.scene("red", "circle", 64), 1.0), (mf.scene("blue", "square", 64), 1.0)])
    mf.write_video(a / "twin.mp4", [(mf.scene("green", "star", 64), 1.0)])
    shutil.copy(a / "twin.mp4", b / "twin.mp4")  # the same frames: their vectors stay
    lib = Library(tmp_path / "index", embedder=demo_embedder)
    lib.ingest([a, b], workers=0)
    index = str(lib.folder)
    (a / "blue-square.png").unlink()

    def forget(*args: str) -> dict:
        dry = CliRunner().invoke(cli, ["forget", *args, "--index", index, "--dry-run", "--json"])
        assert dry.exit_code == 0, dry.output
        before = {t: _count(lib, t) for t in ("images", "vectors", "frames")}
        real = CliRunner().invoke(cli, ["forget", *args, "--index", index, "--json"])
        assert real.exit_code == 0, real.output
        report = json.loads(real.stdout)
        assert json.loads(dry.stdout) == {**report, "dry_run": True} and report["dry_run"] is False
        assert _count(lib, "images") == before["images"] - report["forgotten"]
        assert _count(lib, "vectors") == before["vectors"] - report["vectors_removed"]
        fresh = Library(lib.folder)
        searchable = fresh.vectors().ntotal
        assert fresh.status()["faiss_fresh"] and searchable == fresh.rebuild()  # no entry left behind in FAISS
        return report

    con = sqlite3.connect(lib.folder / "index.sqlite")
    frames = dict(con.execute("SELECT images.path, count(*) FROM frames JOIN images ON images.id = frames.image_id "
                              "GROUP BY images.path").fetchall())
    con.close()
    clip, twin = frames[str(a / "clip.mp4")], frames[str(b / "twin.mp4")]
    assert clip > 1 and twin > 0
    assert forget(str(a), "--missing") == {"forgotten": 1, "indexed": 1, "vectors_removed": 1, "dry_run": False}
    # a trailing slash names the same folder; red-circle.png and twin.mp4 share their vectors with files in b
    assert forget(str(a) + "/") == {"forgotten": 3, "indexed": 3, "vectors_removed": clip, "dry_run": False}
    assert sorted(Path(p).name for p in _rows(lib)) == ["green-star.png", "same-as-red.png", "twin.mp4"]
    assert forget(str(b)) == {"forgotten": 3, "indexed": 3, "vectors_removed": 2 + twin, "dry_run": False}
    assert _count(lib, "vectors") == _count(lib, "frames") == 0


def test_every_dry_run_is_checked_against_its_real_run():
    """The commands with --dry-run are those whose dry run is compared with the real run in the tests (here and
    test_sidecars.test_a_dry_run_reports_exactly_what_the_run_does): a new one needs such a test too."""
    import click

    def commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
        out = {}
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                out.update(commands(command, f"{prefix}{name} "))
            else:
                out[prefix + name] = command
        return out

    with_dry_run = {name for name, command in commands(cli).items()
                    if any("--dry-run" in getattr(p, "opts", ()) for p in command.params)}
    assert with_dry_run == {"forget", "sidecars write", "sidecars remove"}
