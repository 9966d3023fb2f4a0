"""Search hits that stand for more than one vector: a video once (at its best frame), a shot once.

A video's frames each have a vector, so a query can match several frames of
one video: the video is returned once, with the time of its best frame. With
``group_stems``, files of one shot (same folder, same name before the
extension, e.g. IMG_1234.CR2 and IMG_1234.JPG) are one hit, the best scoring
file first and the others listed in ``also``.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import frames
from . import schema as s
from .search import Hit, hits_for, top_k

if TYPE_CHECKING:
    from .vectors import VectorIndex


def stem_key(path: str) -> tuple[str, str]:
    return os.path.dirname(path), os.path.splitext(os.path.basename(path))[0].casefold()


def _collapse(session: Session, pairs: list[tuple[int, float]]) -> list[tuple[int, float, float | None]]:
    """(image id, score, frame time) best first, each image once."""
    owner = frames.owners(session, (i for i, _ in pairs))
    seen: set[int] = set()
    out: list[tuple[int, float, float | None]] = []
    for fid, score in pairs:
        image_id, sec = owner.get(fid, (fid, None))
        if image_id not in seen and image_id < frames.FRAME_ID_BASE:
            seen.add(image_id)
            out.append((image_id, score, sec))
    return out


def _siblings(session: Session, path: str) -> list[str]:
    """Indexed files of the same shot as path (same folder, same name before the extension)."""
    folder, _ = stem_key(path)
    prefix = os.path.join(folder, os.path.splitext(os.path.basename(path))[0])
    rows = session.scalars(select(s.Image.path).where(
        s.Image.path >= prefix, s.Image.path < prefix + chr(0x10FFFF), s.Image.status == s.STATUS_INDEXED))
    return [p for p in rows if p != path and stem_key(p) == stem_key(path)]


def best_hits(session: Session, vectors: "VectorIndex", query: np.ndarray, offset: int, k: int,
              ids: np.ndarray | None, group_stems: bool = False) -> list[Hit]:
    """Hits offset..offset+k: one per image or video, and one per shot with ``group_stems``."""
    if ids is not None:
        ids = frames.with_frames(session, ids)
    pool = vectors.ntotal if ids is None else len(ids)
    need = offset + k
    fetch = need
    while True:
        pairs = top_k(vectors, query, fetch, ids)
        found = _collapse(session, pairs)
        if group_stems:
            firsts: dict[tuple[str, str], tuple[int, float, float | None]] = {}
            paths = {i: p for i, p in session.execute(select(s.Image.id, s.Image.path)
                                                      .where(s.Image.id.in_([i for i, _, _ in found])))}
            for item in found:
                firsts.setdefault(stem_key(paths[item[0]]), item)
            found = list(firsts.values())
        if len(found) >= need or fetch >= pool:
            break
        fetch = min(pool, fetch * 4)
    page = found[offset:need]
    hits = {h.id: h for h in hits_for(session, [(i, sc) for i, sc, _ in page])}
    out = []
    for image_id, _, sec in page:
        hit = hits.get(image_id)
        if hit is None:
            continue
        also = tuple(_siblings(session, hit.path)) if group_stems else ()
        out.append(replace(hit, seconds=sec, also=also))
    return out
