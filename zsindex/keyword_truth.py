"""The user's keywords as ground truth: measuring a label set, and thresholds learnt from examples.

The examples of a label set are the indexed images the user keyworded with at
least one of its labels (matched case-insensitively): for each label, those
carrying it are positives and the others negatives. Images with none of the
set's keywords say nothing about it (the user may simply not have keyworded
them) and are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select

from . import schema as s
from .errors import known_list, plural
from .keywords import fold
from .store import CHUNK, Store, by_key, model_dim

MIN_EXAMPLES = 5  # positives and negatives a label needs before its threshold is learnt from them
DEFAULT_CUTOFFS = (0.1, 0.2, 0.3, 0.4)


@dataclass
class Examples:
    ids: np.ndarray  # image ids
    truth: np.ndarray  # (images, labels) bool
    labels: list[str]
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))


def examples(store: Store, labels: Sequence[str], model_id: int) -> Examples:
    """Images keyworded with any of the labels, their truth matrix and stored vectors."""
    folded = [fold(x) for x in labels]
    column = {f: i for i, f in enumerate(folded)}
    query = (select(s.Keyword.image_id, s.Keyword.folded).join(s.Image, s.Image.id == s.Keyword.image_id)
             .where(s.Keyword.folded.in_(folded), s.Image.status == s.STATUS_INDEXED))
    with store.session() as session:
        pairs = session.execute(query).all()
        ids = np.array(sorted({i for i, _ in pairs}), dtype=np.int64)
        row = {int(i): n for n, i in enumerate(ids)}
        truth = np.zeros((len(ids), len(labels)), dtype=bool)
        for image_id, f in pairs:
            truth[row[image_id], column[f]] = True
        vecs = np.zeros((len(ids), 0), dtype=np.float32)
        got: dict[int, bytes] = {}
        dim = model_dim(session, model_id)
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK].tolist()
            got.update(by_key(session, model_id, session.execute(
                select(s.Image.id, s.Image.sha256).where(s.Image.id.in_(chunk)))))
    if len(ids):
        vecs = store.unpack([got[int(i)] for i in ids], dim)
    return Examples(ids, truth, list(labels), vecs)


def best_threshold(cos: np.ndarray, positive: np.ndarray) -> float:
    """The cosine cut-off with the best F1 on these examples, midway between neighbouring scores."""
    order = np.argsort(-cos)
    ranked, hits = cos[order], positive[order].astype(np.int64)
    tp = np.cumsum(hits)  # keeping the top k+1 images
    k = np.arange(1, len(ranked) + 1)
    f1 = 2 * tp / (k + hits.sum())
    distinct = np.append(ranked[1:] < ranked[:-1], True)  # a cut can only fall between different scores
    f1 = np.where(distinct, f1, -1)
    best = int(f1.argmax())
    below = ranked[best + 1] if best + 1 < len(ranked) else ranked[best] - 0.05
    return float((ranked[best] + below) / 2)


@dataclass
class Learnt:
    thresholds: dict[str, float]  # labels with enough examples
    too_few: dict[str, tuple[int, int]]  # label -> (positives, negatives) when not enough


def learn_thresholds(ex: Examples, label_vecs: np.ndarray, min_examples: int = MIN_EXAMPLES) -> Learnt:
    out = Learnt({}, {})
    cos = ex.vectors @ label_vecs.T if len(ex.ids) else np.zeros((0, len(ex.labels)))
    for j, label in enumerate(ex.labels):
        pos = int(ex.truth[:, j].sum())
        neg = len(ex.ids) - pos
        if pos < min_examples or neg < min_examples:
            out.too_few[label] = (pos, neg)
        else:
            out.thresholds[label] = best_threshold(cos[:, j], ex.truth[:, j])
    return out


def prf(pred: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    tp = int((pred & truth).sum())
    p = tp / max(int(pred.sum()), 1)
    r = tp / max(int(truth.sum()), 1)
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / max(p + r, 1e-12), 4)}


def evaluate(ex: Examples, label_vecs: np.ndarray, tagged: np.ndarray | None,
             cutoffs: Sequence[float] = DEFAULT_CUTOFFS) -> dict[str, Any]:
    """Per-label and micro-averaged P/R/F1 of the current tags (None: the labels were never tagged, and there
    is nothing to score) and of raw cosine cut-offs."""
    cos = ex.vectors @ label_vecs.T if len(ex.ids) else np.zeros((0, len(ex.labels)))
    methods = {**({"tags": tagged} if tagged is not None else {}), **{f"cosine>={c:g}": cos >= c for c in cutoffs}}
    per_label = {}
    for j, label in enumerate(ex.labels):
        per_label[label] = {"positives": int(ex.truth[:, j].sum()),
                            **{name: prf(pred[:, j], ex.truth[:, j]) for name, pred in methods.items()}}
    micro = {name: prf(pred, ex.truth) for name, pred in methods.items()}
    return {"images": len(ex.ids), "labels": per_label, "micro": micro}


def tagged_matrix(store: Store, ex: Examples, label_ids: Sequence[int]) -> np.ndarray:
    """(examples, labels) bool: which of the example images currently carry each label's tag."""
    column = {lid: j for j, lid in enumerate(label_ids)}
    row = {int(i): n for n, i in enumerate(ex.ids)}
    out = np.zeros(ex.truth.shape, dtype=bool)
    with store.session() as session:
        for image_id, label_id in session.execute(
                select(s.Tag.image_id, s.Tag.label_id).where(s.Tag.label_id.in_(list(label_ids)))):
            if image_id in row:
                out[row[image_id], column[label_id]] = True
    return out


def describe(learnt: Learnt) -> str:
    """One line for the tag report: which labels were calibrated from keywords, which could not be."""
    parts = []
    if learnt.thresholds:
        parts.append(f"thresholds from keywords for {plural(len(learnt.thresholds), 'label')}")
    if learnt.too_few:
        few = known_list(f"{k} ({p} with, {n} without)" for k, (p, n) in learnt.too_few.items())
        parts.append(f"too few keyworded examples (need {MIN_EXAMPLES} with and {MIN_EXAMPLES} without the "
                     f"keyword) for {few}: unsupervised threshold kept")
    return "; ".join(parts)


def learnt_thresholds(thr: Any, names: Sequence[str], learnt: dict[str, float] | None) -> Any:
    """Calibrated thresholds (a Calibration or one array) with the labels learnt from keywords replaced,
    in both modes: in single mode the softmax's choice must reach the learnt cut."""
    if not learnt:
        return thr
    arrays = [thr] if isinstance(thr, np.ndarray) else [thr.multi, thr.single]
    for arr in arrays:
        for j, name in enumerate(names):
            if name in learnt:
                arr[j] = learnt[name]
    return thr
