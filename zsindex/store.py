"""The SQLite store: engine and pragmas, Alembic upgrade on open, unit of work, queries.

SQL is the source of truth: every file's state, every vector and the model
identity live here. The FAISS file is a cache of it (see vectors.py).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from . import schema as s
from .errors import IndexStateError, ModelMismatchError

DB_NAME = "index.sqlite"


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def migrations_dir() -> Path:
    """Inside the wheel: zsindex/migrations; in a checkout: the top-level migrations/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "migrations", here.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise IndexStateError("zsindex is installed without its migrations folder; reinstall it")


def alembic_config(connection: Any = None, url: str | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _set_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers keep working while ingest writes
    cur.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; safe with WAL
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}")
    event.listen(engine, "connect", _set_pragmas)
    return engine


_REVISION_LINE = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*['\"]?([^'\"\s]+)['\"]?", re.M)


def script_head() -> str | None:
    """The head revision, read from the migration files without importing Alembic.

    Alembic and Mako cost a noticeable share of a query's start-up; an index
    already at head needs neither. None when the files do not show exactly one head.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    try:
        for path in (migrations_dir() / "versions").glob("*.py"):
            found: dict[str, str] = {m[1]: m[2] for m in _REVISION_LINE.finditer(path.read_text(encoding="utf-8"))}
            if "revision" in found:
                revisions.add(found["revision"])
                parents.add(found.get("down_revision", "None"))
    except (OSError, IndexStateError):
        return None
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        try:
            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        except DBAPIError:  # no table yet: a new database
            return None


def upgrade(engine: Engine) -> None:
    """Bring the schema to head; refuse a database written by a newer zsindex."""
    current = _current_revision(engine)
    if current is not None and current == script_head():
        return  # already at head: no need to import Alembic
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = alembic_config()
    script = ScriptDirectory.from_config(cfg)
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current is not None:
        try:
            script.get_revision(current)
        except Exception:
            raise IndexStateError(
                f"this index was written by a newer zsindex (schema {current}); upgrade zsindex to open it"
            ) from None
    if current == script.get_current_head():
        return
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Store:
    """One index database. ``session()`` is the unit of work: one transaction per call."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / DB_NAME
        self.engine = make_engine(self.path)
        upgrade(self.engine)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()

    # -- state ---------------------------------------------------------------------------------
    def get_state(self, key: str, default: str | None = None) -> str | None:
        with self.session() as session:
            row = session.get(s.State, key)
            return row.value if row else default

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
        row = session.get(s.State, "generation")
        value = int(row.value) + 1 if row else 1
        session.merge(s.State(key="generation", value=str(value)))
        return value

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
                    f"this index holds {existing.precision} vectors, not {precision}; leave out --precision "
                    f"(the index remembers its own) or build a new index with --index DIR for {precision}.")
            elif existing.identity != identity:
                flags = existing.name + (f" --pretrained {existing.pretrained}" if existing.pretrained else "")
                if existing.name == name and existing.pretrained == pretrained:
                    raise ModelMismatchError(
                        f"the weights of model {flags} changed since this index was built ({existing.identity[:40]}, "
                        f"now {identity[:40]}); its vectors no longer match. Build a new index with --index DIR "
                        f"(or delete this one to start over).")
                raise ModelMismatchError(
                    f"this index holds vectors of model {flags} ({existing.identity[:40]}), not {name} "
                    f"({identity[:40]}). Use --model {flags}, or a new index with --index DIR for the other model."
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
            for part in session.execute(query).partitions(batch):
                ids = np.fromiter((r[0] for r in part), dtype=np.int64, count=len(part))
                vecs = np.frombuffer(b"".join(r[1] for r in part), dtype=np.float32).reshape(len(part), -1)
                yield ids, vecs

    def count_indexed(self, model_id: int) -> int:
        query = (select(func.count()).select_from(s.Image)
                 .join(s.Vector, (s.Vector.sha256 == s.Image.sha256) & (s.Vector.model_id == model_id))
                 .where(s.Image.status == s.STATUS_INDEXED))
        with self.session() as session:
            return int(session.scalar(query) or 0)

    def vectors_by_ids(self, model_id: int, ids: np.ndarray) -> np.ndarray:
        """Exact vectors of these image ids, in the order given (a re-ranking pool: hundreds, not millions)."""
        wanted = [int(i) for i in ids]
        found: dict[int, bytes] = {}
        with self.session() as session:
            for start in range(0, len(wanted), 500):  # SQLite's bound-parameter limit
                found.update(dict(session.execute(
                    select(s.Image.id, s.Vector.vector)
                    .join(s.Vector, (s.Vector.sha256 == s.Image.sha256) & (s.Vector.model_id == model_id))
                    .where(s.Image.id.in_(wanted[start:start + 500]))
                ).all()))
        missing = [i for i in wanted if i not in found]
        if missing:
            raise IndexStateError(f"{len(missing)} vectors of the FAISS file are not in {self.folder / DB_NAME} "
                                  "(the file is stale); run `zsindex rebuild`")
        return np.frombuffer(b"".join(found[i] for i in wanted), dtype=np.float32).reshape(len(wanted), -1)

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
        with self.session() as session:
            rows = session.execute(
                select(s.TextVector.text, s.TextVector.vector).where(
                    s.TextVector.model_id == model_id, s.TextVector.text.in_(texts))
            ).all()
        return {t: np.frombuffer(v, dtype=np.float32) for t, v in rows}

    def cache_texts(self, model_id: int, vectors: dict[str, np.ndarray]) -> None:
        from sqlalchemy.dialects.sqlite import insert

        if not vectors:
            return
        stamp = now()
        with self.session() as session:
            session.execute(
                insert(s.TextVector).on_conflict_do_nothing(),
                [{"model_id": model_id, "text": t, "vector": v.astype(np.float32).tobytes(), "last_used": stamp}
                 for t, v in vectors.items()],
            )

    def stored_vector(self, model_id: int, path: str) -> np.ndarray | None:
        """The vector of an indexed file, found by its path."""
        return self.stored_vectors(model_id, [path]).get(path)

    def stored_vectors(self, model_id: int, paths: list[str]) -> dict[str, np.ndarray]:
        """Vectors of indexed files by path (missing paths are left out)."""
        out: dict[str, np.ndarray] = {}
        with self.session() as session:
            for i in range(0, len(paths), 500):
                out.update((p, np.frombuffer(v, dtype=np.float32)) for p, v in session.execute(
                    select(s.Image.path, s.Vector.vector).join(s.Vector, s.Image.sha256 == s.Vector.sha256).where(
                        s.Image.path.in_(paths[i:i + 500]), s.Image.status == s.STATUS_INDEXED,
                        s.Vector.model_id == model_id)))
        return out
