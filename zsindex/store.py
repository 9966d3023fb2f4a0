"""The SQLite store: engine and pragmas, Alembic upgrade on open, unit of work, queries.

SQL is the source of truth: every file's state, every vector and the model
identity live here. The FAISS file is a cache of it (see vectors.py).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import urllib.parse
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, create_engine, event, func, pool, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from . import schema as s
from .errors import (
    IndexCorruptError,
    IndexLockedError,
    IndexStateError,
    ModelMismatchError,
    ZsindexError,
    plural,
    shown,
)
from .faults import (
    check_database_files,
    damaged_vectors_error,
    database_fault,
    empty_database_error,
    file_fault,
    folder_writable,
    read_only_error,
)
from .schema_version import migrations_dir, script_head  # noqa: F401 - importable from here too

DB_NAME = "index.sqlite"
STORE_ID = "store_id"  # state key: a database's own id, which a server store's cache folders name
# State key: a random id drawn anew with every generation, so that (generation, vectors_id) names one state of
# the indexed vectors of one database: the FAISS file and the row file record it, and a cache copied from another
# index (or from a copy of this one that has changed since) does not match. An index made before it has none
# until its next change.
VECTORS_ID = "vectors_id"


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def alembic_config(connection: Any = None, url: str | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


BUSY_TIMEOUT_MS = 30_000  # how long a writer waits for another one before "database is locked"


def _set_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers keep working while ingest writes
    cur.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; safe with WAL
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_MS)}")
    cur.close()


def make_engine(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}")
    event.listen(engine, "connect", _set_pragmas)
    return engine


def _read_only_engine(path: Path) -> Engine:
    """An engine that never writes: for an index folder this process may not change.

    Opening in WAL mode writes (it creates the -wal and -shm files), so a
    read-only folder is opened with ``mode=ro``; when SQLite cannot even do that
    (no -shm file and no right to create one) the file is opened as immutable,
    which is exact when no -wal file holds uncommitted pages, as in a folder
    nobody can write.
    """
    base = "file:" + urllib.parse.quote(str(path))
    uri = base + "?mode=ro"
    try:
        probe = sqlite3.connect(uri, uri=True)
        try:
            probe.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            probe.close()
    except sqlite3.OperationalError:
        wal = path.with_name(path.name + "-wal")
        if not wal.exists() or wal.stat().st_size == 0:  # no changes waiting outside the file itself
            uri = base + "?immutable=1"
    except sqlite3.DatabaseError:
        pass  # a damaged file: the first query says so, through database_fault

    def connect() -> sqlite3.Connection:
        con = sqlite3.connect(uri, uri=True, check_same_thread=False)
        con.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_MS)}")
        con.execute("PRAGMA query_only=ON")
        return con

    return create_engine("sqlite://", creator=connect, poolclass=pool.QueuePool)


def make_server_engine(url: str) -> Engine:
    """A database server (PostgreSQL) holding the store; the index folder then keeps only the FAISS cache."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        engine = create_engine(url, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise IndexStateError(f"cannot use the database URL {_safe_url(url)}: {exc}. Give an SQLAlchemy URL such as "
                              "postgresql+psycopg://user@host/dbname (pip install 'zsindex[postgres]')") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _set_pragmas)
    return engine


def _safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparseable URL)"


def insert_ignoring_duplicates(session: Session, table: Any) -> Any:
    """An INSERT that skips rows whose unique key exists, in the session's SQL dialect."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


def _current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        try:
            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        except DBAPIError:  # no table yet: a new database
            return None


def upgrade(engine: Engine, path: Path | None = None, read_only: bool = False) -> None:
    """Bring the schema to head; refuse a database written by a newer zsindex, or not by zsindex at all.

    ``path``: the SQLite file of an index folder, which holds zsindex's schema from the start (create_database
    makes it); without a path (a database server), an empty database is given the schema.
    """
    current = _current_revision(engine)
    if current is not None and current == script_head():
        return  # already at head: no need to import Alembic
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = alembic_config()
    script = ScriptDirectory.from_config(cfg)
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        from sqlalchemy import inspect

        tables = len(inspect(conn).get_table_names())
    where = path or "this database"
    if current is None and tables:
        # Another program's SQLite file: creating zsindex tables in it would change what zsindex did not make.
        raise IndexStateError(f"{shown(where)} is a database that zsindex did not make; zsindex leaves it "
                              f"alone: choose another index folder (folder=) or another database (db=)")
    if current is None and path is not None:
        # An index folder's database is made complete under another name (create_database): one without any
        # table was emptied or cut short. Reading must not write a schema into it, nor may a writer.
        raise empty_database_error(path)
    if current is not None:
        try:
            script.get_revision(current)
        except Exception:
            raise IndexStateError(
                f"this index was written by a newer zsindex (schema {current}); upgrade zsindex to open it"
            ) from None
    if current == script.get_current_head():
        return
    if read_only:
        folder = path.parent if path else Path(".")
        what = "create an index there" if current is None else f"upgrade the schema of {shown(where)} to this zsindex"
        raise read_only_error(folder, what)
    if path is not None and current is not None:
        backup_before_upgrade(path, current)
    migrate(engine, "head", path=path)


def backup_name(path: Path, revision: str, n: int = 1) -> Path:
    return path.with_name(f"{path.name}.schema-{revision}{'' if n == 1 else f'-{n}'}.bak")


def backup_before_upgrade(path: Path, revision: str) -> Path:
    """Copy an index's database, as it is at schema ``revision``, beside it before its schema is upgraded
    (``index.sqlite.schema-0009.bak``): an upgrade that passes its checks but mangles rows can still be
    undone by hand. The copy is made under a private name with SQLite's backup API (a consistent snapshot,
    WAL included), then given the first free name of that form (``...schema-0009-2.bak``, ...: whatever has
    one, a file of the user's or a link, is never replaced); when it cannot be made, nothing is upgraded."""
    from .safewrite import create_new

    tmp = path.with_name(f".{backup_name(path, revision).name}.{os.getpid()}.tmp")  # one per process
    try:
        os.close(create_new(tmp, 0o600))  # a new regular file: never written through a link
        src, dst = sqlite3.connect(path), sqlite3.connect(tmp)
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        for n in range(1, 1000):
            target = backup_name(path, revision, n)
            if os.path.lexists(target):
                continue
            try:
                os.link(tmp, target)  # never replaces a name taken meanwhile
            except FileExistsError:
                continue
            except OSError:  # a file system without hard links: a name checked free just before
                os.rename(tmp, target)
            return target
        raise OSError(17, "every backup name is taken")
    except (OSError, sqlite3.Error) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise IndexStateError(f"cannot copy {shown(path)} beside it before upgrading its schema ({reason}); nothing "
                              f"was changed: make room for a copy of the file and run the command again") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def migrate(engine: Engine, revision: str = "head", path: Path | None = None, down: bool = False) -> None:
    """Run Alembic's migrations to ``revision`` (up, or down with ``down=True``) in one transaction.

    On SQLite, Alembic's batch mode rebuilds a table to alter it (copy, drop, rename); with foreign keys
    on, dropping the old table would cascade (ON DELETE CASCADE) and delete every row that refers to it:
    adding a column to ``label_sets`` emptied ``labels`` and ``tags``. So SQLite migrations run with
    foreign keys off. SQLite ignores that pragma inside a transaction, so it is set first, and the
    transaction is then begun explicitly (``BEGIN IMMEDIATE``), so that the DDL is inside it too: a
    failure rolls everything back and leaves the old file as it was. Before committing,
    ``PRAGMA foreign_key_check`` must find no row whose parent is missing.
    """
    from alembic import command

    cfg = alembic_config()
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(cfg, revision)
        return
    with engine.connect() as conn:
        dbapi: Any = conn.connection.driver_connection
        isolation = dbapi.isolation_level
        dbapi.isolation_level = None  # the driver begins no transaction by itself: BEGIN below is ours
        try:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            if conn.exec_driver_sql("PRAGMA foreign_keys").scalar():
                raise IndexStateError("cannot switch off foreign keys to upgrade the schema safely")
            conn.commit()  # ends SQLAlchemy's autobegun transaction (no SQLite one is open)
            with conn.begin():
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                cfg.attributes["connection"] = conn
                (command.downgrade if down else command.upgrade)(cfg, revision)
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    tables = sorted({str(r[0]) for r in broken})
                    raise IndexStateError(
                        f"upgrading the schema of {path or 'this database'} would leave "
                        f"{plural(len(broken), 'row')} in {', '.join(tables)} referring to rows that do not "
                        f"exist; nothing was changed (the file keeps its old schema): copy the index folder "
                        f"and report this")
        finally:
            try:
                if conn.in_transaction():
                    conn.rollback()
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()
            finally:
                dbapi.isolation_level = isolation


def _check_ours(path: Path) -> None:
    """Refuse an SQLite file without zsindex's schema, or a damaged one, without writing to it."""
    try:
        con = sqlite3.connect(path)
        try:
            names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()
    except sqlite3.Error as e:
        fault = database_fault(e, path)
        if isinstance(fault, IndexCorruptError):
            raise fault from None
        return  # a full disk, an I/O error: opening it meets the same and says so, or falls back to reading
    if names and "alembic_version" not in names:
        raise IndexStateError(f"{shown(path)} is an SQLite database that zsindex did not make; zsindex leaves it "
                              f"alone: choose another index folder (folder=)")
    if not names:
        raise empty_database_error(path)


def create_database(path: Path) -> None:
    """Make a new index database at path, complete or not at all.

    The schema is written into a new file of a private name beside it, which is then linked to path only
    when complete (a hard link, which never replaces a file of that name: when another process made its own
    index.sqlite meanwhile, that one is kept and this one dropped). So an index.sqlite without zsindex's
    schema is never one being made: a reader that finds one (0 bytes, no table) knows it is damaged, and
    neither it nor a writer puts a schema into it.
    """
    import secrets

    from .safewrite import create_new

    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.zsindex-tmp")
    try:
        os.close(create_new(tmp))
    except OSError as e:
        raise file_fault(e, path, f"create {shown(path)}") from None
    try:
        engine = create_engine(f"sqlite:///{tmp}")
        event.listen(engine, "connect", _set_new_pragmas)
        try:
            migrate(engine, "head", path=path)
        except DBAPIError as e:
            raise database_fault(e, path) from None
        finally:
            engine.dispose()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: the caller opens (and checks) that one
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
                raise file_fault(e, path, f"create {shown(path)}") from None
            if not os.path.lexists(path):  # a file system without hard links: a rename, checked just before
                os.rename(tmp, path)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _set_new_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """A database being made: foreign keys and patience as usual; its journal stays beside the private file
    (WAL mode is switched on when the finished file is opened under its own name)."""
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_MS)}")
    cur.close()


CHUNK = 500  # keys per IN (...): under SQLite's bound-parameter limit


def unpack_vectors(blobs: list[bytes], dim: int, where: str, server: bool = False) -> np.ndarray:
    """(len(blobs), dim) float32 vectors from stored blobs; a blob of another length than the model's
    dimension is damage of the database, named as such (never reshaped into wrong vectors)."""
    size = 4 * dim
    bad = [len(b) for b in blobs if len(b) != size]
    if bad:
        raise damaged_vectors_error(where, len(bad), bad, dim, server)
    return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dim)


def model_dim(session: Session, model_id: int) -> int:
    return int(session.scalar(select(s.Model.dim).where(s.Model.id == model_id)) or 0)


def by_key(session: Session, model_id: int, rows: Any) -> dict[Any, bytes]:
    """key -> stored vector, for (key, sha256) rows found by their own index (ids, paths).

    The vectors are then looked up by (model, hash), the vectors table's unique
    index. One query joining the two would let SQLite's planner, which cannot
    see that model_id matches every vector of a one-model index, read the whole
    vectors table instead (3 s for 100 re-ranked ids at 100,000 vectors).
    """
    keys: dict[str, list[Any]] = {}
    for key, sha in rows:
        if sha is not None:
            keys.setdefault(sha, []).append(key)
    hashes = list(keys)
    out: dict[Any, bytes] = {}
    for i in range(0, len(hashes), CHUNK):
        for sha, blob in session.execute(select(s.Vector.sha256, s.Vector.vector).where(
                s.Vector.model_id == model_id, s.Vector.sha256.in_(hashes[i:i + CHUNK]))):
            out.update(dict.fromkeys(keys[sha], blob))
    return out


def file_changed(path: str, size: int, mtime_ns: int) -> bool | None:
    """Whether an indexed file changed on disk since it was indexed (another size or modification time, or
    no longer a plain file); None when it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size != size or st.st_mtime_ns != mtime_ns or not os.path.isfile(path)


class Store:
    """One index database. ``session()`` is the unit of work: one transaction per call."""

    def __init__(self, folder: Path, url: str | None = None) -> None:
        self.folder = folder
        self.path = folder / DB_NAME
        self.url = url  # a database server's URL; None for the folder's SQLite file
        self.read_only = False
        self.write_fault: ZsindexError | None = None  # why this store was opened read-only, when not for rights
        if url:
            self.engine = self._open_server(url)
            return
        check_database_files(folder, DB_NAME)  # a folder, a pipe or a dangling link in a database file's place
        sidecars = tuple(folder / (DB_NAME + x) for x in ("", "-wal", "-shm"))
        if not os.path.lexists(self.path):
            if folder.is_dir() and not folder_writable(folder):
                raise read_only_error(folder, f"create an index in {shown(folder)}")
            create_database(self.path)  # whole, under its name only when complete
        # A folder this process may not write is opened read-only, so that reading commands still work.
        self.read_only = not folder_writable(folder, sidecars)
        if not self.read_only:
            # Before WAL mode is switched on, which would change another program's file (or an emptied one).
            _check_ours(self.path)
        try:
            self.engine = self._open(self.read_only)
        except IndexStateError as fault:
            if self.read_only or not self.path.exists() or isinstance(fault, (IndexCorruptError, IndexLockedError)):
                raise
            # Opening for writing failed (a full disk, an I/O error): reading may still work.
            try:
                self.engine = self._open(read_only=True)
            except ZsindexError:
                raise fault from None
            self.read_only, self.write_fault = True, fault

    def _open(self, read_only: bool) -> Engine:
        engine = _read_only_engine(self.path) if read_only else make_engine(self.path)
        try:
            upgrade(engine, self.path, read_only)
        except DBAPIError as e:
            engine.dispose()
            raise database_fault(e, self.path) from None
        except BaseException:
            engine.dispose()
            raise
        return engine

    @staticmethod
    def _open_server(url: str) -> Engine:
        from sqlalchemy.exc import OperationalError

        engine = make_server_engine(url)
        try:
            upgrade(engine)
        except OperationalError as exc:
            engine.dispose()
            raise IndexStateError(f"cannot reach the database {_safe_url(url)}: {exc.orig}; check the URL "
                                  "(db=, $ZSINDEX_DB) and that the server is running") from None
        except DBAPIError as exc:
            engine.dispose()
            raise database_fault(exc, Path(DB_NAME), _safe_url(url)) from None
        return engine

    def write_lock(self) -> Any:
        """The one-writer lock: a file lock for SQLite, a PostgreSQL advisory lock across machines."""
        from .lock import ServerLock, WriteLock

        if self.url and self.engine.dialect.name == "postgresql":
            return ServerLock(self.engine, self.folder)
        return WriteLock(self.folder)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                yield session
        except DBAPIError as e:
            raise database_fault(e, self.path, _safe_url(self.url) if self.url else None) from None

    def unpack(self, blobs: list[bytes], dim: int) -> np.ndarray:
        """``unpack_vectors`` naming this store's database."""
        return unpack_vectors(blobs, dim, self.where, server=self.url is not None)

    @property
    def where(self) -> str:
        """The database, for messages: the server's URL without its password, or the SQLite file's path."""
        return _safe_url(self.url) if self.url else shown(self.path)

    def close(self) -> None:
        self.engine.dispose()

    # -- state ---------------------------------------------------------------------------------
    def get_state(self, key: str, default: str | None = None) -> str | None:
        with self.session() as session:
            row = session.get(s.State, key)
            return row.value if row else default

    def store_id(self) -> str:
        """This database's own random id, made once (the first caller's wins, on every machine)."""
        import uuid

        found = self.get_state(STORE_ID)
        if found is None:
            with self.session() as session:
                session.execute(insert_ignoring_duplicates(session, s.State.__table__).values(
                    key=STORE_ID, value=uuid.uuid4().hex))
            found = self.get_state(STORE_ID)
        return str(found)

    @staticmethod
    def set_state(session: Session, key: str, value: str) -> None:
        session.merge(s.State(key=key, value=value))

    def generation(self, session: Session | None = None) -> int:
        """The vector generation: bumped by every commit that changes which vectors are indexed."""
        if session is None:
            return int(self.get_state("generation", "0") or 0)
        row = session.get(s.State, "generation")
        return int(row.value) if row else 0

    @staticmethod
    def bump_generation(session: Session) -> int:
        import uuid

        row = session.get(s.State, "generation")
        value = int(row.value) + 1 if row else 1
        session.merge(s.State(key="generation", value=str(value)))
        session.merge(s.State(key=VECTORS_ID, value=uuid.uuid4().hex))  # a new state of the vectors
        return value

    def vectors_id(self, session: Session | None = None) -> str | None:
        """The random id of the current generation (``VECTORS_ID``); None for an index not changed since
        it was made by a version without it."""
        if session is None:
            return self.get_state(VECTORS_ID)
        row = session.get(s.State, VECTORS_ID)
        return row.value if row else None

    def add_vectors_id(self) -> None:
        """Give an index made before ``VECTORS_ID`` its id (a writer, under the write lock)."""
        import uuid

        if self.vectors_id() is None:
            with self.session() as session:
                self.set_state(session, VECTORS_ID, uuid.uuid4().hex)

    # -- model ---------------------------------------------------------------------------------
    def model(self) -> s.Model | None:
        with self.session() as session:
            return session.scalars(select(s.Model)).first()

    def bind_model(self, identity: str, name: str, pretrained: str | None, dim: int, precision: str | None = None,
                   runtime: str | None = None) -> s.Model:
        """Record the index's model on first use; refuse any other (or another precision) afterwards."""
        with self.session() as session:
            existing = session.scalars(select(s.Model)).first()
            if existing is None:
                existing = s.Model(identity=identity, name=name, pretrained=pretrained, dim=dim, created_at=now(),
                                   precision=precision or "fp32", runtime=runtime)
                session.add(existing)
                session.flush()
            elif existing.identity == identity and precision and precision != existing.precision:
                raise ModelMismatchError(
                    f"this index holds {existing.precision} vectors, not {precision}; leave out precision= "
                    f"(the index remembers its own) or build a new index (another folder=) for {precision}.")
            elif existing.identity != identity:
                flags = existing.name + (f" pretrained={existing.pretrained}" if existing.pretrained else "")
                if existing.name == name and existing.pretrained == pretrained:
                    raise ModelMismatchError(
                        f"the weights of model {flags} changed since this index was built ({existing.identity[:40]}, "
                        f"now {identity[:40]}); its vectors no longer match. Build a new index with folder=DIR "
                        f"(or delete this one to start over).")
                raise ModelMismatchError(
                    f"this index holds vectors of model {flags} ({existing.identity[:40]}), not {name} "
                    f"({identity[:40]}). Use model={flags}, or a new index with folder=DIR for the other model."
                )
            return existing

    # -- vectors -------------------------------------------------------------------------------
    def indexed_vectors(self, model_id: int, batch: int = 50_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors) of every indexed image, in chunks, for rebuilding FAISS."""
        query = (
            select(s.Image.id, s.Vector.vector)
            .join(s.Vector, (s.Vector.sha256 == s.Image.sha256) & (s.Vector.model_id == model_id))
            .where(s.Image.status == s.STATUS_INDEXED)
            .order_by(s.Image.id)
            .execution_options(yield_per=batch)
        )
        with self.session() as session:
            dim = model_dim(session, model_id)
            for part in session.execute(query).partitions(batch):
                ids = np.fromiter((r[0] for r in part), dtype=np.int64, count=len(part))
                yield ids, self.unpack([r[1] for r in part], dim)
            from .frames import indexed_vectors as frame_vectors

            yield from frame_vectors(session, model_id, batch, self.unpack)  # videos: one vector per sampled frame

    def count_indexed(self, model_id: int) -> int:
        query = (select(func.count()).select_from(s.Image)
                 .join(s.Vector, (s.Vector.sha256 == s.Image.sha256) & (s.Vector.model_id == model_id))
                 .where(s.Image.status == s.STATUS_INDEXED))
        from .frames import count_indexed as frames_indexed

        with self.session() as session:
            return int(session.scalar(query) or 0) + frames_indexed(session, model_id)  # videos count their frames

    def vectors_by_ids(self, model_id: int, ids: np.ndarray) -> np.ndarray:
        """Exact vectors of these image ids, in the order given (a re-ranking pool: hundreds, not millions).

        One statement per chunk of ids, on the connection (no ORM layer): it runs once per search
        of a compressed index. Each id's vector is a scalar subquery by (model, hash), the vectors
        table's unique index, so no planner can choose to read the whole table instead (see by_key).
        """
        from .frames import FRAME_ID_BASE, vector_blobs

        wanted = [int(i) for i in ids]
        images = [i for i in wanted if i < FRAME_ID_BASE]
        vector = (select(s.Vector.vector).where(s.Vector.model_id == model_id, s.Vector.sha256 == s.Image.sha256)
                  .correlate(s.Image).scalar_subquery())
        found: dict[int, bytes] = {}
        with self.session() as session:
            dim = model_dim(session, model_id)
            conn = session.connection()
            for start in range(0, len(images), CHUNK):
                found.update((i, blob) for i, blob in conn.execute(
                    select(s.Image.id, vector).where(s.Image.id.in_(images[start:start + CHUNK]))) if blob is not None)
            if len(images) < len(wanted):
                found.update(vector_blobs(session, model_id, wanted))  # frames of videos (ids above FRAME_ID_BASE)
        missing = [i for i in wanted if i not in found]
        if missing:
            stale = plural(len(missing), 'vector of the FAISS file is', 'vectors of the FAISS file are')
            raise IndexStateError(f"{stale} not in {shown(self.where)} "
                                  "(the file is stale); run Library.rebuild()")
        return self.unpack([found[i] for i in wanted], dim)

    def counts_by_status(self) -> dict[str, int]:
        with self.session() as session:
            rows = session.execute(select(s.Image.status, func.count()).group_by(s.Image.status)).all()
        return {status: n for status, n in rows}

    def has_indexed(self) -> bool:
        with self.session() as session:
            return session.scalar(select(s.Image.id).where(s.Image.status == s.STATUS_INDEXED).limit(1)) is not None

    def last_run(self) -> s.IngestRun | None:
        with self.session() as session:
            return session.scalars(select(s.IngestRun).order_by(s.IngestRun.id.desc()).limit(1)).first()

    def errors(self) -> list[tuple[str, str]]:
        with self.session() as session:
            rows = session.execute(
                select(s.Image.path, s.Image.error).where(s.Image.status == s.STATUS_ERROR).order_by(s.Image.path)
            ).all()
        return [(p, e or "") for p, e in rows]

    # -- query text cache ----------------------------------------------------------------------
    def cached_texts(self, model_id: int, texts: list[str]) -> dict[str, np.ndarray]:
        """Cached query vectors of these texts; a text that is not UTF-8 (no database can hold it) is not there."""
        from .output import is_utf8

        texts = [t for t in texts if is_utf8(t)]
        if not texts:
            return {}
        with self.session() as session:
            dim = model_dim(session, model_id)
            rows = session.execute(
                select(s.TextVector.text, s.TextVector.vector).where(
                    s.TextVector.model_id == model_id, s.TextVector.text.in_(texts))
            ).all()
        # A cached vector of the wrong length (damage) is a cache miss: the text is embedded again.
        return {t: np.frombuffer(v, dtype=np.float32) for t, v in rows if len(v) == 4 * dim}

    def cache_texts(self, model_id: int, vectors: dict[str, np.ndarray], wait_ms: int | None = None) -> bool:
        """Remember query vectors. With wait_ms, give up (False) rather than wait longer for another
        writer (a long tag run), since the cache only saves the next identical query some work.
        A read-only index just goes without (False)."""
        from sqlalchemy.exc import OperationalError

        from .output import is_utf8

        vectors = {t: v for t, v in vectors.items() if is_utf8(t)}  # a text no database can hold: not cached
        if not vectors or self.read_only:
            return not vectors
        stamp = now()
        rows = [{"model_id": model_id, "text": t, "vector": v.astype(np.float32).tobytes(), "last_used": stamp}
                for t, v in vectors.items()]
        if wait_ms is None or self.engine.dialect.name != "sqlite":  # a server's writers do not block readers
            try:
                with self.session() as session:
                    session.execute(insert_ignoring_duplicates(session, s.TextVector), rows)
            except IndexStateError as fault:
                if isinstance(fault, (IndexCorruptError, IndexLockedError)):
                    raise
                return False  # a full disk, a quota, an I/O error: the query is answered, not cached
            return True
        from sqlalchemy.dialects.sqlite import insert

        with self.engine.connect() as conn:
            conn.exec_driver_sql(f"PRAGMA busy_timeout={int(wait_ms)}")
            conn.commit()
            try:
                conn.execute(insert(s.TextVector).on_conflict_do_nothing(), rows)
                conn.commit()
                return True
            except OperationalError:
                conn.rollback()
                return False
            finally:
                conn.exec_driver_sql("PRAGMA busy_timeout=30000")  # the pooled connection's usual patience
                conn.commit()

    def stored_vector(self, model_id: int, path: str) -> np.ndarray | None:
        """The vector of an indexed file, found by its path."""
        return self.stored_vectors(model_id, [path]).get(path)

    def stored_vectors(self, model_id: int, paths: list[str]) -> dict[str, np.ndarray]:
        """Vectors of indexed files by path (missing paths are left out).

        A file that changed on disk since it was indexed (another size or modification time) is left
        out too, so the caller embeds what the file holds now rather than what it held; a file that is
        gone keeps its stored vector, the only one there is.
        """
        out: dict[str, bytes] = {}
        with self.session() as session:
            dim = model_dim(session, model_id)
            for i in range(0, len(paths), CHUNK):
                rows = session.execute(
                    select(s.Image.path, s.Image.sha256, s.Image.size, s.Image.mtime_ns).where(
                        s.Image.path.in_(paths[i:i + CHUNK]), s.Image.status == s.STATUS_INDEXED)).all()
                out.update(by_key(session, model_id, [(r.path, r.sha256) for r in rows
                                                      if not file_changed(r.path, r.size, r.mtime_ns)]))
        return dict(zip(out, self.unpack(list(out.values()), dim)))
