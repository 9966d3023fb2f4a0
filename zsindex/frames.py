"""Video frames in the index: FAISS ids, owners, and their stored vectors (no decoding here; see video.py).

A video is one row of ``images`` and holds no vector of its own; each of its
sampled frames is a row of ``frames`` with a vector. In FAISS a frame's id is
``FRAME_ID_BASE + frames.id``, far above any image id, so one index holds
both and every FAISS id maps back: below the base to an image, above it to a
frame and through it to its video and its time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import schema as s

FRAME_ID_BASE = 1 << 40


def frame_key(video_sha256: str, position: int, seconds: float) -> str:
    """The key a frame's vector is stored under: same video content and sampling, same key."""
    return hashlib.sha256(f"frame:{video_sha256}:{position}:{seconds:.3f}".encode()).hexdigest()


def split(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image ids, frame row ids) among FAISS ids."""
    ids = np.asarray(ids, dtype=np.int64)
    frames = ids >= FRAME_ID_BASE
    return ids[~frames], ids[frames] - FRAME_ID_BASE


def owners(session: Session, faiss_ids: Iterable[int]) -> dict[int, tuple[int, float]]:
    """FAISS id of a frame -> (its video's image id, the frame's time in seconds)."""
    rows = [i - FRAME_ID_BASE for i in faiss_ids if i >= FRAME_ID_BASE]
    out: dict[int, tuple[int, float]] = {}
    for start in range(0, len(rows), 500):
        for fid, image_id, sec in session.execute(select(s.Frame.id, s.Frame.image_id, s.Frame.seconds)
                                                  .where(s.Frame.id.in_(rows[start:start + 500]))):
            out[FRAME_ID_BASE + fid] = (image_id, sec)
    return out


def all_owners(session: Session) -> tuple[np.ndarray, np.ndarray]:
    """(FAISS ids, image ids) of every frame, sorted by FAISS id (for tagging)."""
    rows = session.execute(select(s.Frame.id, s.Frame.image_id).order_by(s.Frame.id)).all()
    fids = np.fromiter((FRAME_ID_BASE + r[0] for r in rows), dtype=np.int64, count=len(rows))
    return fids, np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))


def faiss_ids_of(session: Session, image_ids: Iterable[int]) -> list[int]:
    """FAISS ids of the frames of these videos (for removal, or to widen an id filter)."""
    ids = list(image_ids)
    out: list[int] = []
    for start in range(0, len(ids), 500):
        out.extend(FRAME_ID_BASE + f for f in session.scalars(
            select(s.Frame.id).where(s.Frame.image_id.in_(ids[start:start + 500]))))
    return out


def with_frames(session: Session, image_ids: np.ndarray) -> np.ndarray:
    """An image-id filter widened by the frame ids of the videos it keeps."""
    extra = faiss_ids_of(session, image_ids.tolist())
    return np.concatenate([image_ids, np.array(extra, dtype=np.int64)]) if extra else image_ids


def indexed_vectors(session: Session, model_id: int, batch: int = 50_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(FAISS ids, vectors) of the frames of indexed videos, in chunks, for rebuilding FAISS."""
    query = (
        select(s.Frame.id, s.Vector.vector)
        .join(s.Image, s.Image.id == s.Frame.image_id)
        .join(s.Vector, (s.Vector.sha256 == s.Frame.sha256) & (s.Vector.model_id == model_id))
        .where(s.Image.status == s.STATUS_INDEXED)
        .order_by(s.Frame.id)
        .execution_options(yield_per=batch)
    )
    for part in session.execute(query).partitions(batch):
        ids = np.fromiter((FRAME_ID_BASE + r[0] for r in part), dtype=np.int64, count=len(part))
        vecs = np.frombuffer(b"".join(r[1] for r in part), dtype=np.float32).reshape(len(part), -1)
        yield ids, vecs
