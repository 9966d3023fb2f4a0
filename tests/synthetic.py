"""Rows as an ingest leaves them, for vectors made up by a test or benchmark (no image files)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import insert

from zsindex import schema as s
from zsindex.store import now


def store_vectors(lib: Any, model_id: int, x: np.ndarray, start: int = 0, path: str = "/lib/{:05d}.jpg") -> None:
    """One indexed image per row of x (ids from start + 1 in a fresh index, content hash = its number), in one
    transaction that bumps the vector generation."""
    stamp = now()
    with lib.store.session() as session:
        session.execute(insert(s.Image), [
            {"path": path.format(start + i), "size": 1, "mtime_ns": 1, "sha256": f"{start + i:064d}",
             "status": s.STATUS_INDEXED, "first_seen": stamp, "last_seen": stamp} for i in range(len(x))])
        session.execute(insert(s.Vector), [
            {"model_id": model_id, "sha256": f"{start + i:064d}", "vector": np.asarray(v, np.float32).tobytes()}
            for i, v in enumerate(x)])
        lib.store.bump_generation(session)
