"""The store in PostgreSQL: same schema and migrations, same ingest, search and tagging as SQLite.

Every behaviour test here runs on both backends (SQLite file and a real PostgreSQL server started for
the tests) and compares them. Skipped where PostgreSQL or psycopg is not installed; CI installs both.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from zsindex import shapes
from zsindex.cli import cli
from zsindex.errors import IndexLockedError, IndexStateError
from zsindex.library import Library

from . import postgres_server

pytestmark = pytest.mark.skipif(postgres_server.binaries() is None, reason="PostgreSQL is not installed")
psycopg = pytest.importorskip("psycopg")


@pytest.fixture(scope="module")
def pg_server():
    with postgres_server.running_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, pg_server) -> str | None:
    """None: the index folder's SQLite file; else the URL of a fresh PostgreSQL database."""
    return None if request.param == "sqlite" else postgres_server.new_database(pg_server)


def _draw_world(folder: Path, pairs, seed: int) -> list[Path]:
    scenes = [[shapes.Thing(c, s)] for c, s in pairs]
    return shapes.save_world(folder, scenes, seed=seed)


def _summary(lib: Library) -> dict:
    """What a user can observe of an index, independent of ids and timings."""
    rows = lib.tag_rows("colours") if any(x["name"] == "colours" for x in lib.labels_list()) else []
    return {
        "status": lib.status()["images"],
        "search": [(Path(h.path).name, round(h.score, 5)) for h in lib.search("a red circle", k=6)],
        "tags": sorted((Path(r["path"]).name, r["label"]) for r in rows),
    }


def test_migrations_blank_to_head_and_no_drift_on_postgres(pg_server, tmp_path):
    from alembic import command
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    from zsindex.store import Store, alembic_config

    store = Store(tmp_path, postgres_server.new_database(pg_server))
    with store.engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        command.check(alembic_config(connection=conn))  # raises if models and migrations disagree
    assert version == ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert not (tmp_path / "index.sqlite").exists()  # the folder keeps only the vector cache
    store.close()


def test_old_postgres_database_upgrades_with_its_data(pg_server, tmp_path):
    from alembic import command
    from sqlalchemy import create_engine, text

    from zsindex.store import Store, alembic_config

    url = postgres_server.new_database(pg_server)
    engine = create_engine(url)
    with engine.begin() as conn:
        cfg = alembic_config(connection=conn)
        command.upgrade(cfg, "0001")
        conn.execute(text("INSERT INTO models (identity, name, dim, created_at) "
                          "VALUES ('m', 'm', 4, now())"))
    engine.dispose()
    store = Store(tmp_path, url)
    assert store.model() is not None and store.model().identity == "m"
    store.close()


def test_ingest_search_and_tagging_agree_on_both_backends(tmp_path, demo_embedder, pg_server):
    photos = tmp_path / "photos"
    _draw_world(photos, shapes.seen_pairs()[:12], seed=3)
    results = []
    for db in (None, postgres_server.new_database(pg_server)):
        lib = Library(tmp_path / f"index-{'pg' if db else 'sqlite'}", embedder=demo_embedder, db=db or False)
        first = lib.ingest([photos], workers=0)
        assert first.added == 12
        lib.labels_add("colours", "red,green,blue,yellow,purple,orange")
        lib.tag("colours", mode="multi")
        results.append(_summary(lib))
        lib.close()
    sqlite_view, pg_view = results
    assert sqlite_view == pg_view
    assert pg_view["status"] == {"indexed": 12}


def test_incremental_ingest_on_both_backends(tmp_path, demo_embedder, db):
    photos = tmp_path / "photos"
    paths = _draw_world(photos, shapes.seen_pairs()[:6], seed=4)
    lib = Library(tmp_path / "index", embedder=demo_embedder, db=db or False)
    assert lib.ingest([photos], workers=0).added == 6
    again = lib.ingest([photos], workers=0)
    assert (again.added, again.unchanged) == (0, 6)
    moved_id = next(h.id for h in lib.search("x", k=6) if Path(h.path) == paths[0])
    shutil.move(paths[0], photos / "renamed.png")
    paths[1].unlink()
    report = lib.ingest([photos], workers=0)
    assert (report.moved, report.deleted) == (1, 1)
    hits = {Path(h.path).name: h.id for h in lib.search("x", k=10)}
    assert hits["renamed.png"] == moved_id and len(hits) == 5
    lib.close()


def test_one_writer_across_machines_and_each_cache_refreshes(tmp_path, demo_embedder, pg_server):
    url = postgres_server.new_database(pg_server)
    photos = tmp_path / "photos"
    _draw_world(photos, shapes.seen_pairs()[:4], seed=5)
    a = Library(tmp_path / "machine-a", embedder=demo_embedder, db=url)
    b = Library(tmp_path / "machine-b", embedder=demo_embedder, db=url)
    a.ingest([photos], workers=0)
    assert len(b.search("a red circle", k=10)) == 4  # b builds its own cache from the shared store
    with a.store.write_lock():
        with pytest.raises(IndexLockedError, match="another zsindex process"):
            b.ingest([photos], workers=0)
        assert len(b.search("a red circle", k=10)) == 4  # readers keep working during a write
    _draw_world(photos / "more", shapes.seen_pairs()[4:7], seed=6)
    b.ingest([photos], workers=0)  # the lock was released with the block
    assert len(a.search("a red circle", k=10)) == 7  # a notices the newer generation and refreshes
    assert (tmp_path / "machine-a" / "vectors.faiss").exists()
    a.close()
    b.close()


def test_cli_db_option_and_clear_errors(tmp_path, pg_server, world):
    url = postgres_server.new_database(pg_server)
    runner = CliRunner()
    folder = world[0][0].parent
    res = runner.invoke(cli, ["--db", url, "ingest", str(folder), "--index", str(tmp_path / "idx"), "-m", "demo",
                              "-q"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["search", "a red circle", "--index", str(tmp_path / "idx2"), "--json"],
                        env={"ZSINDEX_DB": url})
    assert res.exit_code == 0 and len(res.output.splitlines()) == 10  # env var, another machine's folder
    dead = "postgresql+psycopg://zsindex@127.0.0.1:1/nothing"
    res = runner.invoke(cli, ["--db", dead, "status", "--index", str(tmp_path / "idx3")])
    assert res.exit_code == 1 and "cannot reach the database" in res.output and "Traceback" not in res.output
    res = runner.invoke(cli, ["--db", "nosuchdriver://x/y", "status", "--index", str(tmp_path / "idx3")])
    assert res.exit_code == 1 and "SQLAlchemy URL" in res.output


def test_a_server_stores_cache_folder_is_reopened_and_never_mixed_up(tmp_path, pg_server, world):
    """Every command after the first opens the same folder again; folders of other stores are refused."""
    url, other = postgres_server.new_database(pg_server), postgres_server.new_database(pg_server)
    runner = CliRunner()
    folder, idx = world[0][0].parent, tmp_path / "idx"
    base = ["--db", url]
    assert runner.invoke(cli, [*base, "ingest", str(folder), "--index", str(idx), "-m", "demo", "-q"]).exit_code == 0
    assert {"vectors.faiss", "server-store.json"} <= {p.name for p in idx.iterdir()}
    for args in (["status"], ["search", "a red circle", "--json"], ["ingest", str(folder), "-q"]):
        res = runner.invoke(cli, [*base, *args, "--index", str(idx)])
        assert res.exit_code == 0, (args, res.output)
    res = runner.invoke(cli, ["--db", other, "search", "a red circle", "--index", str(idx)])
    assert res.exit_code == 1 and "another database" in res.output  # its cached vectors are not this one's
    sqlite_idx = tmp_path / "sqlite-idx"
    assert runner.invoke(cli, ["ingest", str(folder), "--index", str(sqlite_idx), "-m", "demo", "-q"]).exit_code == 0
    res = runner.invoke(cli, [*base, "status", "--index", str(sqlite_idx)])
    assert res.exit_code == 1 and "index.sqlite" in res.output  # an SQLite index is not a server's cache
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "vectors.faiss").write_bytes(b"not ours")
    res = runner.invoke(cli, [*base, "status", "--index", str(stray)])
    assert res.exit_code == 1 and "vectors.faiss" in res.output
    assert (stray / "vectors.faiss").read_bytes() == b"not ours"


def test_private_indexes_stay_in_sqlite(tmp_path, pg_server, monkeypatch):
    """The demo's and eval's own indexes never land in the user's server, whatever ZSINDEX_DB says."""
    monkeypatch.setenv("ZSINDEX_DB", "postgresql+psycopg://zsindex@127.0.0.1:1/unreachable")
    lib = Library(tmp_path / "private", db=False, create=True)
    assert lib.store.url is None and (tmp_path / "private" / "index.sqlite").exists()
    with pytest.raises(IndexStateError):
        Library(tmp_path / "shared")
    assert os.environ["ZSINDEX_DB"].endswith("unreachable")
    np.testing.assert_equal(lib.status()["images"], {})


def _cli_views(runner: CliRunner, base: list[str], idx: Path) -> dict[str, object]:
    """What the counting commands print (JSON), with the index's own folder names taken out."""
    import json

    out: dict[str, object] = {}
    for name, args in {
        "tags": ["tags", "--json"],
        "tags-set": ["tags", "-l", "colours", "--json"],
        "tag-summary": ["tag", "-l", "colours", "--summary", "--json"],
        "status": ["status", "--json"],
        "keywords": ["keywords", "--json"],
        "labels-list": ["labels", "list", "--json"],
        "labels-show": ["labels", "show", "colours", "--json"],
        "export": ["export", "-l", "colours", "--json"],
        "errors": ["errors", "--json"],
    }.items():
        res = runner.invoke(cli, [*base, *args, "--index", str(idx)])
        assert res.exit_code == 0, (args, res.output)
        text = res.output.replace(str(idx), "IDX")
        try:
            out[name] = json.loads(text)
        except ValueError:
            out[name] = [json.loads(line) for line in text.splitlines() if line.strip()]
    def timeless(value):
        if isinstance(value, dict):
            return {k: timeless(v) for k, v in value.items() if k != "seconds"}
        return [timeless(v) for v in value] if isinstance(value, list) else value

    out = {k: timeless(v) for k, v in out.items()}
    status = out["status"]
    if isinstance(status, dict):  # where the store lives, and its files, differ by design
        for key in ("database", "bytes", "index", "folder", "last_run"):
            status.pop(key, None)
    return out


def test_counting_commands_and_facets_agree_on_both_backends(tmp_path, pg_server, world, demo_embedder):
    """tags, tag --summary, status, keywords, labels, export and /api/facets: every aggregate query runs on
    PostgreSQL (which refuses a selected column that is neither grouped nor aggregated) and prints what
    SQLite's prints."""
    from fastapi.testclient import TestClient

    from zsindex.service import create_app

    photos = tmp_path / "photos"
    photos.mkdir()
    for p, _ in world[:8]:
        shutil.copy(p, photos / p.name)
    samples = Path(__file__).parent / "fixtures" / "sidecars"
    first = sorted(photos.iterdir())[0]
    shutil.copy(samples / "darktable.xmp", str(first) + ".xmp")  # user keywords for `keywords`
    url = postgres_server.new_database(pg_server)
    runner = CliRunner()
    views, facets = [], []
    for base, idx in (([], tmp_path / "sqlite-idx"), (["--db", url], tmp_path / "pg-idx")):
        for args in (["ingest", str(photos), "-m", "demo", "-q"],
                     ["labels", "add", "colours", "--labels", "red,green,blue,yellow"],
                     ["labels", "add", "shapes", "--labels", "circle,square,triangle"],
                     ["tag", "-l", "colours", "-q"], ["tag", "-l", "shapes", "--mode", "multi", "-q"]):
            res = runner.invoke(cli, [*base, *args, "--index", str(idx)])
            assert res.exit_code == 0, (args, res.output)
        views.append(_cli_views(runner, base, idx))
        lib = Library(idx, embedder=demo_embedder, db=url if base else False)
        with lib.store.session() as session:  # drawn images carry no EXIF: give some a camera to count
            from sqlalchemy import text

            session.execute(text("UPDATE images SET camera_make = 'Canon', camera_model = 'EOS R' "
                                 "WHERE path LIKE '%red%' OR path LIKE '%blue%'"))
        with TestClient(create_app(lib, ingest_workers=0), base_url="http://127.0.0.1") as client:
            res = client.get("/api/facets")
            assert res.status_code == 200, res.text
            facets.append(res.json())
        lib.close()
    sqlite_view, pg_view = views
    assert sqlite_view["tags"] and sqlite_view["keywords"]  # there is something to count
    for key in sqlite_view:
        assert pg_view[key] == sqlite_view[key], key
    assert facets[0] == facets[1] and facets[0]["tags"] and facets[0]["formats"]
    assert facets[0]["cameras"][0]["value"] == "Canon EOS R"


def test_server_database_errors_name_the_server_not_a_file(tmp_path, pg_server):
    from sqlalchemy import text

    from zsindex.store import Store

    url = postgres_server.new_database(pg_server).replace("zsindex@", "zsindex:s3cret@")
    store = Store(tmp_path, url)
    with pytest.raises(IndexStateError) as info, store.session() as session:
        session.execute(text("SELECT nosuchcolumn FROM images"))
    message = str(info.value)
    assert "index.sqlite" not in message and "s3cret" not in message
    assert "zsindex:***@127.0.0.1" in message and "nosuchcolumn" in message
    store.close()


def test_every_command_takes_the_root_db_option(tmp_path, pg_server, world, monkeypatch):
    """`zsindex --db URL CMD` is `ZSINDEX_DB=URL zsindex CMD` for every command, serve included."""
    url = postgres_server.new_database(pg_server)
    monkeypatch.delenv("ZSINDEX_DB", raising=False)
    runner = CliRunner()
    idx = tmp_path / "idx"
    folder = world[0][0].parent
    assert runner.invoke(cli, ["--db", url, "ingest", str(folder), "-m", "demo", "-q", "--index",
                               str(idx)]).exit_code == 0
    seen = {}

    def fake_run(app, sock, log_level):
        seen["reader"], seen["writer"] = app.state.service.reader, app.state.service.writer
        sock.close()
        return True  # started, and stopped at once

    from zsindex import cli_serve

    monkeypatch.setattr(cli_serve, "run_server", fake_run)
    res = runner.invoke(cli, ["--db", url, "serve", "--index", str(idx), "--port", "0"])
    assert res.exit_code == 0, res.output
    assert "no index" not in res.output
    assert seen["reader"].store.url == url and seen["writer"].store.url == url  # both halves on the server
    for args in (["status"], ["errors"], ["labels", "list"], ["tags"], ["keywords"], ["search", "red"],
                 ["forget", "--missing", "--dry-run"], ["rebuild"]):
        res = runner.invoke(cli, ["--db", url, *args, "--index", str(idx)])
        assert res.exit_code == 0, (args, res.output)
