"""Forgetting: remove the rows of files under given paths (gone or not) from SQL and their vectors from FAISS.

Only rows under the paths given are touched. A stored vector goes only when no
remaining image shares its content; tags go with their images (foreign keys
cascade).
"""

from __future__ import annotations

import contextlib
import os
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


def forget_rows(store: Store, rows: list[Any]) -> tuple[list[int], int]:
    """Delete image rows and the vectors only they used, in one transaction; returns (FAISS ids, vectors)."""
    ids = [r.id for r in rows]
    shas = sorted({r.sha256 for r in rows if r.sha256})
    removed_vectors = 0
    with store.session() as session:
        for i in range(0, len(ids), CHUNK):
            session.execute(delete(s.Image).where(s.Image.id.in_(ids[i:i + CHUNK])))
        for i in range(0, len(shas), CHUNK):
            part = shas[i:i + CHUNK]
            still = set(session.scalars(select(s.Image.sha256).where(s.Image.sha256.in_(part))
                                        .group_by(s.Image.sha256).having(func.count() > 0)))
            gone = [h for h in part if h not in still]
            if gone:
                result = session.execute(delete(s.Vector).where(s.Vector.sha256.in_(gone)))
                removed_vectors += int(getattr(result, "rowcount", 0) or 0)
        if ids:
            store.bump_generation(session)
    return [r.id for r in rows if r.status == s.STATUS_INDEXED], removed_vectors


def forget_paths(lib: Any, paths: Sequence[str | os.PathLike[str]], missing: bool, dry_run: bool) -> ForgetReport:
    """Library.forget: choose the rows, then drop them from SQL and FAISS under the write lock."""
    from .lock import WriteLock

    if not paths and not missing:
        raise UsageError("name the files or folders to forget (paths=), or give missing=True to forget "
                         "every file that no longer exists")
    roots = [os.path.abspath(os.fspath(p)) for p in paths]
    report = ForgetReport(dry_run=dry_run)
    # A dry run only reads, so it needs no lock (and works on a read-only index, as other reading commands do).
    with contextlib.nullcontext() if dry_run else WriteLock(lib.folder):
        rows = chosen_rows(lib.store, roots, missing)
        report.images = len(rows)
        report.indexed = sum(r.status == s.STATUS_INDEXED for r in rows)
        if dry_run or not rows:
            return report
        vectors = lib.vectors(save=True)
        faiss_ids, report.vectors = forget_rows(lib.store, rows)
        if vectors is not None:
            vectors.remove(faiss_ids)
            generation = lib.store.generation()
            vectors.save(lib.folder, generation)
            lib._vectors_generation = generation
    return report
