"""Alembic: blank database to head, no drift between models and migrations, newer schema refused."""

import sqlite3

import pytest
from alembic import command
from alembic.script import ScriptDirectory

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
    from zsindex.store import make_engine

    engine = make_engine(tmp_path / "index.sqlite")
    with engine.begin() as conn:
        command.upgrade(alembic_config(connection=conn), "0001")
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
