"""Zero-shot evaluation on labelled images: a class-per-folder tree or a CSV of path,label[,label...].

Vectors come from an index when the images are in it, and otherwise from a
per-model cache index under the zsindex home, filled by the ordinary
incremental ingest: a second run over the same files re-embeds nothing.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import config
from .errors import UsageError, check_path, known_list, missing_paths, shown
from .labels import DEFAULT_TEMPLATES, Label, LabelSet, check_templates, label_vectors
from .params import checked
from .scan import scan

if TYPE_CHECKING:
    from .embedder import Embedder
    from .library import Library

TEMPLATE_PRESETS: dict[str, tuple[str, ...]] = {
    "names": ("{}",),
    "photo": ("a photo of a {}.",),
    "ensemble": DEFAULT_TEMPLATES,
}


@dataclass
class Dataset:
    paths: list[str]
    truth: list[list[str]]  # labels per image
    classes: list[str]

    @property
    def multi_label(self) -> bool:
        return any(len(t) > 1 for t in self.truth)


def clean_name(name: str) -> str:
    return re.sub(r"\s+", " ", name.replace("_", " ").replace("-", " ")).strip()


@checked
def load_dataset(source: Path, raw_names: bool = False) -> Dataset:
    """A folder with one sub-folder per class, or a CSV of path,label[,label...]."""
    check_path(source, "source")
    if not source.exists():
        raise UsageError(missing_paths([source]))
    name = (lambda n: n) if raw_names else clean_name
    paths: list[str] = []
    truth: list[list[str]] = []
    if source.is_dir():
        for folder in sorted(p for p in source.iterdir() if p.is_dir()):
            for entry in scan([folder], follow_symlinks=True).files:  # a dataset of links to images is common
                paths.append(entry.path)
                truth.append([name(folder.name)])
    elif source.suffix.lower() == ".csv":
        with open(source, newline="", encoding="utf-8-sig") as f:
            for lineno, row in enumerate(csv.reader(f), start=1):
                cells = [c.strip() for c in row if c.strip()]
                if not cells or (lineno == 1 and cells[0].lower() == "path"):
                    continue
                if len(cells) < 2:
                    raise UsageError(f"{shown(source)}, line {lineno}: expected path,label[,label...]")
                path = Path(cells[0]).expanduser()
                paths.append(str(path if path.is_absolute() else (source.parent / path).resolve()))
                truth.append([name(c) for c in cells[1:]])
    else:
        raise UsageError(f"{shown(source)} is neither a folder of class folders nor a .csv file")
    if not paths:
        raise UsageError(f"no labelled images found in {shown(source)}")
    classes = sorted({c for t in truth for c in t})
    return Dataset(paths, truth, classes)


def parse_template_spec(spec: str) -> tuple[str, tuple[str, ...]]:
    """'names', 'photo', 'ensemble', or custom templates joined by '|'."""
    if spec in TEMPLATE_PRESETS:
        return spec, TEMPLATE_PRESETS[spec]
    return spec, check_templates(t.strip() for t in spec.split("|"))


def cache_library(embedder: "Embedder") -> "Library":
    """The per-model embedding cache: an ordinary index under the zsindex home."""
    from .library import Library

    key = hashlib.sha256(embedder.identity.encode()).hexdigest()[:16]
    return Library(config.home() / "eval-cache" / key, embedder=embedder, db=False)


def image_vectors(embedder: "Embedder", paths: Sequence[str], index: "Library | None",
                  reasons: dict[str, str] | None = None,
                  max_megapixels: float = config.DEFAULT_MAX_MEGAPIXELS) -> tuple[np.ndarray, list[int]]:
    """Vectors of the readable images (stored ones first, then the cache) and their positions; ``reasons``
    gets why each unreadable one was skipped."""
    from .scan import index_names

    names = {p: index_names(p) for p in paths}  # an index names a file by its real path (an older one: as given)

    def lookup(store: Any, model_id: int, wanted: Sequence[str]) -> None:
        stored = store.stored_vectors(model_id, [n for p in wanted for n in names[p]])
        for p in wanted:
            vec = next((stored[n] for n in names[p] if n in stored), None)
            if vec is not None:
                found[p] = vec

    found: dict[str, np.ndarray] = {}
    if index is not None:
        model = index.store.model()
        if model is not None and model.identity == embedder.identity:
            lookup(index.store, model.id, list(paths))
    rest = [p for p in paths if p not in found]
    if rest:
        cache = cache_library(embedder)
        # the dataset names them: read them
        report = cache.ingest(rest, workers=0, follow_symlinks=True, max_megapixels=max_megapixels)
        if reasons is not None:  # by the dataset's names for the files (the report has the real ones)
            why = dict(report.skipped_files)
            reasons.update({p: why[n] for p in rest for n in names[p][:1] if n in why})
            reasons.update({n: r for n, r in why.items() if n not in {names[p][0] for p in rest}})
        model = cache.store.model()
        assert model is not None  # bound by the ingest just above
        lookup(cache.store, model.id, rest)
        cache.close()
    ok = [i for i, p in enumerate(paths) if p in found]
    dim = getattr(embedder, "dim", 0)
    vecs = np.stack([found[paths[i]] for i in ok]) if ok else np.zeros((0, dim), np.float32)
    return vecs, ok


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    order = np.argsort(-scores, kind="stable")
    hits = relevant[order]
    if not hits.any():
        return float("nan")
    precision_at = np.cumsum(hits) / (np.arange(len(hits)) + 1)
    return float(precision_at[hits].mean())


def metrics(scores: np.ndarray, truth: list[list[str]], classes: list[str]) -> dict[str, Any]:
    """Top-1/top-5, mean per-class accuracy, per-class precision/recall, mAP, confusion matrix."""
    index = {c: i for i, c in enumerate(classes)}
    first = np.array([index[t[0]] for t in truth])
    relevant = np.zeros(scores.shape, dtype=bool)
    for row, labels in enumerate(truth):
        relevant[row, [index[c] for c in labels]] = True
    ranked = np.argsort(-scores, axis=1, kind="stable")
    pred = ranked[:, 0]
    top1 = float(relevant[np.arange(len(pred)), pred].mean())
    top5 = float(np.mean([relevant[i, ranked[i, :5]].any() for i in range(len(pred))]))
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(confusion, (first, pred), 1)
    per_class = {}
    for c, i in index.items():
        support = int(relevant[:, i].sum())
        predicted = int((pred == i).sum())
        correct = int(((pred == i) & relevant[:, i]).sum())
        per_class[c] = {"support": support, "precision": correct / predicted if predicted else 0.0,
                        "recall": correct / support if support else 0.0}
    with_support = [v["recall"] for v in per_class.values() if v["support"]]
    aps = [average_precision(scores[:, i], relevant[:, i]) for i in range(len(classes))]
    return {"images": len(truth), "classes": len(classes), "top1": top1, "top5": top5,
            "mean_per_class_accuracy": float(np.mean(with_support)),
            "mean_average_precision": float(np.nanmean(aps)), "per_class": per_class,
            "confusion": confusion}


def evaluate(embedder: "Embedder", data: Dataset, labels: LabelSet | None,
             template_sets: Sequence[tuple[str, tuple[str, ...]]], index: "Library | None" = None,
             max_megapixels: float = config.DEFAULT_MAX_MEGAPIXELS) -> dict[str, Any]:
    """Metrics for each template set; images embedded once for all of them (over ``max_megapixels``: skipped)."""
    if labels is None:
        labels = LabelSet([Label(c) for c in data.classes])
    names = {lab.name for lab in labels.labels}
    unknown = sorted(set(data.classes) - names)
    if unknown:
        raise UsageError(f"classes without a label: {known_list(unknown)}; add them to labels=, "
                         "or use raw_names=True if the folder names are the labels")
    reasons: dict[str, str] = {}
    vecs, ok = image_vectors(embedder, data.paths, index, reasons, max_megapixels)
    if not ok:
        why = known_list(sorted({reasons.get(p, "could not be read") for p in data.paths}))
        raise UsageError(f"none of the {len(data.paths)} images of the dataset could be read ({why})")
    truth = [data.truth[i] for i in ok]
    classes = labels.names
    results = {}
    for spec_name, templates in template_sets or [("ensemble", DEFAULT_TEMPLATES)]:
        label_vecs = label_vectors(embedder, LabelSet(labels.labels, templates))
        results[spec_name] = metrics(vecs @ label_vecs.T, truth, classes)
    kept = set(ok)
    skipped = [data.paths[i] for i in range(len(data.paths)) if i not in kept]
    return {"classes": classes, "results": results, "skipped": skipped,
            "skipped_reasons": [reasons.get(p, "could not be read") for p in skipped]}


def confusion_plot_target(path: Path) -> tuple[Path, str]:
    """(the exact file a confusion plot named path is written to, its format), decided before any work.

    A name without an extension gets .png (what matplotlib would append); an extension matplotlib cannot
    write is refused here rather than after the evaluation.
    """
    check_path(str(path), "confusion_png")
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    name = path.name
    if name.endswith(".") or (name.startswith(".") and name[1:].lower() in formats):  # "rep.", ".png"
        raise UsageError(f"confusion_png={shown(path)}: give the plot a name, e.g. confusion.png")
    suffix = path.suffix.lower().lstrip(".")
    if not suffix:
        return path.with_name(path.name + ".png"), "png"
    if suffix not in formats:
        raise UsageError(f"confusion_png={shown(path)}: a plot cannot be written as .{suffix}; name the file .png "
                         f"(or {', '.join('.' + f for f in sorted(formats) if f != 'png')})")
    return path, suffix


def save_confusion_png(confusion: np.ndarray, classes: list[str], path: Path, title: str, fmt: str = "png",
                       force: bool = False) -> None:
    """The plot, written to exactly path (see confusion_plot_target) in format fmt; an existing file only
    with force."""
    import io

    import matplotlib

    from .owned import new_output_file

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(classes)
    size = min(40.0, max(6.0, 0.33 * n + 3))  # about a third of an inch per class row
    font = max(6.0, min(10.0, 14.0 * size / max(n, 1)))  # never below 6 pt: names must stay legible
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=90, fontsize=font)
    ax.set_yticks(range(n), classes, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if confusion[i, j]:
                    ax.text(j, i, str(int(confusion[i, j])), ha="center", va="center", fontsize=font,
                            color="white" if confusion[i, j] > confusion.max() / 2 else "black")
    fig.tight_layout()
    buffer = io.BytesIO()  # matplotlib never opens the name itself: it would add .png, or follow a link
    fig.savefig(buffer, format=fmt, dpi=100)
    plt.close(fig)
    with new_output_file(path, force, binary=True) as out:
        out.write(buffer.getvalue())
