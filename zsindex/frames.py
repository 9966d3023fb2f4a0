"""Video frames in the index: FAISS ids, owners, and their stored vectors (no decoding here; see video.py).

A video is one row of ``images`` and holds no vector of its own; each of its
sampled frames is a row of ``frames`` with a vector. In FAISS a frame's id is
``FRAME_ID_BASE + frames.id``, far above any image id, so one index holds
both and every FAISS id maps back: below the base to an image, above it to a
frame and through it to its video and its time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from . import schema as s
from .hits import FRAME_ID_BASE


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


def indexed_vectors(session: Session, model_id: int, batch: int,
                    unpack: Callable[[list[bytes], int], np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(FAISS ids, vectors) of the frames of indexed videos, in chunks, for rebuilding FAISS; ``unpack``
    (``Store.unpack``) turns stored blobs into vectors of the model's dimension, or names the damage."""
    from .store import model_dim

    dim = model_dim(session, model_id)
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
        yield ids, unpack([r[1] for r in part], dim)


# -- ingest -----------------------------------------------------------------------------------------
def pixels_needed(work: Any) -> list[tuple[str, Any]]:
    """(vector key, pixels) of an ingest work item: its own hash and image, or one per video frame."""
    if work.sha256 is None:
        return []
    if work.frames is None:
        return [(work.sha256, work.image)]
    return [(frame_key(work.sha256, pos, sec), im) for pos, sec, im in work.frames]


def faiss_ids_of_row(session: Session, image: s.Image) -> list[int]:
    """What an image row holds in FAISS: its own id, or (a video) its frames' ids."""
    if image.media_kind == "video":
        return faiss_ids_of(session, [image.id])
    return [image.id]


def store(session: Session, image_id: int, video_sha256: str, sampled: list[tuple[int, float, Any]],
          vectors: dict[str, np.ndarray]) -> tuple[list[int], list[np.ndarray]]:
    """Replace a video's frame rows; returns the FAISS ids and vectors to add."""
    session.execute(delete(s.Frame).where(s.Frame.image_id == image_id))
    rows = [s.Frame(image_id=image_id, position=pos, seconds=sec, sha256=frame_key(video_sha256, pos, sec))
            for pos, sec, _ in sampled]
    session.add_all(rows)
    session.flush()
    return [FRAME_ID_BASE + r.id for r in rows], [vectors[r.sha256] for r in rows]


# -- tagging ----------------------------------------------------------------------------------------
class BestFrames:
    """Tags earned by frames go to their video, scored by its best frame for each label."""

    def __init__(self, session: Session) -> None:
        self.fids, self.owners = all_owners(session)
        self.best: dict[tuple[int, int], tuple[float, float]] = {}  # (video, label column) -> (score, cosine)

    def fold(self, img: np.ndarray, lab: np.ndarray, score: np.ndarray,
             cos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Keep the images' tags; remember the frames' ones under their video."""
        is_frame = img >= FRAME_ID_BASE
        if not is_frame.any():
            return img, lab, score, cos
        pos = np.clip(np.searchsorted(self.fids, img[is_frame]), 0, max(len(self.fids) - 1, 0))
        known = self.fids[pos] == img[is_frame] if len(self.fids) else np.zeros(len(pos), dtype=bool)
        for video, col, sc, c in zip(self.owners[pos][known].tolist(), lab[is_frame][known].tolist(),
                                     score[is_frame][known].tolist(), cos[is_frame][known].tolist()):
            if sc > self.best.get((video, col), (-1.0, 0.0))[0]:
                self.best[(video, col)] = (sc, c)
        keep = ~is_frame
        return img[keep], lab[keep], score[keep], cos[keep]

    def rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(video ids, label columns, scores, cosines) of the videos' tags."""
        keys = list(self.best)
        values = [self.best[k] for k in keys]
        return (np.array([k[0] for k in keys], dtype=np.int64), np.array([k[1] for k in keys], dtype=np.int64),
                np.array([v[0] for v in values]), np.array([v[1] for v in values]))


def mean_vector(session: Session, model_id: int, path: str,
                unpack: Callable[[list[bytes], int], np.ndarray]) -> np.ndarray | None:
    """An indexed video as one query vector (--like VIDEO): the normalised mean of its frames' vectors;
    None when it is not indexed, or changed since (as ``Store.stored_vectors``: what it holds now counts)."""
    from .store import by_key, file_changed, model_dim

    video = session.execute(select(s.Image.size, s.Image.mtime_ns).where(
        s.Image.path == path, s.Image.status == s.STATUS_INDEXED)).first()
    if video is None or file_changed(path, video.size, video.mtime_ns):
        return None
    blobs = list(by_key(session, model_id, session.execute(
        select(s.Frame.id, s.Frame.sha256).join(s.Image, s.Image.id == s.Frame.image_id)
        .where(s.Image.path == path, s.Image.status == s.STATUS_INDEXED))).values())
    if not blobs:
        return None
    return normalised_mean(unpack(blobs, model_dim(session, model_id)))


def normalised_mean(vectors: np.ndarray) -> np.ndarray:
    """A video's frame vectors as one query vector: their mean, unit length."""
    mean = vectors.mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


# -- exact vectors (re-ranking a quantised index, counting) ------------------------------------------------
def vector_blobs(session: Session, model_id: int, faiss_ids: list[int]) -> dict[int, bytes]:
    """FAISS id of a frame -> its stored vector (bytes)."""
    from .store import CHUNK, by_key

    rows = [i - FRAME_ID_BASE for i in faiss_ids if i >= FRAME_ID_BASE]
    out: dict[int, bytes] = {}
    for start in range(0, len(rows), CHUNK):
        out.update(by_key(session, model_id, ((FRAME_ID_BASE + fid, sha) for fid, sha in session.execute(
            select(s.Frame.id, s.Frame.sha256).where(s.Frame.id.in_(rows[start:start + CHUNK]))))))
    return out


def count_indexed(session: Session, model_id: int) -> int:
    """Frames of indexed videos with a vector of this model: their share of the FAISS index."""
    return int(session.scalar(
        select(func.count()).select_from(s.Frame).join(s.Image, s.Image.id == s.Frame.image_id)
        .join(s.Vector, (s.Vector.sha256 == s.Frame.sha256) & (s.Vector.model_id == model_id))
        .where(s.Image.status == s.STATUS_INDEXED)) or 0)
