"""Forgetting: remove the rows of files under given paths (gone or not) from SQL and their vectors from FAISS.

Only rows under the paths given are touched. A stored vector goes only when no
remaining image shares its content (a video's frame vectors: no remaining video
shares them); tags and frames go with their images (foreign keys cascade). A
dry run reports the plan a real run would carry out (see ``plan``).
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select

from . import schema as s
from .errors import UsageError
from .store import Store

CHUNK = 500


@dataclass
class ForgetReport:
    images: int = 0  # image rows removed (or that would be, with dry_run)
    indexed: int = 0  # of which were searchable (their vectors left FAISS)
    vectors: int = 0  # stored vectors no other image shares, removed with them
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"forgotten": self.images, "indexed": self.indexed, "vectors_removed": self.vectors,
                "dry_run": self.dry_run}


def under(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def chosen_rows(store: Store, roots: Sequence[str], missing: bool) -> list[Any]:
    """(id, path, status, sha256) of the rows to forget: under roots (all rows if none), and gone if missing."""
    with store.session() as session:
        rows = list(session.execute(select(s.Image.id, s.Image.path, s.Image.status, s.Image.sha256)).all())
    if roots:
        rows = [r for r in rows if under(r.path, roots)]
    if missing:
        rows = [r for r in rows if not os.path.lexists(r.path)]
    return rows


@dataclass
class Plan:
    """Exactly what forgetting these rows removes: computed once, reported by a dry run, carried out by a real one."""

    rows: list[Any]
    faiss_ids: list[int]  # searchable images, and the frames of searchable videos (FRAME_ID_BASE + frame id)
    vector_keys: list[str]  # stored vector keys (image content, video frames) that nothing left uses
    vectors: int  # stored vector rows under those keys (one per model)


def _unshared(session: Any, column: Any, chosen: Counter[str]) -> list[str]:
    """Keys of ``chosen`` (key -> uses among the rows to forget) that no other row of column's table uses."""
    out = []
    keys = sorted(chosen)
    for i in range(0, len(keys), CHUNK):
        part = keys[i:i + CHUNK]
        uses = dict(session.execute(select(column, func.count()).where(column.in_(part)).group_by(column)).all())
        out += [k for k in part if uses.get(k, 0) <= chosen[k]]
    return out


def plan(store: Store, rows: list[Any]) -> Plan:
    """What forgetting these image rows removes: their FAISS entries (a video's are its frames') and the stored
    vectors no remaining image or frame shares."""
    from .frames import FRAME_ID_BASE

    ids = [r.id for r in rows]
    indexed = {r.id for r in rows if r.status == s.STATUS_INDEXED}
    with store.session() as session:
        frames: list[Any] = []
        for i in range(0, len(ids), CHUNK):
            frames += session.execute(select(s.Frame.id, s.Frame.image_id, s.Frame.sha256)
                                      .where(s.Frame.image_id.in_(ids[i:i + CHUNK]))).all()
        keys = _unshared(session, s.Image.sha256, Counter(r.sha256 for r in rows if r.sha256))
        keys += _unshared(session, s.Frame.sha256, Counter(f.sha256 for f in frames))
        vectors = 0
        for i in range(0, len(keys), CHUNK):
            vectors += session.scalar(select(func.count()).select_from(s.Vector)
                                      .where(s.Vector.sha256.in_(keys[i:i + CHUNK]))) or 0
    faiss_ids = sorted(indexed) + sorted(FRAME_ID_BASE + f.id for f in frames if f.image_id in indexed)
    return Plan(rows, faiss_ids, keys, int(vectors))


def forget_rows(store: Store, chosen: Plan) -> None:
    """Delete the plan's image rows (their frames and tags cascade) and vectors, in one transaction."""
    ids = [r.id for r in chosen.rows]
    with store.session() as session:
        for i in range(0, len(ids), CHUNK):
            session.execute(delete(s.Image).where(s.Image.id.in_(ids[i:i + CHUNK])))
        for i in range(0, len(chosen.vector_keys), CHUNK):
            session.execute(delete(s.Vector).where(s.Vector.sha256.in_(chosen.vector_keys[i:i + CHUNK])))
        if ids:
            store.bump_generation(session)


def forget_paths(lib: Any, paths: Sequence[str | os.PathLike[str]], missing: bool, dry_run: bool) -> ForgetReport:
    """Library.forget: choose the rows, then drop them from SQL and FAISS under the write lock."""
    from .lock import WriteLock

    if not paths and not missing:
        raise UsageError("name the files or folders to forget (paths=), or give missing=True to forget "
                         "every file that no longer exists")
    from .scan import index_names

    # The index names files by their real paths: a path given through a symbolic link (even one whose target
    # is gone) means those; the name as given counts too (rows named so by an index from before)
    roots = sorted({n for p in paths for n in index_names(p)})
    report = ForgetReport(dry_run=dry_run)
    # A dry run only reads, so it needs no lock (and works on a read-only index, as other reading commands do).
    with contextlib.nullcontext() if dry_run else WriteLock(lib.folder):
        rows = chosen_rows(lib.store, roots, missing)
        report.images = len(rows)
        report.indexed = sum(r.status == s.STATUS_INDEXED for r in rows)
        if not rows:
            return report
        chosen = plan(lib.store, rows)  # the same plan for a dry run and a real one: the same report
        report.vectors = chosen.vectors
        if dry_run:
            return report
        vectors = lib.vectors(save=True)
        forget_rows(lib.store, chosen)
        if vectors is not None:
            vectors.remove(chosen.faiss_ids)
            generation = lib.store.generation()
            vectors.save(lib.folder, generation, lib.store.vectors_id())
            lib._vectors_generation = generation
    return report
