"""Faults of the index folder end in a message naming the file, never a traceback (issue 10, item 2).

The class: a read-only folder (reading commands work, writing ones say why
not), a damaged or foreign index.sqlite, a missing or damaged FAISS cache,
a database locked by another process, a full disk, an index path that is a file.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from zsindex import shapes
from zsindex import store as store_mod
from zsindex.cli import cli
from zsindex.errors import IndexCorruptError, IndexLockedError, IndexStateError
from zsindex.library import Library

from .conftest import REPO

READERS = {
    "status": ["status", "--json"],
    "search-cached": ["search", "a red circle", "-k", "2"],
    "search-new": ["search", "a green thing", "-k", "2"],
    "errors": ["errors"],
    "tags": ["tags"],
    "export": ["export", "-l", "colours"],
    "labels": ["labels", "list"],
    "forget-dry-run": ["forget", "--missing", "--dry-run"],
    "sidecars-dry-run": ["sidecars", "write", "-l", "colours", "--dry-run"],
}
WRITERS = {
    "ingest": ["ingest", "{images}", "-q"],
    "rebuild": ["rebuild"],
    "tag": ["tag", "-l", "colours", "--mode", "multi"],
    "labels-add": ["labels", "add", "more", "-l", "a,b"],
    "untag": ["untag", "-l", "colours"],
    "forget": ["forget", "--missing"],
}


def draw(folder: Path, things: list[tuple[str, str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, (colour, shape) in enumerate(things):
        Image.fromarray(shapes.draw([shapes.Thing(colour, shape)], size=64, rng=rng)).save(
            folder / f"{i}-{colour}-{shape}.png")


@pytest.fixture(scope="module")
def built(tmp_path_factory, demo_embedder) -> tuple[Path, Path]:
    """A small index with vectors, a cached query and tags; tests copy it."""
    base = tmp_path_factory.mktemp("faults")
    draw(base / "images", [("red", "circle"), ("blue", "square"), ("green", "star")])
    lib = Library(base / "index", embedder=demo_embedder)
    lib.ingest([base / "images"], workers=0)
    lib.search("a red circle")
    lib.labels_add("colours", "red,green,blue")
    lib.tag("colours", mode="multi", threshold=0.2)
    lib.close()
    return base / "index", base / "images"


def copy_index(built: tuple[Path, Path], tmp_path: Path) -> Path:
    target = tmp_path / "index"
    shutil.copytree(built[0], target)
    return target


def run_cli(args: list[str], index: Path, images: Path) -> tuple[int, str]:
    r = CliRunner().invoke(cli, [a.format(images=images) for a in args] + ["--index", str(index)])
    assert not (r.exception and not isinstance(r.exception, SystemExit)), r.output  # no traceback
    return r.exit_code, r.output


# -- read-only folder -------------------------------------------------------------------------------
RESTRICTED_SCRIPT = textwrap.dedent("""
    import json, sys
    from click.testing import CliRunner
    from zsindex.cli import cli
    commands, index, images = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
    out = {}
    for name, args in commands.items():
        r = CliRunner().invoke(cli, [a.format(images=images) for a in args] + ["--index", index, "-m", "demo"]
                               if args[0] in ("ingest", "search") else
                               [a.format(images=images) for a in args] + ["--index", index])
        crash = r.exception is not None and not isinstance(r.exception, SystemExit)
        out[name] = [r.exit_code, r.output[-20000:], repr(r.exception) if crash else None]
    print(json.dumps(out))
""")


def as_unprivileged(cmd: list[str], probe: Path) -> list[str]:
    """cmd run so that file permissions bind it: as it is for a normal user; for root, without the
    capabilities that let root write anywhere (skips when they cannot be dropped here)."""
    if os.geteuid() != 0:
        return cmd
    if not shutil.which("setpriv"):
        pytest.skip("running as root and setpriv is missing: cannot make a folder read-only for this process")
    prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--"]
    check = subprocess.run(prefix + [sys.executable, "-c", f"open({str(probe)!r}, 'a')"], capture_output=True)
    if check.returncode == 0:
        pytest.skip("running as root and root's override of file permissions cannot be dropped here")
    return prefix + cmd


def test_read_only_index_serves_readers_and_refuses_writers_with_a_message(built, tmp_path):
    index = copy_index(built, tmp_path)
    before = sorted(p.name for p in index.iterdir())
    out = run_restricted(RESTRICTED_SCRIPT, index, json.dumps({**READERS, **WRITERS}), str(index), str(built[1]))
    for name in READERS:
        code, output, crash = out[name]
        assert crash is None and code == 0, (name, output)
    assert json.loads(out["status"][1])["images"] == {"indexed": 3}
    assert "red-circle" in out["search-cached"][1].splitlines()[0]
    assert "red-circle" in out["tags"][1] or "red" in out["tags"][1]
    for name in WRITERS:
        code, output, crash = out[name]
        assert crash is None and code == 1, (name, output)
        assert "read-only" in output and str(index) in output and "chmod" in output, (name, output)
    assert sorted(p.name for p in index.iterdir()) == before  # nothing was created there


SERVICE_SCRIPT = textwrap.dedent("""
    import json, sys
    from fastapi.testclient import TestClient
    from zsindex.service import create_app
    with TestClient(create_app(sys.argv[1]), base_url="http://127.0.0.1") as client:
        status = client.get("/api/status").json()
        ids = [r["id"] for r in client.get("/api/search", params={"q": "a red circle", "k": 3}).json()["results"]]
        thumbs = [client.get(f"/api/images/{i}/thumbnail", params={"size": 128}) for i in ids]
        tag = client.post("/api/labels/colours/tag", json={"mode": "multi"})
    print(json.dumps({"read_only": status["read_only"], "thumbs": [[r.status_code, r.headers.get("content-type"),
                      r.content[:2].hex()] for r in thumbs], "tag": [tag.status_code, tag.text]}))
""")


def run_restricted(script: str, index: Path, *args: str) -> dict:
    """A script (given args) run with the index folder made read-only, as a process that file permissions
    bind; the last line it prints, as JSON."""
    subprocess.run(["chmod", "-R", "a-w", str(index)], check=True)
    try:
        cmd = as_unprivileged([sys.executable, "-c", script, *args], index / "index.sqlite")
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                              timeout=300)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.splitlines()[-1])
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(index)], check=True)


def test_read_only_index_served_thumbnails_and_says_read_only(built, tmp_path):
    """A server on an index folder it may not write: thumbnails still come (not cached), status says
    read_only (the page hides what changes the index), a change is refused with the folder's message."""
    index = copy_index(built, tmp_path)
    shutil.rmtree(index / "thumbnails", ignore_errors=True)
    before = sorted(p.name for p in index.iterdir())
    out = run_restricted(SERVICE_SCRIPT, index, str(index))
    assert out["read_only"] is True
    assert len(out["thumbs"]) == 3 and all(t == [200, "image/jpeg", "ffd8"] for t in out["thumbs"]), out
    assert out["tag"][0] in (403, 409) and "read-only" in out["tag"][1], out
    assert sorted(p.name for p in index.iterdir()) == before


WAL_SCRIPT = textwrap.dedent("""
    import os, sqlite3, sys
    con = sqlite3.connect(sys.argv[1])
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("UPDATE label_sets SET name = 'colours2' WHERE name = 'colours'")
    con.commit()
    os._exit(0)  # killed: the change is only in the -wal file
""")


def test_read_only_index_with_changes_only_in_its_wal_says_what_to_do(built, tmp_path):
    """A writer killed before its checkpoint leaves index.sqlite-wal; without -shm and with a read-only folder
    SQLite cannot read it: the message says why and what to do, and once done nothing is lost."""
    index = copy_index(built, tmp_path)
    subprocess.run([sys.executable, "-c", WAL_SCRIPT, str(index / "index.sqlite")], check=True, timeout=60)
    assert (index / "index.sqlite-wal").stat().st_size > 0
    (index / "index.sqlite-shm").unlink()
    out = run_restricted(RESTRICTED_SCRIPT, index, json.dumps({"status": ["status"]}), str(index), str(built[1]))
    code, output, crash = out["status"]
    assert crash is None and code == 1, output
    assert "index.sqlite-wal" in output and "zsindex status" in output and str(index) in output, output
    code, output = run_cli(["labels", "list", "--csv"], index, built[1])  # with the right to write: read, kept
    assert code == 0 and "colours2" in output, output
    # an empty -wal (nothing waiting) is no obstacle: read as it is
    (index / "index.sqlite-shm").unlink(missing_ok=True)
    (index / "index.sqlite-wal").write_bytes(b"")
    out = run_restricted(RESTRICTED_SCRIPT, index, json.dumps({"status": ["status", "--json"]}), str(index),
                         str(built[1]))
    assert out["status"][0] == 0 and json.loads(out["status"][1])["images"] == {"indexed": 3}, out


def test_new_index_in_a_read_only_folder_says_so(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        cmd = as_unprivileged([sys.executable, "-c", RESTRICTED_SCRIPT,
                               json.dumps({"ingest": WRITERS["ingest"], "status": READERS["status"]}),
                               str(folder), str(tmp_path)], folder / "x")
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                              timeout=300)
        out = json.loads(done.stdout.splitlines()[-1])
    finally:
        folder.chmod(0o755)
    assert out["ingest"][0] == 1 and "read-only" in out["ingest"][1] and out["ingest"][2] is None
    assert out["status"][0] == 1 and "no index at" in out["status"][1]


UNREADABLE_SCRIPT = textwrap.dedent("""
    import json, sys
    from click.testing import CliRunner
    import zsindex
    from zsindex.cli import cli
    runs, out = json.loads(sys.argv[1]), {}
    for args in runs:
        r = CliRunner().invoke(cli, args)
        crash = r.exception is not None and not isinstance(r.exception, SystemExit)
        out[" ".join(args)] = [r.exit_code, r.output[-5000:], repr(r.exception) if crash else None]
    for name, folder in (("api", sys.argv[2]), ("api-below", sys.argv[3])):
        try:
            zsindex.open(folder).status()
            out[name] = None
        except zsindex.ZsindexError as e:
            out[name] = [type(e).__name__, str(e)]
    print(json.dumps(out))
""")


def test_an_unreadable_index_folder_is_a_fault_of_the_folder_for_every_command(built, tmp_path):
    """chmod 000 on the index folder (or on a folder above it): every command taking --index, and the API, say
    which folder cannot be read and what to do, with exit 1 (never Click's 'Directory is not readable', exit 2)."""
    from tests.test_cli_rules import leaf_commands, runs

    index = copy_index(built, tmp_path)
    outer = tmp_path / "outer"
    shutil.copytree(built[0], outer / "inner" / "index")
    t = {"base": tmp_path, "photos": built[1], "index": str(index), "image": str(built[1] / "0-red-circle.png")}
    invocations = [a for a in runs(t, 0) if "--index" in a]
    invocations += [["eval", "--keywords", "colours", "--index", str(index)],
                    ["serve", "--index", str(index), "--port", "1"],
                    ["status", "--index", str(outer / "inner" / "index")]]
    takes_index = {name for name, c in leaf_commands().items() if any(p.name == "index_dir" for p in c.params)}
    tried = {" ".join(a[:2]) if a[0] in ("labels", "sidecars") else a[0] for a in invocations}
    assert takes_index <= tried, takes_index - tried
    index.chmod(0o000)
    outer.chmod(0o000)
    try:
        cmd = as_unprivileged([sys.executable, "-c", UNREADABLE_SCRIPT, json.dumps(invocations), str(index),
                               str(outer / "inner" / "index")], index / "index.sqlite")
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                              timeout=300)
    finally:
        index.chmod(0o755)
        outer.chmod(0o755)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    for args in invocations:
        code, output, crash = out[" ".join(args)]
        assert crash is None and code == 1, (args, output, crash)
        assert "not readable" not in output and "cannot read the index folder" in output, (args, output)
        blocker = str(outer) if str(outer) in " ".join(args) else str(index)
        assert f"chmod u+rx {blocker}" in output, (args, output)
    for name in ("api", "api-below"):
        assert out[name][0] == "IndexStateError" and "cannot read the index folder" in out[name][1], out[name]


# -- damaged or foreign files -----------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["random bytes", "truncated", "empty text"])
def test_damaged_database_is_named_for_every_command(built, tmp_path, damage):
    index = copy_index(built, tmp_path)
    db = index / "index.sqlite"
    data = db.read_bytes()
    db.write_bytes({"random bytes": os.urandom(5000), "truncated": data[:1500],
                    "empty text": b"not a database at all\n"}[damage])
    for name, args in {**READERS, "ingest": WRITERS["ingest"], "tag": WRITERS["tag"]}.items():
        if name == "search-new":
            continue
        code, output = run_cli(args, index, built[1])
        assert code == 1, (name, output)
        assert str(db) in output and ("Move it aside" in output or "damaged" in output), (name, output)


EMPTIED_API_SCRIPT = textwrap.dedent("""
    import json, sys
    import zsindex
    from fastapi.testclient import TestClient
    from zsindex.service import create_app
    folder, out = sys.argv[1], {}
    calls = {"open().status()": lambda: zsindex.open(folder).status(),
             "open(create=False)": lambda: zsindex.open(folder, create=False),
             "Library(create=True)": lambda: zsindex.Library(folder, create=True),
             "labels_add": lambda: zsindex.open(folder).labels_add("more", "a,b"),
             "ingest": lambda: zsindex.open(folder, model="demo").ingest([sys.argv[2]], workers=0),
             "create_app": lambda: create_app(folder)}
    for name, call in calls.items():
        try:
            call()
            out[name] = None
        except zsindex.ZsindexError as e:
            out[name] = [type(e).__name__, str(e)]
    print(json.dumps(out))
""")


@pytest.mark.parametrize("emptied", ["zero bytes", "no tables"])
@pytest.mark.parametrize("where", ["new folder", "index folder"])
def test_an_emptied_database_is_damage_and_nothing_writes_to_it(built, tmp_path, emptied, where):
    """An index.sqlite of 0 bytes (or an SQLite file without any table) is an index whose database was emptied:
    every command, reading or writing, the Python API and the service say so and what to do (exit 1), and
    nothing is written: no schema, no -wal or -shm file, no other file."""
    if where == "new folder":
        index = tmp_path / "index"
        index.mkdir()
    else:
        index = copy_index(built, tmp_path)
    db = index / "index.sqlite"
    db.unlink(missing_ok=True)
    if emptied == "zero bytes":
        db.touch()
    else:
        con = sqlite3.connect(db)
        con.execute("PRAGMA user_version = 7")  # a valid SQLite file: a header and no table
        con.commit()
        con.close()

    def snapshot() -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(index.iterdir()) if p.is_file()}

    before = snapshot()
    commands = {**READERS, **WRITERS, "labels-add": WRITERS["labels-add"], "serve": ["serve", "--port", "1"],
                "ingest-demo": ["ingest", "{images}", "-q", "-m", "demo"],
                "search-demo": ["search", "red", "-m", "demo"]}
    for name, args in commands.items():
        code, output = run_cli(args, index, built[1])
        assert code == 1, (name, output)
        assert f"{db} is not a zsindex database" in output and "Move it aside" in output, (name, output)
        assert "zsindex ingest" in output, (name, output)  # the command that builds a new index, in CLI words
        assert snapshot() == before, name
    done = subprocess.run([sys.executable, "-c", EMPTIED_API_SCRIPT, str(index), str(built[1])], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert done.returncode == 0, done.stderr
    for name, error in json.loads(done.stdout.splitlines()[-1]).items():
        assert error is not None and error[0] == "IndexCorruptError", (name, error)
        assert f"{db} is not a zsindex database" in error[1] and "Library.ingest(PATH)" in error[1], (name, error)
    assert snapshot() == before


def test_a_new_index_appears_whole_to_concurrent_readers_and_writers(tmp_path):
    """A new database is linked into place only once its schema is complete: writers creating one index at the
    same time and readers polling it never see a database without tables (which would now be damage)."""
    index = tmp_path / "index"
    script = textwrap.dedent("""
        import sys, time, zsindex
        folder, role = sys.argv[1], sys.argv[2]
        deadline = time.monotonic() + 20
        while True:
            try:
                if role == "writer":
                    zsindex.Library(folder, create=True).close()
                    break
                zsindex.open(folder).status()
                break
            except zsindex.IndexStateError as e:
                if "no index at" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.001)
    """)
    roles = ["reader"] * 4 + ["writer"] * 4
    procs = [subprocess.Popen([sys.executable, "-c", script, str(index), role], stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)}) for role in roles]
    for proc in procs:
        err = proc.communicate(timeout=120)[1]
        assert proc.returncode == 0, err
    assert not [p.name for p in index.iterdir() if p.name.endswith("zsindex-tmp")]  # no private file left behind
    assert Library(index, create=False).status()["model"] is None


@pytest.mark.parametrize("damage", ["missing", "garbage", "truncated", "stale meta", "garbage meta", "list meta"])
def test_missing_or_damaged_faiss_cache_is_rebuilt(built, tmp_path, damage):
    index = copy_index(built, tmp_path)
    faiss_file, meta = index / "vectors.faiss", index / "vectors.json"
    if damage == "missing":
        faiss_file.unlink()
    elif damage == "garbage":
        faiss_file.write_bytes(os.urandom(3000))
    elif damage == "truncated":
        faiss_file.write_bytes(faiss_file.read_bytes()[:200])
    elif damage == "stale meta":
        meta.write_text(json.dumps({"generation": -5, "ntotal": 3, "dim": 64}))
    elif damage == "garbage meta":
        meta.write_text("{not json")
    else:
        meta.write_text("[1, 2]")
    for args in (READERS["status"], READERS["search-cached"], READERS["tags"]):
        code, output = run_cli(args, index, built[1])
        assert code == 0, output
    code, output = run_cli(READERS["search-cached"], index, built[1])
    assert len(output.strip().splitlines()) == 2
    code, output = run_cli(WRITERS["rebuild"], index, built[1])
    assert code == 0 and json.loads(output)["vectors"] == 3, output


# -- something other than a regular file in the place of one of the index folder's files ----------------
DATABASE_FILES = ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm", "index.sqlite-journal")
CACHE_FILES = ("vectors.faiss", "vectors.json", "vectors.faiss.tmp", "vectors.json.tmp", "write.lock")
NOT_A_FILE = ("folder", "dangling link", "fifo", "link to a folder")
ODD_READERS = {name: READERS[name] for name in ("status", "search-cached", "search-new", "tags", "export")}
ODD_WRITERS = {"ingest": WRITERS["ingest"], "rebuild": WRITERS["rebuild"]}


def put_in_place(path: Path, kind: str, elsewhere: Path) -> None:
    if os.path.lexists(path):
        path.unlink()
    if kind == "folder":
        path.mkdir()
        (path / "kept").write_text("not zsindex's")
    elif kind == "dangling link":
        path.symlink_to(elsewhere / "gone")
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        (elsewhere / "a-folder").mkdir()
        path.symlink_to(elsewhere / "a-folder")


@pytest.mark.parametrize("kind", NOT_A_FILE)
@pytest.mark.parametrize("name", DATABASE_FILES + CACHE_FILES + ("vectors.rows",))
def test_a_file_of_the_index_that_is_not_a_regular_file(built, tmp_path, name, kind):
    """A folder, a dangling symbolic link, a named pipe or a link to a folder where the index folder keeps one of
    its files. The database (and the files SQLite keeps beside it): every command names the file and says to
    move it aside (exit 1), never "no index at", "disk I/O error" or a wait on the pipe. A cache (the FAISS file,
    its metadata, their temp files, the write lock): reading commands work, rebuilding it without saving it;
    writing ones name the file and say to move it aside before any work, except that a symbolic link is replaced
    (never its target). vectors.rows: read from SQL. What stands there is left as it was."""
    index = copy_index(built, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = index / name
    put_in_place(path, kind, elsewhere)
    commands = {**ODD_READERS, **ODD_WRITERS}
    done = subprocess.run([sys.executable, "-c", RESTRICTED_SCRIPT, json.dumps(commands), str(index), str(built[1])],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=240)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    for command, (code, output, crash) in out.items():
        assert crash is None, (command, crash)
        message = " ".join(output.split())
        fails = name in DATABASE_FILES or (command in ODD_WRITERS and name in CACHE_FILES and "link" not in kind)
        if not fails:
            assert code == 0, (command, output)
            continue
        assert code == 1, (command, output)
        assert str(path) in message and "move it aside" in message.lower(), (command, output)
        assert "no index at" not in message and "disk I/O" not in message, (command, output)
    assert "red-circle" in out["search-cached"][1].splitlines()[0] or name in DATABASE_FILES
    if kind == "folder":
        assert (path / "kept").read_text() == "not zsindex's"
    elif kind == "fifo":
        assert stat.S_ISFIFO(path.lstat().st_mode)
    elif kind == "dangling link" and name in CACHE_FILES + ("vectors.rows",):
        assert not (elsewhere / "gone").exists()  # replaced by a writer, never written through
    else:
        assert path.is_symlink() or name in CACHE_FILES + ("vectors.rows",)
    assert sorted(p.name for p in elsewhere.iterdir()) in ([], ["a-folder"])
    if kind == "link to a folder":
        assert list((elsewhere / "a-folder").iterdir()) == []


def test_locked_database_names_the_file(built, tmp_path, monkeypatch):
    index = copy_index(built, tmp_path)
    monkeypatch.setattr(store_mod, "BUSY_TIMEOUT_MS", 200)  # the lock holder never lets go in this test
    holder = sqlite3.connect(index / "index.sqlite")
    holder.execute("BEGIN IMMEDIATE")
    try:
        lib = Library(index, create=False)
        assert lib.status()["images"] == {"indexed": 3}  # readers are not blocked (WAL)
        with pytest.raises(IndexLockedError, match="index.sqlite is locked by another process"):
            lib.labels_add("more", "a,b")
        code, output = run_cli(WRITERS["labels-add"], index, built[1])
        assert code == 1 and "locked by another process" in output
        lib.close()
    finally:
        holder.rollback()
        holder.close()


def test_index_path_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(IndexStateError, match="not an index folder|not a folder"):
        Library(tmp_path / "file", create=False)
    with pytest.raises(IndexStateError, match="not a folder"):
        Library(tmp_path / "file")
    with pytest.raises(IndexStateError, match="not a folder"):
        Library(tmp_path / "file" / "sub")


# -- a full disk ------------------------------------------------------------------------------------
FULL_DISK_SCRIPT = textwrap.dedent("""
    set -e
    mount -t tmpfs -o size=4m tmpfs "$1"
    mkdir "$1/index"
    "$3" -c "$4" "$1/index" "$2"
""")
FULL_DISK_PY = textwrap.dedent("""
    import json, os, sys
    from click.testing import CliRunner
    from zsindex.cli import cli
    index, images = sys.argv[1], sys.argv[2]
    first = CliRunner().invoke(cli, ["ingest", os.path.join(images, "0-red-circle.png"), "--index", index,
                                     "-m", "demo", "-q"])
    with open(os.path.join(os.path.dirname(index), "filler"), "wb") as f:
        try:
            while True:
                f.write(b"x" * 65536)
                f.flush()
        except OSError:
            pass
    out = {"first": first.exit_code}
    for name, args in {"ingest": ["ingest", images, "-m", "demo", "-q", "--batch-size", "2"],
                       "status": ["status"]}.items():
        r = CliRunner().invoke(cli, args + ["--index", index])
        crash = r.exception is not None and not isinstance(r.exception, SystemExit)
        out[name] = [r.exit_code, r.output[-20000:], repr(r.exception) if crash else None]
    print(json.dumps(out))
""")


def in_private_mounts(what: str, script: str, *args: str) -> dict:
    """Run a shell script in a private mount namespace (its mounts go with it) with args, and read the JSON of its
    last line; skip where that cannot be done (not root, no unshare, no mount namespaces)."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip(f"needs root and unshare to {what} in a private mount namespace")
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("mount namespaces are not available here")
    done = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.slow
def test_full_disk_gives_a_message(tmp_path):
    images = tmp_path / "images"
    draw(images, [(c, s) for c, s in shapes.seen_pairs()][:12])
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    out = in_private_mounts("mount a small tmpfs", FULL_DISK_SCRIPT, str(mnt), str(images), sys.executable,
                            FULL_DISK_PY)
    assert out["first"] == 0
    code, output, crash = out["ingest"]
    assert crash is None and code == 1 and "no space left" in output and "index.sqlite" in output, output
    code, output, crash = out["status"]
    assert crash is None and code in (0, 1), output
    assert code == 0 or "no space left" in output


# -- damaged vector rows in index.sqlite ---------------------------------------------------------------
VECTOR_READERS = {"search": READERS["search-cached"], "search-like": ["search", "--like", "{images}/0-red-circle.png"],
                  "tag": WRITERS["tag"], "rebuild": WRITERS["rebuild"], "ingest": WRITERS["ingest"]}
OTHER_READERS = {name: READERS[name] for name in ("status", "errors", "tags", "export", "labels")}


@pytest.mark.parametrize("blob", [b"\x01\x02", b"\0" * 4, b"\0" * 260])
def test_damaged_vector_rows_are_named_as_damage_of_the_database(built, tmp_path, blob):
    """A stored image vector whose length is not the model's dimension (64 float32 values: 256 bytes) is damage of
    index.sqlite: every command that reads the vectors (to rebuild the FAISS cache, to find an example image, to
    tag) names the file and what to do (exit 1), never a traceback, never vectors reshaped from the wrong bytes;
    commands that do not read vectors keep working. A damaged cached query vector is embedded again."""
    index = copy_index(built, tmp_path)
    db = index / "index.sqlite"
    con = sqlite3.connect(db)
    con.execute("UPDATE vectors SET vector = ? WHERE rowid IN (SELECT rowid FROM vectors LIMIT 1)", [blob])
    con.execute("UPDATE text_vectors SET vector = ?", [blob])
    con.commit()
    con.close()
    (index / "vectors.faiss").unlink()
    for name, args in VECTOR_READERS.items():
        code, output = run_cli(args, index, built[1])
        message = " ".join(output.split())
        assert code == 1, (name, output)
        assert str(db) in message and "is damaged" in message and "wrong length" in message, (name, output)
        assert "Move it aside" in message, (name, output)
    for name, args in OTHER_READERS.items():
        code, output = run_cli(args, index, built[1])
        assert code == 0, (name, output)
    lib = Library(index, create=False)
    model = lib.store.model()
    with pytest.raises(IndexCorruptError, match="is damaged"):  # the re-ranking lookup of a compressed index
        lib.store.vectors_by_ids(model.id, np.arange(1, 4))
    assert lib.store.cached_texts(model.id, ["a red circle"]) == {}  # a damaged cached query: not cached
    lib.close()


def test_a_vector_cache_of_another_index_is_stale(built, tmp_path, demo_embedder):
    """vectors.faiss and vectors.json copied from another index of as many images at the same generation are not
    trusted: the generation's random id differs, so readers rebuild the cache (a writable folder saves it again),
    never answering with the other index's vectors. So too for a cache copied back from an older state of the
    same index, and for a copy of the index that has changed since it was copied."""
    index = copy_index(built, tmp_path)
    images = tmp_path / "other-images"
    draw(images, [("yellow", "triangle"), ("purple", "square"), ("orange", "star")])
    other = tmp_path / "other"
    lib = Library(other, embedder=demo_embedder)
    lib.ingest([images], workers=0)
    lib.close()
    ours, theirs = (json.loads((i / "vectors.json").read_text()) for i in (index, other))
    assert (ours["generation"], ours["ntotal"]) == (theirs["generation"], theirs["ntotal"])
    query = ["search", "a yellow triangle", "-k", "3"]  # the other index's first image has this index's first id
    code, before = run_cli(query, index, built[1])
    assert code == 0, before
    for name in ("vectors.faiss", "vectors.json"):
        shutil.copy(other / name, index / name)
    code, output = run_cli(READERS["status"], index, built[1])
    assert code == 0 and json.loads(output)["faiss_fresh"] is False, output
    code, output = run_cli(query, index, built[1])
    assert code == 0 and output == before, output  # its own vectors' scores and order, not the other index's
    assert json.loads((index / "vectors.json").read_text())["vectors_id"] == ours["vectors_id"]  # saved again

    # A copy of the index that went its own way since: the same generation, another id.
    old = (index / "vectors.faiss").read_bytes(), (index / "vectors.json").read_bytes()
    twin = tmp_path / "twin"
    shutil.copytree(index, twin)
    for folder, colour in ((index, "red"), (twin, "blue")):
        draw(tmp_path / f"more-{colour}", [(colour, "star")])
        code, output = run_cli(["ingest", str(tmp_path / f"more-{colour}"), "-q"], folder, built[1])
        assert code == 0, output
    query = ["search", "a blue star", "-k", "4"]
    code, before = run_cli(query, index, built[1])
    assert code == 0, before
    saved = (index / "vectors.faiss").read_bytes(), (index / "vectors.json").read_bytes()
    assert json.loads(saved[1])["generation"] == json.loads((twin / "vectors.json").read_text())["generation"]
    shutil.copy(twin / "vectors.faiss", index / "vectors.faiss")
    shutil.copy(twin / "vectors.json", index / "vectors.json")
    code, output = run_cli(query, index, built[1])
    assert code == 0 and output == before, output
    # A cache copied back from an older state of the same index: an older generation.
    (index / "vectors.faiss").write_bytes(old[0])
    (index / "vectors.json").write_bytes(old[1])
    code, output = run_cli(query, index, built[1])
    assert code == 0 and output == before, output


def test_an_index_made_before_generation_ids_keeps_its_cache(built, tmp_path):
    """An index whose database and vectors.json hold no generation id (made by an earlier version) is read with
    its cache as before, without writing anything; a writer gives it an id."""
    index = copy_index(built, tmp_path)
    con = sqlite3.connect(index / "index.sqlite")
    con.execute("DELETE FROM state WHERE key = 'vectors_id'")
    con.commit()
    con.close()
    meta = json.loads((index / "vectors.json").read_text())
    del meta["vectors_id"]
    (index / "vectors.json").write_text(json.dumps(meta))
    before = {p.name: p.stat().st_mtime_ns for p in index.iterdir() if p.name.startswith("vectors.")}
    code, output = run_cli(READERS["status"], index, built[1])
    assert code == 0 and json.loads(output)["faiss_fresh"] is True, output
    code, output = run_cli(READERS["search-cached"], index, built[1])
    assert code == 0 and "red-circle" in output.splitlines()[0], output
    assert {p.name: p.stat().st_mtime_ns for p in index.iterdir() if p.name in before} == before
    code, output = run_cli(WRITERS["rebuild"], index, built[1])
    assert code == 0, output
    assert len(json.loads((index / "vectors.json").read_text())["vectors_id"]) == 32


def test_a_row_file_of_another_index_is_not_read(tmp_path):
    """The row file of a compressed index records the generation id it holds the vectors of: with another id
    (copied from another index) none of its rows is read, and a writer's first row empties it first."""
    from zsindex.rowfile import ROWS_NAME, RowFile

    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(5, 64)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = np.arange(1, 6)
    theirs = RowFile(tmp_path, 64, "a" * 32)
    theirs.write(ids, vecs)
    theirs.mark_clean("a" * 32)
    theirs.close()
    got, found = RowFile(tmp_path, 64, "a" * 32).read(ids)
    assert found.all() and np.array_equal(got, vecs)
    for expected in ("b" * 32, None):
        assert not RowFile(tmp_path, 64, expected).read(ids)[1].any()
    ours = RowFile(tmp_path, 64, "b" * 32)
    ours.write(ids[:1], vecs[:1])
    assert (tmp_path / ROWS_NAME).stat().st_size == 2 * 4 * 64  # the other index's rows are gone
    ours.mark_clean("b" * 32)
    assert RowFile(tmp_path, 64, "b" * 32).read(ids)[1].tolist() == [True, False, False, False, False]


# -- a full disk: reading commands answer from a cache rebuilt in memory ---------------------------------
FULL_DISK_READER_PY = textwrap.dedent("""
    import json, os, sys
    from click.testing import CliRunner
    from zsindex.cli import cli
    index, images = sys.argv[1], sys.argv[2]
    first = CliRunner().invoke(cli, ["ingest", images, "--index", index, "-m", "demo", "-q"])
    for name in ("vectors.faiss", "write.lock"):  # a stale cache; and the lock must be made anew
        os.unlink(os.path.join(index, name))
    with open(os.path.join(os.path.dirname(index), "filler"), "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"x" * 4096)
        except OSError:
            pass
    out = {"first": first.exit_code}
    for name, args in {"search": ["search", "a red circle", "-k", "2"],
                       "search-new": ["search", "a green star", "-k", "2"],
                       "like": ["search", "--like", os.path.join(images, "0-red-circle.png"), "-k", "2"],
                       "status": ["status"]}.items():
        r = CliRunner().invoke(cli, args + ["--index", index])
        crash = r.exception is not None and not isinstance(r.exception, SystemExit)
        out[name] = [r.exit_code, r.output[-20000:], repr(r.exception) if crash else None]
    print(json.dumps(out))
""")


def test_reading_commands_work_on_a_full_disk_with_a_stale_cache(tmp_path):
    """A search that finds the FAISS cache stale rebuilds it in memory and answers even when saving it fails for
    want of space (as on a read-only folder); it does not say "cannot save the vector cache"."""
    images = tmp_path / "images"
    draw(images, [("red", "circle"), ("blue", "square"), ("green", "star")])
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    out = in_private_mounts("mount a small tmpfs", FULL_DISK_SCRIPT, str(mnt), str(images), sys.executable,
                            FULL_DISK_READER_PY)
    assert out["first"] == 0
    for name in ("search", "search-new", "like", "status"):
        code, output, crash = out[name]
        assert crash is None and code == 0, (name, output)
    assert "red-circle" in out["search"][1].splitlines()[0] and "red-circle" in out["like"][1].splitlines()[0]
    assert not list(mnt.iterdir())  # the private mount went with its namespace


# -- a read-only file system --------------------------------------------------------------------------
READ_ONLY_MOUNT_SCRIPT = textwrap.dedent("""
    set -e
    mount --bind "$1" "$2"
    mount -o remount,bind,ro "$2"
    "$3" -c "$4" "$5" "$2" "$6"
""")


def test_a_read_only_file_system_says_so_not_chmod(built, tmp_path):
    """On a file system mounted read-only (EROFS: here a read-only bind mount) no chmod can help: writers say
    the file system is mounted read-only (remount it, or copy the index elsewhere); readers work."""
    index = copy_index(built, tmp_path)
    view = tmp_path / "view"
    view.mkdir()
    commands = {"search": READERS["search-cached"], "status": READERS["status"], "ingest": WRITERS["ingest"],
                "rebuild": WRITERS["rebuild"], "labels-add": WRITERS["labels-add"], "tag": WRITERS["tag"]}
    out = in_private_mounts("make a read-only bind mount", READ_ONLY_MOUNT_SCRIPT, str(index), str(view),
                            sys.executable, RESTRICTED_SCRIPT, json.dumps(commands), str(built[1]))
    for name, (code, output, crash) in out.items():
        assert crash is None, (name, crash)
        message = " ".join(output.split())
        if name in ("search", "status"):
            assert code == 0, (name, output)
            continue
        assert code == 1 and "mounted read-only" in message and "chmod" not in message, (name, output)
        assert "remount" in message and "copy the folder" in message, (name, output)
