"""Alembic environment for zsindex indexes (SQLite, batch mode for ALTERs)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from zsindex.schema import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    # A plain SQLite engine (the alembic command line) has foreign keys off, as _run requires.
    with engine.connect() as conn:
        _run(conn)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                      compare_type=True)
    if connection.dialect.name == "sqlite" and _changes_schema():
        # Batch mode rebuilds a table (copy, drop, rename): with foreign keys on, the drop cascades and
        # deletes the rows of every table referring to it. zsindex.store.migrate switches them off before
        # its transaction begins (SQLite ignores the pragma inside one); refuse to migrate otherwise.
        if connection.exec_driver_sql("PRAGMA foreign_keys").scalar():
            raise RuntimeError("zsindex migrations must run with SQLite foreign keys off (with them on, a "
                               "table rebuild cascades into deleted rows): use zsindex.store.migrate")
    with context.begin_transaction():
        context.run_migrations()


def _changes_schema() -> bool:
    """Whether this run upgrades or downgrades (not ``alembic check``, ``current`` or ``stamp``)."""
    fn = context.get_context().opts.get("fn")
    return getattr(fn, "__name__", "") in ("upgrade", "downgrade")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
