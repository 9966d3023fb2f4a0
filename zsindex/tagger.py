"""Bulk tagging: stream stored image vectors, score them against a label set, store the tags.

Re-tagging is incremental: every label remembers the key its tags were made
from (its prompts, the model, the library generation, the mode, threshold and
filter, and the model's remembered match level when the set's calibration rested on
it). Labels whose key is unchanged are skipped; in multi-label mode adding
one label to a set therefore costs only that label's work. In single mode the
softmax couples all labels of the set, so any change recomputes the set.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from itertools import repeat
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select, update

from . import schema as s
from .calibration import Calibration, LabelStats, assign, calibrate
from .errors import plural
from .frames import BestFrames
from .keyword_truth import learnt_thresholds
from .store import Store
from .tagging import MIN_CALIBRATION_IMAGES, TagReport, prompts_key, row_label, set_templates

MODES = ("single", "multi")
CALIBRATION_SAMPLE = 100_000  # images whose scores place the thresholds
LEVEL_LABELS = 64  # other labels of the set that join a partial re-calibration (see _thresholds)


def _key(*parts: Any) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()


def _batches(vectors: Any, only: np.ndarray | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stored image vectors in chunks, from the FAISS cache (kept in step with SQL by the library)."""
    for ids, vecs in vectors.batches():
        if only is not None:
            keep = np.isin(ids, only)
            ids, vecs = ids[keep], vecs[keep]
        if len(ids):
            yield ids, vecs


def thresholds_for(store: Store, vectors: Any, only: np.ndarray | None, label_vecs: np.ndarray,
                   background: np.ndarray, logit_scale: float, prior_level: float | None = None) -> Calibration:
    """Per label: calibrated thresholds (see calibration.py) from a sample of the images being tagged."""
    stats = LabelStats(len(label_vecs), logit_scale)
    total = len(only) if only is not None else store.counts_by_status().get(s.STATUS_INDEXED, 0)
    share = min(1.0, CALIBRATION_SAMPLE / max(total, 1))
    rng = np.random.default_rng(0)
    for _, vecs in _batches(vectors, only):
        if share < 1.0:  # a fixed-seed random sample is plenty to place a threshold, at a fraction of the cost
            vecs = vecs[rng.random(len(vecs)) < share]
        stats.update(vecs @ label_vecs.T, vecs @ background)
    return calibrate(stats, logit_scale, prior_level)


def _level_state(model_id: int) -> str:
    return f"match_level:{model_id}"


def remembered_level(store: Store, model_id: int) -> float | None:
    """The model's match level as the index remembers it (found on the last set with a clear mode)."""
    value = store.get_state(_level_state(model_id))
    return None if value is None else float(value)


def _thresholds(store: Store, vectors: Any, only: np.ndarray | None, label_vecs: np.ndarray, cols: np.ndarray,
                background: np.ndarray, threshold: float | None, logit_scale: float,
                model_id: int) -> Calibration | np.ndarray:
    """Thresholds of the labels in cols. When only some labels of a set are re-tagged, up to
    LEVEL_LABELS others join the calibration, so that the set's match level is known to the new ones.
    The index remembers the model's match level, for sets in which no label has a clear mode."""
    if threshold is not None:
        return np.full(len(cols), threshold, dtype=np.float64)
    others = np.setdiff1d(np.arange(len(label_vecs)), cols)
    extra = others[np.linspace(0, len(others) - 1, min(len(others), LEVEL_LABELS)).astype(int)]
    prior = remembered_level(store, model_id)
    cal = thresholds_for(store, vectors, only, label_vecs[np.concatenate([cols, extra])], background, logit_scale,
                         prior)
    if cal.match_level is not None:
        with store.session() as session:
            store.set_state(session, _level_state(model_id), repr(cal.match_level))
    return Calibration(cal.multi[:len(cols)], cal.single[:len(cols)], cal.match_level, cal.level_used)


SCORE_BLOCK = 8192  # images scored per matrix product: an (8192, labels) block stays in cache-sized memory


def _insert_tag_sql(paramstyle: str) -> str:
    """The tag INSERT in the driver's own placeholders (sqlite3: ?, psycopg: %s), for plain executemany."""
    mark = "?" if paramstyle == "qmark" else "%s"
    return ("INSERT INTO tags (image_id, label_id, set_version, model_id, mode, score, cosine) "
            f"VALUES ({', '.join([mark] * 7)})")


def _scored(vectors: Any, only: np.ndarray | None, label_vecs: np.ndarray, thr: Calibration | np.ndarray,
            logit_scale: float, mode: str) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per block of images: (images scored, image ids, label columns, scores, cosines) of the tags it gets."""
    for ids_all, vecs_all in _batches(vectors, only):
        for start in range(0, len(ids_all), SCORE_BLOCK):
            ids, cos = ids_all[start:start + SCORE_BLOCK], vecs_all[start:start + SCORE_BLOCK] @ label_vecs.T
            img, lab, score = assign(cos, thr, logit_scale, mode)
            hit = cos[img, lab]
            yield len(ids), ids[img], lab, score, hit


def run_tagging(store: Store, vectors: Any, model_id: int, set_row: s.LabelSetRow,
                label_rows: list[s.LabelRow],
                label_vecs: np.ndarray, background: np.ndarray, logit_scale: float, mode: str, threshold: float | None,
                only: np.ndarray | None, filter_key: str,
                progress: Callable[[str, int, int], None] | None = None,
                supervised: dict[str, float] | None = None, among: Any = None) -> TagReport:
    """Tag from stored vectors; labels whose inputs are unchanged since their last run are skipped.

    ``progress(stage, done, total)`` is called after each block of images scored. The report's counts
    cover the images tagged: ``among`` (a SELECT of the filtered images' ids), else every image.

    The new tags replace the stale ones in one transaction: a crash or Ctrl-C
    leaves the previous tags as they were, and the next run redoes the work.
    """
    started = time.perf_counter()
    report = TagReport(set_row.name, set_row.version, mode)
    templates = set_templates(set_row)
    pkeys = [prompts_key(row_label(r), templates) for r in label_rows]
    base = (mode, threshold, model_id, store.generation(), filter_key) + ((sorted(supervised.items()),)
                                                                          if supervised else ())
    # A label calibrated on the set's own match level does not depend on the remembered one; a label
    # calibrated on the remembered level (no clear mode in the set) does, and a new level makes it due.
    prior = remembered_level(store, model_id) if threshold is None else None
    own, on_prior = ([_key(*base, level, pk if mode == "multi" else ",".join(pkeys)) for pk in pkeys]
                     for level in ("own level", f"remembered level {prior!r}"))
    todo = [i for i, r in enumerate(label_rows) if r.tagged_key not in (own[i], on_prior[i])]
    report.labels_reused = len(label_rows) - len(todo)
    report.labels_computed = len(todo)
    if todo:
        cols = np.array(todo) if mode == "multi" else np.arange(len(label_rows))
        thr = _thresholds(store, vectors, only, label_vecs, cols, background, threshold, logit_scale, model_id)
        thr = learnt_thresholds(thr, [label_rows[c].name for c in cols], supervised)  # keyword_truth.py
        shown = thr if isinstance(thr, np.ndarray) else thr.multi if mode == "multi" else thr.single
        report.thresholds = {label_rows[c].name: float(t) for c, t in zip(cols, shown)}
        todo_ids = [label_rows[i].id for i in todo]
        label_ids = np.array([label_rows[c].id for c in cols], dtype=np.int64)
        total = len(only) if only is not None else vectors.ntotal
        if threshold is None and total < MIN_CALIBRATION_IMAGES:
            report.warning = (f"thresholds calibrated on only {plural(total, 'image')} are rough (a label shown by "
                              f"one or "
                              f"two of them may be missed); with so few, consider threshold=COSINE")
        with store.session() as session:
            stale = delete(s.Tag).where(s.Tag.label_id.in_(todo_ids))
            session.execute(stale if only is None else stale.where(s.Tag.image_id.in_(only.tolist())))
            # Plain executemany of tuples: the ORM's per-row dictionaries cost more than SQLite's own work here.
            connection = session.connection()
            insert_tag = _insert_tag_sql(connection.dialect.paramstyle)

            def insert(img: np.ndarray, lab: np.ndarray, score: np.ndarray, cos: np.ndarray) -> None:
                if len(img):
                    connection.exec_driver_sql(insert_tag, list(zip(
                        img.tolist(), label_ids[lab].tolist(), repeat(set_row.version), repeat(model_id),
                        repeat(mode), score.tolist(), cos.tolist())))

            videos = BestFrames(session)  # a video's frames are scored like images; it gets their best tags
            for n, img, lab, score, cos in _scored(vectors, only, label_vecs[cols], thr, logit_scale, mode):
                report.images += n
                if progress is not None:
                    progress("tagging", report.images, total)
                insert(*videos.fold(img, lab, score, cos))
            insert(*videos.rows())
            keys = own if isinstance(thr, Calibration) and thr.match_level is not None else on_prior
            session.execute(update(s.LabelRow), [{"id": label_rows[i].id, "tagged_key": keys[i]} for i in todo])
    report.counts = tag_counts(store, [r.id for r in label_rows], among)
    report.seconds = time.perf_counter() - started
    return report


def _not_indexed() -> Any:
    """Images whose tags do not count: the few deleted or unreadable ones.

    Queries exclude these instead of joining every tag with its image's status,
    which led SQLite to walk all images and probe the tags of each (a billion
    probes at 1M images x 1,000 labels); driven from the tags it is one pass.
    """
    return select(s.Image.id).where(s.Image.status != s.STATUS_INDEXED)


def tag_counts(store: Store, label_ids: list[int] | None = None, among: Any = None) -> dict[str, int]:
    """Tags per label name, counting only images still indexed; ``among`` (a SELECT of image ids, see
    search.filter_query): only those images, as a filtered run or summary counts them."""
    query = (select(s.LabelRow.name, func.count(s.Tag.id))
             .join(s.Tag, s.Tag.label_id == s.LabelRow.id)
             .where(s.Tag.image_id.not_in(_not_indexed()))
             .group_by(s.LabelRow.id, s.LabelRow.name).order_by(func.count(s.Tag.id).desc(), s.LabelRow.name))
    if label_ids is not None:
        query = query.where(s.LabelRow.id.in_(label_ids))
    if among is not None:
        query = query.where(s.Tag.image_id.in_(among))
    with store.session() as session:
        return {name: n for name, n in session.execute(query)}


def tag_count_rows(store: Store, label_ids: list[int] | None = None, among: Any = None) -> list[dict[str, Any]]:
    """Tags per (set, label), counting only images still indexed: same-named labels of two sets stay apart.
    ``among``: only those images (as in tag_counts)."""
    query = (select(s.LabelSetRow.name, s.LabelRow.name, func.count(s.Tag.id))
             .join(s.Tag, s.Tag.label_id == s.LabelRow.id)
             .join(s.LabelSetRow, s.LabelSetRow.id == s.LabelRow.set_id)
             .where(s.Tag.image_id.not_in(_not_indexed()))
             # Every selected column grouped by: PostgreSQL refuses a column of a joined table otherwise.
             .group_by(s.LabelSetRow.id, s.LabelSetRow.name, s.LabelRow.id, s.LabelRow.name)
             .order_by(s.LabelSetRow.name, func.count(s.Tag.id).desc(), s.LabelRow.name))
    if label_ids is not None:
        query = query.where(s.LabelRow.id.in_(label_ids))
    if among is not None:
        query = query.where(s.Tag.image_id.in_(among))
    with store.session() as session:
        return [{"set": a, "label": b, "images": n} for a, b, n in session.execute(query)]


def tag_rows(store: Store, label_ids: list[int], only: np.ndarray | None = None) -> list[dict[str, Any]]:
    """(path, label, score, cosine) rows, best score first within each image, images by path.

    ``only``: just these image ids (the images a filtered tag run looked at).
    """
    query = (select(s.Image.id, s.Image.path, s.LabelRow.name, s.Tag.score, s.Tag.cosine)
             .join(s.Tag, s.Tag.image_id == s.Image.id).join(s.LabelRow, s.LabelRow.id == s.Tag.label_id)
             .where(s.Tag.label_id.in_(label_ids), s.Tag.image_id.not_in(_not_indexed()))
             .order_by(s.Image.path, s.Tag.score.desc()))
    with store.session() as session:
        rows = session.execute(query).all()
    if only is not None:  # filtered here: an IN list of every matched id could pass SQLite's variable limit
        keep = set(only.tolist())
        rows = [r for r in rows if r[0] in keep]
    return [{"id": r[0], "path": r[1], "label": r[2], "score": r[3], "cosine": r[4]} for r in rows]


def untag(store: Store, label_ids: list[int]) -> int:
    with store.session() as session:
        result = session.execute(delete(s.Tag).where(s.Tag.label_id.in_(label_ids)))
        n = getattr(result, "rowcount", 0)
        session.execute(update(s.LabelRow).where(s.LabelRow.id.in_(label_ids)).values(tagged_key=None))
    return int(n or 0)
