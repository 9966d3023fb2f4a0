"""Ingest into a real SQLite file and a real FAISS index with the shipped model."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from zsindex import shapes
from zsindex.cli import cli
from zsindex.errors import IndexLockedError, ModelMismatchError, UsageError
from zsindex.library import Library
from zsindex.lock import WriteLock
from zsindex.store import Store

from .conftest import FIXTURES


def draw(folder: Path, names: list[str], seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for name in names:
        colour, shape = name.split("-")[:2]
        path = folder / f"{name}.png"
        from PIL import Image

        Image.fromarray(shapes.draw([shapes.Thing(colour, shape)], size=64, rng=rng)).save(path)
        out.append(path)
    return out


def rows(index: Path) -> list[tuple]:
    con = sqlite3.connect(index / "index.sqlite")
    try:
        return con.execute("SELECT id, path, status, sha256 FROM images ORDER BY path").fetchall()
    finally:
        con.close()


def faiss_ids(lib: Library) -> set[int]:
    ids = lib.vectors().ids().tolist()
    assert len(ids) == len(set(ids)), "an id is in FAISS twice"
    return set(ids)


def indexed_ids(index: Path) -> set[int]:
    return {r[0] for r in rows(index) if r[2] == "indexed"}


@pytest.fixture
def lib(tmp_path, demo_embedder):
    library = Library(tmp_path / "index", embedder=demo_embedder)
    yield library
    library.close()


def ingest(lib: Library, *paths: Path, **kw):
    kw.setdefault("workers", 0)
    return lib.ingest(list(paths), **kw)


def test_add_then_unchanged(lib, tmp_path):
    draw(tmp_path / "p", ["red-circle", "blue-square", "green-star"])
    r = ingest(lib, tmp_path / "p")
    assert (r.added, r.unchanged, r.skipped) == (3, 0, 0)
    assert set(r.to_dict()) == {"added", "unchanged", "changed", "moved", "deleted", "skipped", "skipped_sidecars",
                                "tags_dropped", "ignored", "run_id", "seconds"}
    again = ingest(lib, tmp_path / "p")
    assert (again.added, again.unchanged, again.changed) == (0, 3, 0)
    assert again.embed_seconds == 0 and again.decode_seconds == 0  # nothing read again
    assert faiss_ids(lib) == indexed_ids(lib.folder)


def test_modify_reembeds(lib, tmp_path):
    [path] = draw(tmp_path / "p", ["red-circle"])
    ingest(lib, tmp_path / "p")
    before = rows(lib.folder)
    draw(tmp_path / "p", ["red-circle"], seed=5)  # new pixels, same name
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    r = ingest(lib, tmp_path / "p")
    assert (r.changed, r.added) == (1, 0)
    after = rows(lib.folder)
    assert after[0][0] == before[0][0] and after[0][3] != before[0][3]  # same id, new content hash


def test_move_keeps_id_and_vector(lib, tmp_path):
    [path] = draw(tmp_path / "p", ["red-circle"])
    ingest(lib, tmp_path / "p")
    [(image_id, _, _, sha)] = rows(lib.folder)
    (tmp_path / "p" / "sub dir [2]").mkdir()
    new = tmp_path / "p" / "sub dir [2]" / "renamed (copy).png"
    path.rename(new)
    r = ingest(lib, tmp_path / "p")
    assert (r.moved, r.added, r.deleted) == (1, 0, 0)
    assert r.embed_seconds == 0
    assert rows(lib.folder) == [(image_id, str(new), "indexed", sha)]
    assert faiss_ids(lib) == {image_id}


def test_duplicates_share_one_vector(lib, tmp_path):
    [path] = draw(tmp_path / "p", ["red-circle"])
    shutil.copy(path, tmp_path / "p" / "copy.png")
    r = ingest(lib, tmp_path / "p")
    assert r.added == 2
    con = sqlite3.connect(lib.folder / "index.sqlite")
    assert con.execute("SELECT COUNT(*) FROM vectors").fetchone() == (1,)
    assert len(faiss_ids(lib)) == 2


def test_delete_leaves_vector_index(lib, tmp_path):
    paths = draw(tmp_path / "p", ["red-circle", "blue-square"])
    ingest(lib, tmp_path / "p")
    paths[1].unlink()
    r = ingest(lib, tmp_path / "p")
    assert r.deleted == 1
    assert [row[2] for row in rows(lib.folder)] == ["deleted", "indexed"]
    assert faiss_ids(lib) == indexed_ids(lib.folder)
    # It comes back: indexed again under its old row.
    draw(tmp_path / "p", ["blue-square"])
    r = ingest(lib, tmp_path / "p")
    assert r.added == 1 and [row[2] for row in rows(lib.folder)] == ["indexed", "indexed"]


def test_files_outside_scanned_root_are_kept(lib, tmp_path):
    draw(tmp_path / "a", ["red-circle"])
    draw(tmp_path / "b", ["blue-square"])
    ingest(lib, tmp_path / "a", tmp_path / "b")
    r = ingest(lib, tmp_path / "a")
    assert r.deleted == 0 and len(indexed_ids(lib.folder)) == 2


def test_bad_files_recorded_and_run_continues(lib, tmp_path):
    folder = tmp_path / "p"
    draw(folder, ["red-circle"])
    for name in ("truncated.jpg", "broken.png", "bomb.gif", "hopper.heif", "hopper.avif", "orientation_6.jpg"):
        shutil.copy(FIXTURES / name, folder / name)
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "notes.txt").write_text("ignored: not an image name")
    odd = os.fsdecode(b"caf\xe9 latin1.png")  # not valid UTF-8
    shutil.copy(folder / "red-circle.png", folder / odd)
    r = ingest(lib, folder)
    reasons = dict(r.skipped_files)
    assert r.skipped == 4 and r.added == 5
    assert "truncated" in reasons[str(folder / "truncated.jpg")]
    assert "decompression bomb" in reasons[str(folder / "bomb.gif")]
    assert "empty" in reasons[str(folder / "zero.jpg")]
    assert sorted(p for p, _ in lib.errors()) == sorted(reasons)
    from sqlalchemy import select

    from zsindex.schema import Image as ImageRow

    with lib.store.session() as session:
        paths = list(session.scalars(select(ImageRow.path)))
    assert str(folder / odd) in paths  # the exact non-UTF-8 name round-trips through SQLite
    assert Path(str(folder / odd)).read_bytes()  # and still opens the file
    assert ingest(lib, folder).unchanged == 9


def test_unreadable_file_and_folder(demo_embedder):
    """Permissions really deny reading (run as an unprivileged user when the tests run as root)."""
    tmp_path = Path(tempfile.mkdtemp(prefix="zsindex-perm-"))  # outside pytest's private (0700) tmp root
    folder = tmp_path / "p"
    draw(folder, ["red-circle", "blue-square"])
    (folder / "locked").mkdir()
    draw(folder / "locked", ["green-star"])
    os.chmod(folder / "blue-square.png", 0)
    os.chmod(folder / "locked", 0)
    index = tmp_path / "index"
    cmd = [sys.executable, "-m", "zsindex", "ingest", str(folder), "--index", str(index), "-m", "demo", "--json",
           "--workers", "0"]
    if os.geteuid() == 0:
        os.chmod(tmp_path, 0o777)
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    env = {**os.environ, "HOME": str(tmp_path)}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    os.chmod(folder / "locked", 0o755)
    shutil.rmtree(tmp_path, ignore_errors=True)
    assert out.returncode == 3, out.stderr  # done, with skipped files
    report = json.loads(out.stdout)
    assert report["added"] == 1 and report["skipped"] == 2
    assert "Permission denied" in out.stderr


def test_nonexistent_path_is_usage_error(lib, tmp_path):
    with pytest.raises(UsageError):
        lib.ingest([tmp_path / "missing"])
    r = CliRunner().invoke(cli, ["ingest", str(tmp_path / "missing"), "--index", str(tmp_path / "i")])
    assert r.exit_code == 2 and "no such file or folder" in r.output


def test_symlinks_skipped_by_default_and_loops_end(lib, tmp_path):
    folder = tmp_path / "p"
    draw(folder / "real", ["red-circle"])
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    (folder / "link.png").symlink_to(folder / "real" / "red-circle.png")
    assert ingest(lib, folder).added == 1
    r = ingest(lib, folder, follow_symlinks=True)
    assert r.added == 0 and r.unchanged == 1  # link.png is red-circle.png by another name; the loop is entered once
    assert [p for _, p, _, _ in rows(lib.folder)] == [str(folder / "real" / "red-circle.png")]


def _paths(lib: Library) -> list[str]:
    return [p for _, p, status, _ in rows(lib.folder) if status == "indexed"]


def test_a_file_reached_under_another_name_is_indexed_once(lib, tmp_path):
    """One file, many names: a link to the photo folder, a link on the way to it, a subfolder or a file through
    a linked parent, two names in one run, a link inside followed with follow_symlinks (in either order). The
    index names every file by its real path, so each is indexed once, found unchanged under any name, and
    returned once by search; re-pointing a link deletes nothing that still exists; forgetting works by either
    name, also once the link's target is gone."""
    photos = tmp_path / "library" / "photos"
    draw(photos / "sub", ["red-circle", "blue-square"])
    draw(photos, ["green-star"])
    (tmp_path / "link").symlink_to(photos, target_is_directory=True)
    (tmp_path / "up").symlink_to(tmp_path / "library", target_is_directory=True)
    real = sorted(str(p) for p in photos.rglob("*.png"))
    shutil.copy(FIXTURES / "sidecars" / "lightroom.xmp", photos / "sub" / "red-circle.png.xmp")  # the user's
    first = ingest(lib, tmp_path / "link")
    assert first.added == 3 and _paths(lib) == real  # real paths, whatever name was given
    circle = str(photos / "sub" / "red-circle.png")
    assert lib.keywords().get(circle), lib.keywords()  # its sidecar's keywords were read, through the link too
    assert lib.keywords([tmp_path / "link" / "sub" / "red-circle.png"]) == {circle: lib.keywords()[circle]}
    assert any("under another name" in w and str(photos) in w for w in first.warnings), first.warnings
    lib.tag("red,blue,green", mode="multi", threshold=-1.0)
    for names in ([photos], [tmp_path / "up" / "photos" / "sub"], [tmp_path / "link" / "sub" / "red-circle.png"],
                  [photos, tmp_path / "link"], [tmp_path / "link" / "sub", photos]):
        again = ingest(lib, *names)
        assert (again.added, again.deleted, again.skipped) == (0, 0, 0), (names, again)
        assert not any("no image files" in w for w in again.warnings), (names, again.warnings)
        assert _paths(lib) == real
    assert len(lib.tag_rows("red,blue,green")) == 9  # every image kept its tags
    hits = [h.path for h in lib.search("a red circle", k=10)]
    assert sorted(hits) == real
    for glob in (f"{tmp_path}/link/sub/*", f"{tmp_path}/up/photos/sub", f"{tmp_path}/link/sub/red-circle.png"):
        found = sorted(h.path for h in lib.search("a red circle", k=10, path=glob))  # --path by either name
        assert found == [p for p in real if "/sub/" in p and (glob.endswith("sub") or glob.endswith("*")
                                                                or p.endswith("red-circle.png"))], glob
    inside = tmp_path / "more"  # a link inside, followed: the file it leads to is the one indexed
    draw(inside, ["yellow-triangle"])
    (inside / "same.png").symlink_to(photos / "sub" / "blue-square.png")
    (inside / "lnk").symlink_to(photos / "sub", target_is_directory=True)
    followed = ingest(lib, inside, follow_symlinks=True)
    assert (followed.added, followed.unchanged) == (1, 2) and len(_paths(lib)) == 4
    # A link re-pointed elsewhere: what its old target holds is still indexed, under its real names
    other = tmp_path / "other"
    draw(other, ["purple-circle"])
    (tmp_path / "link").unlink()
    (tmp_path / "link").symlink_to(other, target_is_directory=True)
    moved = ingest(lib, tmp_path / "link")
    assert (moved.added, moved.deleted) == (1, 0) and set(real) <= set(_paths(lib))
    # forget through a link, and through a link whose target is gone
    assert lib.forget([tmp_path / "up" / "photos" / "sub" / "red-circle.png"]).images == 1
    shutil.rmtree(other)
    assert lib.forget([tmp_path / "link"]).images == 1
    assert str(other / "purple-circle.png") not in _paths(lib) and len(_paths(lib)) == 3


def _as_an_older_index_named_them(lib: Library, real: Path, link: Path) -> dict[str, int]:
    """Rename rows, sidecar records and the run's root from real to link, as an index from before real-path
    names left them after `ingest LINK`; returns the rows' ids by the names they then had."""
    con = sqlite3.connect(lib.folder / "index.sqlite")
    with con:
        con.execute("UPDATE images SET path = replace(path, ?, ?)", (str(real), str(link)))
        con.execute("UPDATE sidecars SET path = replace(path, ?, ?), image_path = replace(image_path, ?, ?)",
                    (str(real), str(link), str(real), str(link)))
        con.execute("UPDATE ingest_runs SET roots = ?", (json.dumps([str(link)]),))
    con.close()
    return {os.path.basename(p): i for i, p, _, _ in rows(lib.folder)}


@pytest.mark.parametrize("link_name", ["a-link", "z-link"])  # sorted before and after the real folder
def test_rows_named_through_a_link_by_an_older_index_move_to_their_real_names(lib, tmp_path, link_name):
    """An index from before names were real paths holds rows (and sidecar records) named through a link.
    Ingesting the folder again, by any name, finds each file at its real path as that row moved: its own id
    (two files of equal content each keep theirs), tags kept, no duplicate; the sidecars zsindex wrote stay
    zsindex's, and the next sidecars write changes nothing (it deleted them: the records had kept the link's
    names, and the files under those names were the same sidecars)."""
    photos = tmp_path / "photos"
    draw(photos, ["red-circle", "blue-square"])
    shutil.copy(photos / "red-circle.png", photos / "same-circle.png")  # equal content, its own row
    link = tmp_path / link_name
    link.symlink_to(photos, target_is_directory=True)
    ingest(lib, photos)
    lib.tag("red,blue", mode="multi", threshold=-1.0)
    assert lib.sidecars_write("red,blue").created == 3
    ids = _as_an_older_index_named_them(lib, photos, link)
    report = ingest(lib, link)
    assert (report.moved, report.added, report.deleted) == (3, 0, 0), report
    assert {os.path.basename(p): i for i, p, _, _ in rows(lib.folder)} == ids  # each file its own row
    assert sorted(p for _, p, _, _ in rows(lib.folder)) == sorted(str(p) for p in photos.glob("*.png"))
    assert len(lib.tag_rows("red,blue")) == 6
    again = lib.sidecars_write("red,blue")
    assert (again.deleted, again.created, again.unchanged) == (0, 0, 3), again
    assert len(list(photos.glob("*.png.xmp"))) == 3
    assert lib.sidecars_remove().deleted == 3 and not list(photos.glob("*.xmp"))


def test_rows_named_through_a_link_since_removed_move_when_their_files_are_found(lib, tmp_path):
    """The link an older index named files through is gone: nothing leads from those names to the files any
    more. Ingesting the real folder finds each file's content in a row whose file no longer exists, and takes
    that row (id and tags), rather than adding a second one beside a dead name."""
    photos = tmp_path / "photos"
    draw(photos, ["red-circle", "blue-square"])
    link = tmp_path / "link"
    link.symlink_to(photos, target_is_directory=True)
    ingest(lib, photos)
    lib.tag("red,blue", mode="multi", threshold=-1.0)
    ids = _as_an_older_index_named_them(lib, photos, link)
    link.unlink()
    report = ingest(lib, photos)
    assert (report.moved, report.added) == (2, 0), report
    assert {os.path.basename(p): i for i, p, _, _ in rows(lib.folder)} == ids
    assert [h.exists for h in lib.search("a red circle", k=10)] == [True, True]
    assert len(lib.tag_rows("red,blue")) == 4


def test_exclude_globs(lib, tmp_path):
    draw(tmp_path / "p" / ".thumbnails", ["red-circle"])
    draw(tmp_path / "p", ["blue-square", "green-star"])
    r = ingest(lib, tmp_path / "p", exclude=[".thumbnails", "green-*"])
    assert r.added == 1


def test_worker_processes(lib, tmp_path):
    draw(tmp_path / "p", [f"{c}-{s}" for c, s in shapes.seen_pairs()[:10]])
    r = ingest(lib, tmp_path / "p", workers=2, batch_size=3)
    assert r.added == 10
    assert faiss_ids(lib) == indexed_ids(lib.folder)


def test_other_model_refused(lib, tmp_path):
    draw(tmp_path / "p", ["red-circle"])
    ingest(lib, tmp_path / "p")

    class Other:
        identity, dim, logit_scale, image_size = "sha256:other", 8, 1.0, 224

    with pytest.raises(ModelMismatchError, match="folder=DIR"):
        Library(lib.folder, embedder=Other()).ingest([tmp_path / "p"], workers=0)


def test_changed_weights_of_the_same_model_named_in_the_error(tmp_path):
    store = Store(tmp_path)
    store.bind_model("sha256:aaaa", "demo", None, 64)
    assert store.bind_model("sha256:aaaa", "demo", None, 64).identity == "sha256:aaaa"
    with pytest.raises(ModelMismatchError, match="weights of model demo changed since this index was built"):
        store.bind_model("sha256:bbbb", "demo", None, 64)


def test_concurrent_ingest_refused(lib, tmp_path):
    draw(tmp_path / "p", ["red-circle"])
    Library(lib.folder, embedder=lib.embedder, create=True).close()  # the index exists; another process writes
    with WriteLock(lib.folder):
        with pytest.raises(IndexLockedError, match="wait for it"):
            ingest(lib, tmp_path / "p")
        r = CliRunner().invoke(cli, ["ingest", str(tmp_path / "p"), "--index", str(lib.folder), "-m", "demo"])
        assert r.exit_code == 1 and "is writing to" in r.output


def test_faiss_file_deleted_or_stale_is_rebuilt(lib, tmp_path):
    draw(tmp_path / "p", ["red-circle", "blue-square"])
    ingest(lib, tmp_path / "p")
    (lib.folder / "vectors.faiss").unlink()
    fresh = Library(lib.folder, embedder=lib.embedder)
    assert faiss_ids(fresh) == indexed_ids(lib.folder)
    assert (lib.folder / "vectors.faiss").is_file()  # a reader that rebuilt it kept it for the next process
    assert fresh.rebuild() == 2
    assert fresh.status()["faiss_fresh"]


def test_status_errors_rebuild_cli(tmp_path):
    draw(tmp_path / "p", ["red-circle"])
    shutil.copy(FIXTURES / "broken.png", tmp_path / "p" / "broken.png")
    index = str(tmp_path / "i")
    r = CliRunner().invoke(cli, ["ingest", str(tmp_path / "p"), "--index", index, "-m", "demo", "--json", "-q"])
    assert r.exit_code == 3, r.output  # done, one file skipped
    assert json.loads(r.stdout)["added"] == 1
    st = json.loads(CliRunner().invoke(cli, ["status", "--index", index, "--json"]).stdout)
    assert st["images"] == {"indexed": 1, "error": 1} and st["model"]["name"] == "demo"
    assert st["last_run"]["status"] == "finished"
    err = CliRunner().invoke(cli, ["errors", "--index", index, "--csv"]).stdout.splitlines()
    assert err[0] == "path,error" and "broken.png" in err[1]
    assert json.loads(CliRunner().invoke(cli, ["rebuild", "--index", index]).stdout)["vectors"] == 1
    missing = CliRunner().invoke(cli, ["status", "--index", str(tmp_path / "none")])
    assert missing.exit_code == 1 and "zsindex ingest" in missing.output


def test_oddfiles_all_ingested_or_recorded(lib, shared_data):
    odd = shared_data / "oddfiles"
    r = ingest(lib, odd, workers=1, max_megapixels=200)
    candidates = [p for p in odd.rglob("*") if p.is_file() and p.suffix.lower() != ".csv"]
    assert r.added + r.skipped == len(candidates)
    status = lib.status()["images"]
    assert status["indexed"] + status["error"] == len(candidates)
    assert all(reason for _, reason in lib.errors())
    assert faiss_ids(lib) == indexed_ids(lib.folder)


KILL_SCRIPT = """
import sys
from zsindex.library import Library
lib = Library(sys.argv[1], model="demo", device="cpu")
def progress(stage, done, total):
    if done:
        print("committed", done, flush=True)
lib.ingest([sys.argv[2]], workers=0, batch_size=4, progress=progress)
print("finished", flush=True)
"""


def test_sigkill_mid_run_then_resume(tmp_path):
    folder = tmp_path / "p"
    names = [f"{c}-{s}-{i}" for i in range(3) for c, s in shapes.seen_pairs()]
    draw(folder, names)
    index = tmp_path / "index"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(index), str(folder)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("committed") and int(line.split()[1]) >= 12:
            # Mid-run: a reader sees committed rows and the database is usable.
            reader = Library(index, create=False)
            assert reader.status()["images"].get("indexed", 0) >= 12
            reader.close()
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    partial = indexed_ids(index)
    assert 12 <= len(partial) < len(names)

    lib = Library(index, model="demo", device="cpu")
    report = lib.ingest([folder], workers=0)
    assert report.added == len(names) - len(partial) and report.unchanged == len(partial)
    all_rows = rows(index)
    assert len(all_rows) == len({r[1] for r in all_rows}) == len(names)  # no duplicate rows
    con = sqlite3.connect(index / "index.sqlite")
    n_vectors = con.execute("SELECT COUNT(DISTINCT sha256) FROM vectors").fetchone()[0]
    assert n_vectors == len({r[3] for r in all_rows})  # no lost vectors
    assert faiss_ids(lib) == indexed_ids(index)
    statuses = [s for (s,) in con.execute("SELECT status FROM ingest_runs ORDER BY id")]
    assert statuses == ["interrupted", "finished"]


def test_a_file_refused_for_its_size_is_read_again_when_the_limit_allows_it(lib, tmp_path):
    """The guard's message points at --max-megapixels (max_megapixels=), but a rerun with a higher limit found the
    file unchanged and left it skipped. A file refused for its size (an image, a RAW, a video's frames) is read
    again by a run whose limit allows it; a run with the same limit leaves it as it was, without a new report."""
    from PIL import Image

    from .mediafiles import scene, write_dng, write_video

    folder = tmp_path / "big"
    folder.mkdir()
    Image.fromarray(scene("red", "circle", size=512)).save(folder / "photo.png")  # 0.26 MP
    write_dng(folder / "raw.dng", scene("blue", "square", size=512))
    write_video(folder / "clip.mp4", [(scene("green", "star", size=512), 1.0)])
    first = ingest(lib, folder, max_megapixels=0.1)
    assert (first.added, first.skipped) == (0, 3), first.skipped_files
    assert all("over the 0.1 MP limit" in why for _, why in first.skipped_files)
    same = ingest(lib, folder, max_megapixels=0.1)
    assert (same.unchanged, same.skipped, same.changed) == (3, 0, 0)  # still too large: left, not reported again
    allowed = ingest(lib, folder, max_megapixels=1)
    assert (allowed.skipped, allowed.changed + allowed.added) == (0, 3), allowed.skipped_files
    assert {status for _, _, status, _ in rows(lib.folder)} == {"indexed"}
    assert len(lib.search("a red circle", k=5)) == 3


def test_a_link_to_nothing_is_a_skipped_file_when_links_are_followed(lib, tmp_path):
    """With follow_symlinks (and in eval's datasets, which follow them), a link whose target is gone was left
    out without a word; it is a skipped file with its reason, as an unreadable file is."""
    folder = tmp_path / "p"
    draw(folder, ["red-circle"])
    (folder / "gone.png").symlink_to(tmp_path / "nowhere.png")
    assert ingest(lib, folder).skipped == 0  # links not followed: not looked at
    r = ingest(lib, folder, follow_symlinks=True)
    assert r.skipped == 1 and r.skipped_files == [(str(folder / "gone.png"),
                                                   f"a symbolic link to nothing ({tmp_path / 'nowhere.png'})")]
