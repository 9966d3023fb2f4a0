"""Label sets in the index, label-vector cache, bulk tagging from stored vectors, calibration.

Tagging never decodes or embeds an image: it streams the stored image vectors
from SQL in batches and multiplies them by the label vectors.

Calibration (multi-label mode). A raw cosine cut-off does not transfer between
labels or models: each label's cosines sit in their own narrow band. So each
label gets its own threshold, from its own score distribution over the images
being tagged: images that show the label form an upper mode, the rest a lower
one, and Otsu's method puts the threshold where the two are best separated.
Often there are three groups (images showing the label, images showing
something like it, the rest): when the upper side of the split is itself
clearly two modes, the threshold moves to the split between those.
Otsu needs both modes to be sizeable; when the upper side holds less than
``MIN_MODE_SHARE`` of the images, or the two sides are not clearly apart
(Ashman's D below ``MIN_SEPARATION``), the label is treated as rare: its
threshold is the median plus ``OUTLIER_Z`` robust standard deviations, so
only images that stand out from the bulk get it, and a label no image shows
tags nothing ("none of these"). A label absent from the library can still look bimodal (images fall
into groups for reasons of their own), so a second check compares it with a
background prompt ("a photo of a thing."): a label that is really seen varies
from image to image in its own direction, while the vector of a label the
images do not show is mostly the generic photo direction and moves with the
background. If less than ``MIN_SPECIFICITY`` of a label's spread remains once
the background score is subtracted, the label tags nothing. Scores are
reported as ``sigmoid(logit_scale · (cosine - threshold))``, 0.5 at the
threshold. ``--threshold`` replaces all this with one raw cosine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from . import schema as s
from .errors import LabelError
from .labels import DEFAULT_TEMPLATES, Label, LabelSet, check_templates, label_vectors
from .store import Store, now

if TYPE_CHECKING:
    from .embedder import Embedder

BINS = 2000  # histogram resolution over cosine [-1, 1]: 0.001
# Ashman's D between the two sides of the split. Splitting one normal mode in half gives
# D = 2.65, so clearly separated modes must beat that comfortably.
MIN_SEPARATION = 3.0
MIN_SPECIFICITY = 0.7  # std(cos - background cos) / std(cos), see above
MIN_MODE_SHARE = 0.05  # below this share of images, Otsu's split is unreliable: use the outlier rule
OUTLIER_Z = 4.0
NESTED_MIN_IMAGES = 10  # both groups of a nested split hold at least this many images (see nested_thresholds)
MIN_CALIBRATION_IMAGES = 50  # below this, score distributions say little: the report warns
BACKGROUND = Label("none of these", ("thing", "object"))


# -- label sets ---------------------------------------------------------------------------------
def row_label(row: s.LabelRow) -> Label:
    return Label(row.name, tuple(json.loads(row.descriptions)), tuple(json.loads(row.templates)))


def set_templates(row: s.LabelSetRow) -> tuple[str, ...]:
    return tuple(json.loads(row.templates)) if row.templates else DEFAULT_TEMPLATES


def set_exists(session: Session, name: str) -> bool:
    return session.scalars(select(s.LabelSetRow.id).where(s.LabelSetRow.name == name)).first() is not None


def get_set(session: Session, name: str) -> tuple[s.LabelSetRow, list[s.LabelRow]]:
    row = session.scalars(select(s.LabelSetRow).where(s.LabelSetRow.name == name)).first()
    if row is None:
        known = ", ".join(session.scalars(select(s.LabelSetRow.name).order_by(s.LabelSetRow.name))) or "none yet"
        raise LabelError(f"no label set named {name!r} (known: {known}); "
                         f"create it with `zsindex labels add {name} ...`")
    labels = list(session.scalars(select(s.LabelRow).where(s.LabelRow.set_id == row.id).order_by(s.LabelRow.position)))
    return row, labels


def as_label_set(row: s.LabelSetRow, labels: list[s.LabelRow]) -> LabelSet:
    return LabelSet([row_label(r) for r in labels], set_templates(row))


def _insert_labels(session: Session, set_id: int, labels: Sequence[Label], start: int) -> None:
    if not labels:
        return
    session.execute(insert(s.LabelRow), [
        {"set_id": set_id, "name": lab.name, "descriptions": json.dumps(list(lab.descriptions), ensure_ascii=False),
         "templates": json.dumps(list(lab.templates), ensure_ascii=False), "position": start + i, "tagged_key": None}
        for i, lab in enumerate(labels)
    ])


def add_set(session: Session, name: str, labels: Sequence[Label], templates: Sequence[str] = ()) -> s.LabelSetRow:
    if not name.strip():
        raise LabelError("a label set needs a name")
    if set_exists(session, name):
        raise LabelError(f"label set {name!r} exists; change it with `zsindex labels edit {name} --add/--drop`")
    stamp = now()
    row = s.LabelSetRow(name=name, version=1, created_at=stamp, updated_at=stamp,
                        templates=json.dumps(list(check_templates(templates))) if templates else None)
    session.add(row)
    session.flush()
    _insert_labels(session, row.id, labels, 0)
    return row


def edit_set(session: Session, name: str, add: Sequence[Label] = (), drop: Sequence[str] = ()) -> s.LabelSetRow:
    """Add or drop labels; bumps the version. Dropped labels take their tags with them."""
    row, current = get_set(session, name)
    names = {r.name.casefold(): r for r in current}
    missing = [d for d in drop if d.casefold() not in names]
    if missing:
        raise LabelError(f"label set {name!r} has no label {', '.join(map(repr, missing))}")
    clash = [lab.name for lab in add if lab.name.casefold() in names and lab.name not in drop]
    if clash:
        raise LabelError(f"label set {name!r} already has {', '.join(map(repr, clash))}")
    dropped = [names[d.casefold()].id for d in drop]
    if dropped:
        session.execute(delete(s.Tag).where(s.Tag.label_id.in_(dropped)))
        session.execute(delete(s.LabelRow).where(s.LabelRow.id.in_(dropped)))
    _insert_labels(session, row.id, add, max((r.position for r in current), default=-1) + 1)
    if len(current) - len(dropped) + len(add) == 0:
        raise LabelError(f"label set {name!r} would have no labels left; remove it with `zsindex labels remove`")
    row.version += 1
    row.updated_at = now()
    return row


def remove_set(session: Session, name: str) -> None:
    row, labels = get_set(session, name)
    session.execute(delete(s.Tag).where(s.Tag.label_id.in_([r.id for r in labels])))
    session.delete(row)


def list_sets(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        select(s.LabelSetRow.name, s.LabelSetRow.version, func.count(s.LabelRow.id))
        .join(s.LabelRow, s.LabelRow.set_id == s.LabelSetRow.id, isouter=True)
        .group_by(s.LabelSetRow.id).order_by(s.LabelSetRow.name)
    ).all()
    return [{"name": n, "version": v, "labels": c} for n, v, c in rows]


# -- label vectors ------------------------------------------------------------------------------
def prompts_key(label: Label, templates: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(label.prompts(templates), ensure_ascii=False).encode()).hexdigest()


def cached_label_vectors(store: Store, model_id: int, label_set: LabelSet,
                         embedder: "Embedder | None" = None, loader: Any = None) -> np.ndarray:
    """(L, d) label vectors, embedding only labels whose prompts were never embedded with this model."""
    keys = [prompts_key(lab, label_set.templates) for lab in label_set.labels]
    found: dict[str, np.ndarray] = {}
    with store.session() as session:
        for i in range(0, len(keys), 900):
            found.update((k, np.frombuffer(v, dtype=np.float32)) for k, v in session.execute(
                select(s.LabelVector.prompts_sha256, s.LabelVector.vector).where(
                    s.LabelVector.model_id == model_id, s.LabelVector.prompts_sha256.in_(keys[i:i + 900]))))
    todo = [i for i, k in enumerate(keys) if k not in found]
    if todo:
        emb = embedder if embedder is not None else loader()
        fresh = label_vectors(emb, LabelSet([label_set.labels[i] for i in todo], label_set.templates))
        with store.session() as session:
            session.execute(insert(s.LabelVector).prefix_with("OR IGNORE"), [
                {"model_id": model_id, "prompts_sha256": keys[i], "vector": v.astype(np.float32).tobytes()}
                for i, v in zip(todo, fresh)])
        found.update((keys[i], v) for i, v in zip(todo, fresh))
    return np.stack([found[k] for k in keys])


# -- calibration --------------------------------------------------------------------------------
def _bin(cos: np.ndarray) -> np.ndarray:
    return np.clip(((cos + 1.0) * (BINS / 2)).astype(np.int64), 0, BINS - 1)


class LabelStats:
    """Streaming per-label statistics: cosine histograms, and spreads with and without the background."""

    def __init__(self, n_labels: int) -> None:
        self.n = 0
        self.hist = np.zeros((n_labels, BINS), dtype=np.int64)
        self.sums = np.zeros((4, n_labels))  # sum cos, sum cos^2, sum margin, sum margin^2
        self._offsets = np.arange(n_labels, dtype=np.int64) * BINS

    def update(self, cos: np.ndarray, background: np.ndarray | None = None) -> None:
        flat = np.bincount((_bin(cos) + self._offsets[None, :]).ravel(), minlength=self.hist.size)
        self.hist += flat.reshape(self.hist.shape)
        margin = cos - (background[:, None] if background is not None else 0.0)
        self.sums += [cos.sum(0), (cos**2).sum(0), margin.sum(0), (margin**2).sum(0)]
        self.n += len(cos)

    def specificity(self) -> np.ndarray:
        """std(cos - background) / std(cos) per label (1 when no background was given)."""
        n = max(self.n, 1)
        var = self.sums[1] / n - (self.sums[0] / n) ** 2
        var_margin = self.sums[3] / n - (self.sums[2] / n) ** 2
        return np.sqrt(np.maximum(var_margin, 0) / np.maximum(var, 1e-12))


def robust_thresholds(hist: np.ndarray, k: float = OUTLIER_Z) -> np.ndarray:
    """Per label: median + k robust standard deviations (1.4826 x MAD) of its cosines.

    For labels that only a few images show, the "absent" mode is nearly the
    whole distribution and the images that show the label are its outliers.
    """
    centres = (np.arange(BINS) + 0.5) / (BINS / 2) - 1.0
    w = hist.astype(np.float64)
    half = w.sum(axis=1, keepdims=True) / 2
    median = centres[np.argmax(np.cumsum(w, axis=1) >= half, axis=1)]
    dev = np.abs(centres[None, :] - median[:, None])
    order = np.argsort(dev, axis=1)
    rows = np.arange(len(w))[:, None]
    cum = np.cumsum(w[rows, order], axis=1)
    mad = dev[rows, order][rows[:, 0], np.argmax(cum >= half, axis=1)]
    return median + k * 1.4826 * np.maximum(mad, 1.0 / BINS)


def nested_thresholds(hist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Otsu's split, moved up to a second split of the upper side when that side is itself two clear modes.

    A label's scores often fall into three groups: images that show it, images
    that show something like it ("a red square" for the label "red circle"),
    and the rest. The first split separates the rest; when what lies above it
    splits again with Ashman's D of at least ``MIN_SEPARATION``, the images
    that really show the label are the top group, provided both groups hold at
    least ``NESTED_MIN_IMAGES`` images (two or three images make any split look
    clear). Returns the threshold and the separation of the first split (which
    decides whether the label is rare).
    """
    cut, separation = otsu_thresholds(hist)
    above = hist.copy()
    above[np.arange(BINS)[None, :] < _bin(cut)[:, None]] = 0
    upper_cut, upper_separation = otsu_thresholds(above)
    top = np.where(np.arange(BINS)[None, :] >= _bin(upper_cut)[:, None], above, 0).sum(axis=1)
    enough = (top >= NESTED_MIN_IMAGES) & (above.sum(axis=1) - top >= NESTED_MIN_IMAGES)
    nested = (separation >= MIN_SEPARATION) & (upper_separation >= MIN_SEPARATION) & enough
    return np.where(nested, upper_cut, cut), separation


def otsu_thresholds(hist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per label: Otsu threshold (a cosine) and Ashman's D between the two modes it separates."""
    centres = (np.arange(BINS) + 0.5) / (BINS / 2) - 1.0
    w = hist.astype(np.float64)
    total = w.sum(axis=1, keepdims=True)
    w0 = np.cumsum(w, axis=1)
    m0 = np.cumsum(w * centres, axis=1)
    s0 = np.cumsum(w * centres**2, axis=1)
    w1, m1, s1 = total - w0, m0[:, -1:] - m0, s0[:, -1:] - s0
    with np.errstate(divide="ignore", invalid="ignore"):
        mu0, mu1 = m0 / w0, m1 / w1
        between = w0 * w1 * (mu0 - mu1) ** 2
        between[(w0 == 0) | (w1 == 0)] = -1
        split = between.argmax(axis=1)
        rows = np.arange(len(hist))
        a, b = w0[rows, split], w1[rows, split]
        var0 = s0[rows, split] / a - mu0[rows, split] ** 2
        var1 = s1[rows, split] / b - mu1[rows, split] ** 2
        d = np.sqrt(2) * np.abs(mu1[rows, split] - mu0[rows, split]) / np.sqrt(np.maximum(var0 + var1, 1e-12))
    thresholds = centres[split] + 1.0 / BINS  # the upper edge of the last bin of the lower mode
    share = np.where(total[:, 0] > 0, b / np.maximum(total[:, 0], 1), 0)
    return thresholds, np.where(share >= MIN_MODE_SHARE, np.nan_to_num(d), 0.0)


@dataclass
class TagReport:
    label_set: str
    version: int
    mode: str
    images: int = 0
    labels_computed: int = 0
    labels_reused: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    tags: list[dict[str, Any]] = field(default_factory=list)  # per image, when asked for
    seconds: float = 0.0
    warning: str | None = None

    def summary(self) -> dict[str, Any]:
        return {"label_set": self.label_set, "version": self.version, "mode": self.mode, "images": self.images,
                "labels_computed": self.labels_computed, "labels_reused": self.labels_reused,
                "counts": self.counts, "seconds": round(self.seconds, 3),
                **({"warning": self.warning} if self.warning else {})}


def tagged_ids_query(label: str) -> Any:
    """Image ids carrying a label of this name (in any set)."""
    return select(s.Tag.image_id).join(s.LabelRow, s.LabelRow.id == s.Tag.label_id).where(s.LabelRow.name == label)
