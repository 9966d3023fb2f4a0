"""Search over the vector index: query composition, SQL filters, exact filtered top-k, paging."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import schema as s
from .errors import UsageError
from .labels import normalise

if TYPE_CHECKING:
    from .vectors import VectorIndex

FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF", "HEIC": "HEIF"}


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


@dataclass(frozen=True)
class Filters:
    """Metadata filters; None means 'any'. Dates compare EXIF date taken, else file time."""

    path: str | None = None  # glob over the full path
    after: datetime | None = None
    before: datetime | None = None
    camera: str | None = None  # substring of "make model", case-insensitive
    format: str | None = None
    tag: str | None = None  # a label the image is tagged with: LABEL (any set) or SET:LABEL
    tag_set: str | None = None  # the label set of tag
    keyword: str | None = None  # a keyword the user gave the image (sidecar, embedded XMP, IPTC)

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.path, self.after, self.before, self.camera, self.format, self.tag,
                                                  self.keyword))


def parse_date(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{name}= takes a date like 2024-06-30 or 2024-06-30T18:00, not {text!r}") from None


def compose(positive: Sequence[np.ndarray], negative: Sequence[np.ndarray], not_weight: float = 0.5) -> np.ndarray:
    """One query vector: mean of positive terms minus not_weight x mean of negative terms, unit length."""
    if not positive:
        raise UsageError("a search needs at least one text or like=IMAGE")
    q = np.mean(np.stack(positive), axis=0)
    if negative:
        q = q - not_weight * np.mean(np.stack(negative), axis=0)
    return normalise(q[None, :])[0]


def _taken() -> Any:
    return func.coalesce(s.Image.taken_at, func.datetime(s.Image.mtime_ns / 1_000_000_000, "unixepoch"))


def filter_ids(session: Session, filters: Filters) -> np.ndarray:
    """Ids of indexed images that pass the filters."""
    query = select(s.Image.id).where(s.Image.status == s.STATUS_INDEXED)
    if filters.path:
        query = query.where(s.Image.path.op("GLOB")(filters.path))
    if filters.after:
        query = query.where(_taken() >= filters.after.strftime("%Y-%m-%d %H:%M:%S"))
    if filters.before:
        query = query.where(_taken() < filters.before.strftime("%Y-%m-%d %H:%M:%S"))
    if filters.camera:
        camera = func.coalesce(s.Image.camera_make, "") + " " + func.coalesce(s.Image.camera_model, "")
        query = query.where(camera.ilike(f"%{filters.camera}%"))
    if filters.format:
        fmt = filters.format.upper().lstrip(".")
        query = query.where(s.Image.format == FORMAT_ALIASES.get(fmt, fmt))
    if filters.tag:
        from .tagging import tagged_ids_query

        query = query.where(s.Image.id.in_(tagged_ids_query(filters.tag, filters.tag_set)))
    if filters.keyword:
        from .keywords import keyword_ids_query

        query = query.where(s.Image.id.in_(keyword_ids_query(filters.keyword)))
    return np.fromiter(session.scalars(query), dtype=np.int64)


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


def hits_for(session: Session, pairs: list[tuple[int, float]]) -> list[Hit]:
    if not pairs:
        return []
    rows = {r.id: r for r in session.execute(
        select(s.Image.id, s.Image.path, s.Image.taken_at, s.Image.camera_make, s.Image.camera_model,
               s.Image.format).where(s.Image.id.in_([i for i, _ in pairs]))
    )}
    out = []
    for i, score in pairs:
        r = rows.get(i)
        if r is not None:
            camera = " ".join(x for x in (r.camera_make, r.camera_model) if x) or None
            out.append(Hit(i, r.path, score, r.taken_at, camera, r.format, os.path.exists(r.path)))
    return out

