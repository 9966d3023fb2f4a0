"""Alembic: blank database to head, no drift between models and migrations, newer schema refused."""

import sqlite3

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text

from zsindex.errors import IndexStateError
from zsindex.store import Store, alembic_config, migrations_dir


def head() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_blank_to_head_and_pragmas(tmp_path):
    store = Store(tmp_path)
    con = sqlite3.connect(tmp_path / "index.sqlite")
    assert con.execute("SELECT version_num FROM alembic_version").fetchone() == (head(),)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"models", "images", "vectors", "ingest_runs", "state"} <= tables
    with store.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    store.close()


def test_alembic_check_finds_no_drift(tmp_path):
    store = Store(tmp_path)
    with store.engine.connect() as conn:
        command.check(alembic_config(connection=conn))  # raises if models and migrations disagree
    store.close()


def test_reopen_is_idempotent(tmp_path):
    Store(tmp_path).close()
    Store(tmp_path).close()


def test_newer_database_refused(tmp_path):
    Store(tmp_path).close()
    con = sqlite3.connect(tmp_path / "index.sqlite")
    con.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    con.commit()
    con.close()
    with pytest.raises(IndexStateError, match="newer zsindex"):
        Store(tmp_path)


def test_migrations_ship_with_env():
    assert (migrations_dir() / "env.py").is_file()
    assert any(migrations_dir().joinpath("versions").glob("0001_*.py"))


def test_old_database_upgrades_with_its_data(tmp_path):
    from zsindex.store import make_engine, migrate

    engine = make_engine(tmp_path / "index.sqlite")
    migrate(engine, "0001")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO images (path, size, mtime_ns, status, first_seen, last_seen) "
            "VALUES ('/a.jpg', 1, 1, 'indexed', '2024-01-01 00:00:00', '2024-01-01 00:00:00')")
    engine.dispose()
    store = Store(tmp_path)  # opening upgrades 0001 -> head
    con = sqlite3.connect(tmp_path / "index.sqlite")
    assert con.execute("SELECT version_num FROM alembic_version").fetchone() == (head(),)
    assert con.execute("SELECT path FROM images").fetchall() == [("/a.jpg",)]
    assert con.execute("SELECT COUNT(*) FROM tags").fetchone() == (0,)  # tables of later revisions exist
    store.close()


# Every table of the head schema, filled with rows that refer to each other (as a real index does).
_ROWS = {
    "models": "INSERT INTO models (id, identity, name, pretrained, dim, created_at, precision, runtime) VALUES "
              "(1, 'demo:1', 'demo', NULL, 4, '2024-01-01 00:00:00', 'fp32', 'torch')",
    "images": "INSERT INTO images (id, path, size, mtime_ns, sha256, status, first_seen, last_seen, media_kind, "
              "duration) VALUES (1, '/p/a.jpg', 1, 1, 'aa', 'indexed', '2024-01-01', '2024-01-01', NULL, NULL), "
              "(2, '/p/b.mp4', 2, 2, 'bb', 'indexed', '2024-01-01', '2024-01-01', 'video', 3.5)",
    "vectors": "INSERT INTO vectors (id, model_id, sha256, vector) VALUES (1, 1, 'aa', x'00'), (2, 1, 'bb', x'01')",
    "ingest_runs": "INSERT INTO ingest_runs (id, started_at, finished_at, status, roots, added, unchanged, "
                   "changed, moved, deleted, skipped, ignored) VALUES "
                   "(1, '2024-01-01', '2024-01-01', 'finished', '[\"/p\"]', 2, 0, 0, 0, 0, 0, '{}')",
    "state": "INSERT INTO state (key, value) VALUES ('generation', '3'), ('store_id', 'x')",
    "text_vectors": "INSERT INTO text_vectors (id, model_id, text, vector, last_used) VALUES "
                    "(1, 1, 'a cat', x'02', '2024-01-01')",
    "label_sets": "INSERT INTO label_sets (id, name, version, templates, created_at, updated_at, auto) VALUES "
                  "(1, 'colours', 2, NULL, '2024-01-01', '2024-01-01', 0), "
                  "(2, 'shapes', 1, '[\"a {}\"]', '2024-01-01', '2024-01-01', 1)",
    "labels": "INSERT INTO labels (id, set_id, name, descriptions, templates, position, tagged_key) VALUES "
              "(1, 1, 'red', '[]', '[]', 0, 'k'), (2, 1, 'green', '[]', '[]', 1, 'k'), "
              "(3, 2, 'circle', '[]', '[]', 0, NULL)",
    "label_vectors": "INSERT INTO label_vectors (id, model_id, prompts_sha256, vector) VALUES (1, 1, 'pp', x'03')",
    "tags": "INSERT INTO tags (id, image_id, label_id, set_version, model_id, mode, score, cosine) VALUES "
            "(1, 1, 1, 2, 1, 'single', 0.9, 0.3), (2, 2, 2, 2, 1, 'single', 0.8, 0.2), "
            "(3, 1, 3, 1, 1, 'multi', 0.7, 0.25)",
    "sidecars": "INSERT INTO sidecars (id, path, image_path, created, sha256, entries, pending, updated_at) "
                "VALUES (1, '/p/a.xmp', '/p/a.jpg', 1, 'ss', '[]', NULL, '2024-01-01')",
    "keywords": "INSERT INTO keywords (id, image_id, keyword, folded, source) VALUES "
                "(1, 1, 'Holiday', 'holiday', 'sidecar'), (2, 2, 'Beach', 'beach', 'xmp')",
    "keyword_sources": "INSERT INTO keyword_sources (image_id, image_sha256, sidecar_path, sidecar_size, "
                       "sidecar_mtime_ns, error) VALUES (1, 'aa', '/p/a.xmp', 10, 10, NULL), "
                       "(2, 'bb', NULL, NULL, NULL, NULL)",
    "frames": "INSERT INTO frames (id, image_id, position, seconds, sha256) VALUES (1, 2, 0, 0.0, 'f0'), "
              "(2, 2, 1, 1.5, 'f1')",
    "ignored_files": "INSERT INTO ignored_files (id, path, kind, reason, run_id) VALUES "
                     "(1, '/p/notes.txt', 'txt', 'not an image', 1)",
}


def _revisions() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def _tables(con: sqlite3.Connection) -> dict[str, list[tuple]]:
    """Every row of every table (but Alembic's own), by table, with the columns in a fixed order."""
    names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                       "AND name != 'alembic_version' ORDER BY name")]
    out = {}
    for name in names:
        cols = sorted(r[1] for r in con.execute(f"PRAGMA table_info({name})"))
        out[name] = sorted(con.execute(f"SELECT {', '.join(cols)} FROM {name}").fetchall(), key=repr)
    return out


def _columns(con: sqlite3.Connection) -> dict[str, list[str]]:
    return {t: sorted(r[1] for r in con.execute(f"PRAGMA table_info({t})")) for t in _tables(con)}


def test_every_table_is_filled_by_the_upgrade_fixture(tmp_path):
    Store(tmp_path).close()
    con = sqlite3.connect(tmp_path / "index.sqlite")
    assert set(_tables(con)) == set(_ROWS)  # a new table must get rows here, so its upgrade is tested too


@pytest.mark.parametrize("old", [r for r in _revisions() if r != head()])
def test_upgrade_from_each_older_revision_keeps_every_row(tmp_path, old):
    """An index made at each older schema, with rows in every table it has, opens with every row kept.

    Batch mode rebuilds tables on SQLite; with foreign keys on, dropping the old table cascaded and emptied
    labels and tags (0007), keywords, frames and tags (0009), vectors and tags (0010).
    """
    from zsindex.store import make_engine, migrate

    path = tmp_path / "index.sqlite"
    Store(tmp_path).close()
    con = sqlite3.connect(path)
    con.execute("PRAGMA foreign_keys=ON")
    for sql in _ROWS.values():
        con.execute(sql)
    con.commit()
    assert not con.execute("PRAGMA foreign_key_check").fetchall()
    con.close()
    engine = make_engine(path)
    migrate(engine, old, down=True)  # as an older zsindex left it
    engine.dispose()
    con = sqlite3.connect(path)
    assert con.execute("SELECT version_num FROM alembic_version").fetchone() == (old,)
    before, old_columns = _tables(con), _columns(con)
    con.close()
    assert all(before[t] for t in before), f"the downgrade to {old} lost rows: {before}"

    store = Store(tmp_path)  # opening upgrades to head
    with store.session() as session:
        assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1  # switched back on afterwards
    store.close()
    con = sqlite3.connect(path)
    assert con.execute("SELECT version_num FROM alembic_version").fetchone() == (head(),)
    for table, rows in before.items():
        cols = old_columns[table]
        after = sorted(con.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall(), key=repr)
        assert after == rows, f"{table} changed upgrading from {old}"
    con.close()


def test_failed_upgrade_leaves_the_old_file(tmp_path):
    """A row whose parent is missing (written with foreign keys off) stops the upgrade: nothing changes."""
    from zsindex.store import make_engine, migrate

    path = tmp_path / "index.sqlite"
    engine = make_engine(path)
    migrate(engine, "0004")
    engine.dispose()
    con = sqlite3.connect(path)
    con.execute("INSERT INTO label_sets (id, name, version, created_at, updated_at) "
                "VALUES (1, 'colours', 1, '2024-01-01', '2024-01-01')")
    con.execute("INSERT INTO labels (id, set_id, name, descriptions, templates, position) "
                "VALUES (1, 1, 'red', '[]', '[]', 0), (2, 7, 'orphan', '[]', '[]', 1)")
    con.commit()
    con.close()
    with pytest.raises(IndexStateError, match="referring to rows that do not exist.*nothing was changed"):
        Store(tmp_path)
    con = sqlite3.connect(path)
    assert con.execute("SELECT version_num FROM alembic_version").fetchone() == ("0004",)
    assert con.execute("SELECT COUNT(*) FROM labels").fetchone() == (2,)
    cols = [r[1] for r in con.execute("PRAGMA table_info(label_sets)")]
    assert "auto" not in cols
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "sidecars" not in tables and not any(n.startswith("_alembic_tmp") for n in tables)
    con.close()


def test_alembic_refuses_to_migrate_sqlite_with_foreign_keys_on(tmp_path):
    from zsindex.store import make_engine

    engine = make_engine(tmp_path / "index.sqlite")  # zsindex's engine: foreign keys on
    with engine.begin() as conn, pytest.raises(RuntimeError, match="foreign keys off"):
        command.upgrade(alembic_config(connection=conn), "head")
    engine.dispose()


def test_an_upgrade_keeps_a_copy_of_the_database_as_it_was(tmp_path, monkeypatch):
    """Opening an index of an older schema copies its database beside it first (index.sqlite.schema-0009.bak),
    rows and schema as they were, so an upgrade that mangled rows could be undone by hand. A file, a folder
    or a link already at that name is never replaced: the copy takes the next free name. When the copy cannot
    be made, nothing is upgraded. An index at the newest schema gets no copy."""
    from zsindex.store import backup_name, make_engine, migrate

    path = tmp_path / "index.sqlite"
    Store(tmp_path).close()
    assert not list(tmp_path.glob("*.bak"))  # new, and at head: nothing to keep
    con = sqlite3.connect(path)
    for sql in _ROWS.values():
        con.execute(sql)
    con.commit()
    con.close()
    engine = make_engine(path)
    migrate(engine, "0009", down=True)
    engine.dispose()
    con = sqlite3.connect(path)
    before = _tables(con)
    con.close()
    theirs = backup_name(path, "0009")
    theirs.write_text("my own notes")  # a file of the user's that has the name
    (tmp_path / "target").write_text("kept")
    backup_name(path, "0009", 2).symlink_to(tmp_path / "target")  # and a link
    backup_name(path, "0009", 3).mkdir()  # and a folder
    opened = sqlite3.connect

    def disk_full(target, *args, **kwargs):  # the private copy cannot be written (as on a full disk)
        if str(target).endswith(".tmp"):
            raise sqlite3.OperationalError("database or disk is full")
        return opened(target, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", disk_full)
    with pytest.raises(IndexStateError, match="cannot copy .* before upgrading its schema.*nothing was changed"):
        Store(tmp_path)
    monkeypatch.undo()
    con = sqlite3.connect(path)
    assert con.execute("SELECT version_num FROM alembic_version").fetchone() == ("0009",)
    con.close()
    Store(tmp_path).close()  # a later open makes its copy
    copy = backup_name(path, "0009", 4)
    assert theirs.read_text() == "my own notes" and (tmp_path / "target").read_text() == "kept"
    assert backup_name(path, "0009", 2).is_symlink() and backup_name(path, "0009", 3).is_dir()
    con = sqlite3.connect(copy)
    assert con.execute("SELECT version_num FROM alembic_version").fetchone() == ("0009",)
    assert _tables(con) == before
    con.close()
    con = sqlite3.connect(path)
    assert con.execute("SELECT version_num FROM alembic_version").fetchone() == (head(),)
    con.close()
    Store(tmp_path).close()
    assert not backup_name(path, "0009", 5).exists()  # at head now: no new copy
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
