"""forget: rows under a path (gone or not) leave SQL and FAISS; nothing else does. Vanished search hits are marked."""

from __future__ import annotations

import json
import shutil
import sqlite3

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
    assert json.loads(dry.stdout) == {"forgotten": 2, "indexed": 2, "vectors_removed": 0, "dry_run": True}
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
