"""Per-label thresholds from the score distributions of the images being tagged.

A raw cosine cut-off does not transfer between labels or models: each label's
cosines sit in their own band. But one thing is shared by every label of a
model: the cosine at which an image that really shows a label scores (the
*match level*; about 0.41 for the demo model on single objects). Calibration
rests on that, in three steps, from one pass of streaming statistics
(histograms over a sample of at most 100,000 images):

1. **Match level.** Otsu's method splits each label's scores in two. A label
   whose split is clear (Ashman's D ≥ ``MIN_SEPARATION``, and the peak of the
   upper side at least ``MIN_GAP`` logits above the mean of the lower side)
   has a mode of images that show it; the median peak of those labels is the
   match level, and the *match band* reaches ``LEVEL_SLACK`` logits below it.
   (Logits are cosines times the model's logit scale: a difference of one
   logit is a factor of e in the model's own odds, so the constants carry
   over between models.)
2. **Is the label shown at all?** Only if it has a mode of its own in the match
   band: a clear split whose upper peak lies in the band; or, for a rare label,
   at least ``MIN_RARE_IMAGES`` images in the band standing apart from the
   rest (an empty stretch of ``EMPTY_GAP`` logits below them, their peak
   ``MIN_GAP`` logits above the median); or, for a label most images show, half
   the images in the band. A label absent from the library can look bimodal
   (orange scores higher on red and yellow images than on blue ones), but
   those images are look-alikes, not matches: their mode sits below the band,
   so the label tags nothing. A label whose scores merely move with a
   background prompt ("a photo of a thing.": specificity below
   ``MIN_SPECIFICITY``, or ``PREVALENT_SPECIFICITY`` for the most-images case)
   is not shown either.
3. **Where to cut (multi mode).** Where a valley of low density separates the
   label's positive peak from what lies below (look-alikes or the rest), the
   threshold is the middle of the valley's floor; where look-alikes crowd up
   to the positives with no valley, it is ``PEAK_MARGIN`` logits below the
   positive peak. Never below the match band.

Single mode takes the best label by softmax, as CLIP does, and keeps it unless
its cosine is below the label's match band ("none of these"); per-label
thresholds do not drop images the softmax got right. A set where no label has
a clear mode has no match level: then only rare labels with a separated group
at the top tag anything.

Scores are ``sigmoid(logit_scale · (cosine - threshold))`` in multi mode (0.5 at
the threshold) and the softmax probability in single mode. ``--threshold``
replaces all this with one raw cosine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .labels import softmax

BINS = 2000  # histogram resolution over cosine [-1, 1]: 0.001
CENTRES = (np.arange(BINS) + 0.5) / (BINS / 2) - 1.0
# Ashman's D between the two sides of the split. Splitting one normal mode in half gives
# D = 2.65, so clearly separated modes must beat that comfortably.
MIN_SEPARATION = 3.0
MIN_MODE_SHARE = 0.05  # an upper side under this share of images is no mode for Otsu's split (D = 0)
MIN_GAP = 3.5  # logits: a positive mode's peak at least this far above the rest
LEVEL_SLACK = 2.0  # logits: the match band reaches this far below the match level
MIN_SPECIFICITY = 0.5  # std(cos - background cos) / std(cos): below this, the label moves with the background
PREVALENT_SPECIFICITY = 0.7  # the same, for a label most images score in the band (no split to go by)
EMPTY_GAP = 1.0  # logits: an empty stretch this wide sets a rare label's images apart
MIN_RARE_IMAGES = 3  # a rare label's separated group holds at least this many images
VALLEY_WINDOW = 0.25  # logits each side: density smoothing when looking for a valley
VALLEY_DEPTH = 0.2  # a valley at most this share of the density of the peaks either side separates them
PEAK_MARGIN = 0.5  # logits below the positive peak, where no valley separates it from look-alikes
SMOOTH = 5  # bins each side, to find a mode's peak


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


def otsu_thresholds(hist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per label: Otsu threshold (a cosine) and Ashman's D between the two modes it separates."""
    w = hist.astype(np.float64)
    total = w.sum(axis=1, keepdims=True)
    w0 = np.cumsum(w, axis=1)
    m0 = np.cumsum(w * CENTRES, axis=1)
    s0 = np.cumsum(w * CENTRES**2, axis=1)
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
    thresholds = CENTRES[split] + 1.0 / BINS  # the upper edge of the last bin of the lower mode
    share = np.where(total[:, 0] > 0, b / np.maximum(total[:, 0], 1), 0)
    return thresholds, np.where(share >= MIN_MODE_SHARE, np.nan_to_num(d), 0.0)


def _smooth(w: np.ndarray, half: int = SMOOTH) -> np.ndarray:
    """Moving sum over 2 * half + 1 bins."""
    c = np.cumsum(np.pad(w, ((0, 0), (half + 1, half))), axis=1)
    return c[:, 2 * half + 1:] - c[:, :-2 * half - 1]


def split_modes(hist: np.ndarray, logit_scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per label: Ashman's D of Otsu's split, the peak of its upper side (a cosine), and that peak's gap
    (logits) above the mean of the lower side."""
    cut, separation = otsu_thresholds(hist)
    w = hist.astype(np.float64)
    below = np.arange(BINS)[None, :] < _bin(cut)[:, None]
    low = (w * below * CENTRES).sum(1) / np.maximum((w * below).sum(1), 1)
    peak = CENTRES[np.where(below, -1.0, _smooth(w)).argmax(1)]
    return separation, peak, logit_scale * (peak - low)


def widest_empty_run(w: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per label: the middle bin and the width (bins) of the widest run of empty bins in [lo, hi)."""
    idx = np.arange(BINS)[None, :]
    empty = (w == 0) & (idx >= lo[:, None]) & (idx < hi[:, None])
    count = np.cumsum(empty, axis=1)
    run = count - np.maximum.accumulate(np.where(empty, 0, count), axis=1)  # empty bins ending at each bin
    end = run.argmax(1)
    width = run.max(1)
    return end - width // 2, width


@dataclass
class Calibration:
    multi: np.ndarray  # per label: the cosine from which an image gets it in multi mode (inf: never)
    single: np.ndarray  # per label: the cosine its winning images must reach in single mode (inf: never)
    match_level: float | None = None  # cosine of a typical true match, when some label of the set shows one


def calibrate(stats: LabelStats, logit_scale: float) -> Calibration:
    """Per-label thresholds for both modes (see the module's docstring)."""
    spec = stats.specificity()
    w = stats.hist.astype(np.float64)
    n = w.sum(1)
    idx = np.arange(BINS)[None, :]
    per_logit = (BINS / 2) / logit_scale  # bins per logit
    separation, upper_peak, split_gap = split_modes(stats.hist, logit_scale)
    split = (separation >= MIN_SEPARATION) & (split_gap >= MIN_GAP) & (spec >= MIN_SPECIFICITY)
    level = float(np.median(upper_peak[split])) if split.any() else None
    if level is None:  # no label has a clear mode: a rare label's own top stands for the match level
        start = BINS - 1 - np.argmax(w[:, ::-1] > 0, axis=1) - int(LEVEL_SLACK * per_logit)
    else:
        start = np.full(len(w), _bin(np.array(level - LEVEL_SLACK / logit_scale)))
        split &= upper_peak >= CENTRES[start]
    in_band = (w * (idx >= start[:, None])).sum(1)
    peak = np.where(idx >= start[:, None], _smooth(w), -1.0).argmax(1)
    median = np.argmax(np.cumsum(w, axis=1) >= n[:, None] / 2, axis=1)
    gap_mid, gap_width = widest_empty_run(w, median, peak)
    rare = ((gap_width >= EMPTY_GAP * per_logit) & ((w * (idx > gap_mid[:, None])).sum(1) >= MIN_RARE_IMAGES)
            & (peak - median >= MIN_GAP * per_logit) & (in_band >= MIN_RARE_IMAGES))
    prevalent = (level is not None) & (in_band >= n / 2) & (spec >= PREVALENT_SPECIFICITY)
    shown = (split | rare | prevalent) & (spec >= MIN_SPECIFICITY)
    lo = np.maximum(start, np.where(rare, gap_mid, 0))
    multi = CENTRES[np.maximum(_cut_below_peak(w, peak, start, per_logit), lo)] - 0.5 / (BINS / 2)
    # Single mode: the softmax has already chosen among the labels; an image keeps its best label unless it
    # scores below the match band ("none of these"). A label with no mode of its own may still win an image.
    single = np.where(shown, np.minimum(CENTRES[lo] - 0.5 / (BINS / 2), multi), CENTRES[start] - 0.5 / (BINS / 2))
    kept = shown | ((level is not None) & (spec >= MIN_SPECIFICITY))
    return Calibration(np.where(shown, multi, np.inf), np.where(kept, single, np.inf), level)


def _cut_below_peak(w: np.ndarray, peak: np.ndarray, start: np.ndarray, per_logit: float) -> np.ndarray:
    """Per label: the bin to cut at below its positive peak: the middle of the floor of a clear valley
    between the peak and the mode below it, or PEAK_MARGIN logits below the peak."""
    idx = np.arange(BINS)[None, :]
    rows = np.arange(len(w))
    dens = _smooth(w, max(1, int(VALLEY_WINDOW * per_logit)))
    lower_peak = np.where(idx < start[:, None], dens, -1.0).argmax(1)
    between = (idx >= lower_peak[:, None]) & (idx <= peak[:, None])
    deepest = np.where(between, dens, np.inf).min(1)
    floor = between & (dens <= deepest[:, None]) & (idx >= start[:, None])  # in the band; often empty bins
    valley = (np.argmax(floor, axis=1) + BINS - 1 - np.argmax(floor[:, ::-1], axis=1)) // 2
    clear = (deepest <= VALLEY_DEPTH * np.minimum(dens[rows, peak], dens[rows, lower_peak])) & floor.any(1)
    return np.where(clear, valley, peak - int(PEAK_MARGIN * per_logit))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def assign(cos: np.ndarray, cal: Calibration | np.ndarray, logit_scale: float,
           mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image rows, label columns, scores) of the tags a block of cosines gets; ``cal`` may be one
    threshold per label for both modes (``--threshold``)."""
    thr = cal if isinstance(cal, np.ndarray) else cal.multi if mode == "multi" else cal.single
    if mode == "multi":
        img, lab = np.nonzero(cos >= thr[None, :])
        return img, lab, sigmoid(logit_scale * (cos[img, lab] - thr[lab]))
    probs = softmax(logit_scale * cos)
    best = probs.argmax(axis=1)
    rows = np.arange(len(cos))
    keep = cos[rows, best] >= thr[best]  # "none of these": the best label is below its match band
    img, lab = rows[keep], best[keep]
    return img, lab, probs[img, lab]
