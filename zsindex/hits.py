"""Search hits and the parts of a search that need no database library.

Both ways a query is answered share them: the full path through the store
(search.py, hitgroups.py) and the quick read path of a repeated query
(quickread.py), so their hits are ranked and written the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import UsageError
from .labels import normalise

if TYPE_CHECKING:
    from .vectors import VectorIndex

# A video frame's FAISS id is FRAME_ID_BASE + its row id, far above any image id (see frames.py).
FRAME_ID_BASE = 1 << 40


@dataclass(frozen=True)
class Hit:
    id: int
    path: str
    score: float
    taken_at: datetime | None = None
    camera: str | None = None
    format: str | None = None
    exists: bool = True  # False when the file has gone since it was indexed
    seconds: float | None = None  # a video: time of its best-matching frame (see hitgroups.py)
    also: tuple[str, ...] = ()  # other files of the same shot, with --group-stems

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "path": self.path, "score": round(self.score, 6), "exists": self.exists}
        if self.seconds is not None:
            out["time"] = round(self.seconds, 3)
        if self.also:
            out["also"] = list(self.also)
        return out


def compose(positive: Sequence[np.ndarray], negative: Sequence[np.ndarray], not_weight: float = 0.5) -> np.ndarray:
    """One query vector: mean of positive terms minus not_weight x mean of negative terms, unit length."""
    if not positive:
        raise UsageError("a search needs at least one text or like=IMAGE")
    q = np.mean(np.stack(positive), axis=0)
    if negative:
        q = q - not_weight * np.mean(np.stack(negative), axis=0)
    return normalise(q[None, :])[0]


def top_k(vectors: "VectorIndex", query: np.ndarray, need: int, ids: np.ndarray | None) -> list[tuple[int, float]]:
    """Exact top-`need` (id, score), restricted to ids when given, best first, ties by id."""
    if ids is not None and len(ids) == 0:
        return []
    pool = vectors.ntotal if ids is None else len(ids)
    fetch = min(pool, need + 16)  # a little extra so that ties at the page edge sort the same every time
    if fetch <= 0:
        return []
    scores, found = vectors.search(query[None, :], fetch, ids)
    pairs = [(int(i), float(sc)) for i, sc in zip(found[0], scores[0]) if i >= 0]
    pairs.sort(key=lambda p: (-p[1], p[0]))
    return pairs[:need]


def stored_path(value: str | bytes) -> str:
    """A path as read from the database: a name that is not UTF-8 is stored as its bytes (schema.FsPath)."""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value
