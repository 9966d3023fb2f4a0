"""Labels, prompt templates, prompt ensembling and zero-shot scoring.

A label has a name, optional descriptions (what to embed instead of the bare
name) and optional templates of its own. Its vector is CLIP's prompt ensemble:
every description under every template is embedded, normalised, averaged and
normalised again. Scores are cosines; probabilities are the softmax of
``logit_scale * cosine`` over the label set.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import LabelError, check_path

if TYPE_CHECKING:
    from .embedder import Embedder

DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a close-up photo of the {}.",
    "a rendering of a {}.",
)


@dataclass(frozen=True)
class Label:
    name: str
    descriptions: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()

    def prompts(self, default_templates: Sequence[str]) -> list[str]:
        texts = self.descriptions or (self.name,)
        return [t.format(d) for t in (self.templates or tuple(default_templates)) for d in texts]


@dataclass(frozen=True)
class LabelScore:
    label: str
    score: float
    cosine: float


@dataclass
class LabelSet:
    labels: list[Label]
    templates: tuple[str, ...] = field(default=DEFAULT_TEMPLATES)

    @property
    def names(self) -> list[str]:
        return [label.name for label in self.labels]


def check_templates(templates: Iterable[str]) -> tuple[str, ...]:
    out = tuple(templates)
    for t in out:
        if t.count("{}") != 1:
            raise LabelError(f"template {t!r} must contain '{{}}' exactly once, where the label goes (templates=)")
    return out


def check_text(text: str, what: str) -> str:
    """Labels and queries are text: bytes that are not UTF-8 (from a shell argument) are refused with a message."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise LabelError(f"{what} {text.encode('utf-8', 'surrogateescape')!r} is not valid UTF-8 text") from None
    return text


def _check_unique(labels: list[Label], where: str) -> list[Label]:
    if not labels:
        raise LabelError(f"no labels given in {where}; give at least one, e.g. labels='cat,dog'")
    seen: dict[str, str] = {}
    for label in labels:
        for text in (label.name, *label.descriptions, *label.templates):
            check_text(text, "the label text")
        key = label.name.casefold()
        if key in seen:
            raise LabelError(f"label {label.name!r} appears twice in {where}; each label must be unique")
        seen[key] = label.name
    return labels


def split_label_list(text: str) -> list[str]:
    """'cat, dog,"duck, wild"' -> ['cat', 'dog', 'duck, wild']: comma-separated, quoted as in CSV."""
    try:
        rows = list(csv.reader([text], skipinitialspace=True, strict=True))
    except csv.Error as e:
        raise LabelError(f"cannot read the label list {text!r} ({e}); quote a label holding a comma "
                         "as in CSV: '\"red, dark\",blue'") from None
    return [part.strip() for part in rows[0]] if rows else []


def format_label_list(names: Sequence[str]) -> str:
    """The inverse of split_label_list: names joined by commas, quoted as in CSV where needed."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(names)
    return out.getvalue()


def parse_label_list(text: str) -> list[Label]:
    """'cat, dog,duck' -> three labels; '"red, dark",blue' -> two. Empty items and duplicates are errors."""
    names = split_label_list(text)
    if any(not n for n in names) and any(names):
        raise LabelError(f"empty label in {text!r}: remove the extra comma")
    return _check_unique([Label(n) for n in names if n], "labels=")


def _parse_txt(text: str, where: str) -> list[Label]:
    labels = []
    for line in text.splitlines():
        name = line.strip()
        if name and not name.startswith("#"):
            labels.append(Label(name))
    return labels


def _parse_csv(text: str, where: str) -> list[Label]:
    rows = list(csv.reader(io.StringIO(text)))
    header = [c.strip().casefold() for c in rows[0]] if rows else []
    named = bool(header) and header[0] in ("label", "name")
    merged: dict[str, dict[str, list[str]]] = {}
    for lineno, row in enumerate(rows, start=1):
        if named and lineno == 1 or not any(c.strip() for c in row):
            continue
        name = row[0].strip()
        if not name:
            raise LabelError(f"{where}, line {lineno}: the first column (the label) is empty")
        entry = merged.setdefault(name, {"descriptions": [], "templates": []})
        for col, cell in enumerate(row[1:], start=1):
            cell = cell.strip()
            if not cell:
                continue
            kind = header[col] if named and col < len(header) else "description"
            if kind.startswith("template"):
                entry["templates"].append(cell)
            elif kind.startswith("description"):
                entry["descriptions"].append(cell)
            else:
                raise LabelError(f"{where}, line {lineno}: unknown column {kind!r}; use description or template")
    return [_make_label(n, e, where) for n, e in merged.items()]


def _make_label(name: Any, entry: dict[str, Any], where: str) -> Label:
    if not isinstance(name, str) or not name.strip():
        raise LabelError(f"{where}: a label name must be a non-empty string, got {name!r}")
    descriptions = entry.get("descriptions", [])
    if isinstance(descriptions, str):
        descriptions = [descriptions]
    templates = entry.get("templates", [])
    if not all(isinstance(d, str) and d.strip() for d in descriptions):
        raise LabelError(f"{where}: descriptions of {name!r} must be non-empty strings")
    try:
        checked = check_templates(templates)
    except LabelError as e:
        raise LabelError(f"{where}, label {name!r}: {e}") from None
    return Label(name.strip(), tuple(d.strip() for d in descriptions), checked)


def _parse_json(text: str, where: str) -> list[Label]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise LabelError(f"{where}, line {e.lineno}: invalid JSON ({e.msg})") from None
    if isinstance(data, dict) and "labels" in data:
        data = data["labels"]
    if isinstance(data, dict):
        items = [(k, v if isinstance(v, dict) else {"descriptions": v}) for k, v in data.items()]
    elif isinstance(data, list):
        items = []
        for i, item in enumerate(data):
            if isinstance(item, str):
                items.append((item, {}))
            elif isinstance(item, dict):
                if "label" not in item and "name" not in item:
                    raise LabelError(f"{where}, item {i + 1}: an object needs a \"label\" key with the label's "
                                     f"name (it has {', '.join(map(repr, item)) or 'no keys'})")
                unknown = sorted(set(item) - {"label", "name", "descriptions", "templates"})
                if unknown:
                    raise LabelError(f"{where}, item {i + 1}: unknown key {', '.join(map(repr, unknown))}; "
                                     "use label, descriptions, templates")
                items.append((item.get("label", item.get("name")), item))
            else:
                raise LabelError(f"{where}, item {i + 1}: expected a string or an object, got {item!r}")
    else:
        raise LabelError(f"{where}: expected a list or an object of labels")
    return [_make_label(name, entry, f"{where} ({name!r})") for name, entry in items]


_PARSERS = {".txt": _parse_txt, ".csv": _parse_csv, ".json": _parse_json}


def parse_label_file(path: Path) -> list[Label]:
    """Labels from a .txt (one a line), .csv or .json file; other extensions are refused, not guessed."""
    check_path(path, "labels_file")
    parser = _PARSERS.get(path.suffix.lower())
    if parser is None:
        raise LabelError(f"label file {path} is not .txt, .csv or .json; rename it to the extension that matches "
                         "its content")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise LabelError(f"cannot read label file {path}: {e}") from None
    return _check_unique(parser(text, str(path)), str(path))


def label_vectors(embedder: "Embedder", label_set: LabelSet) -> np.ndarray:
    """(L, d) float32: one prompt-ensembled, unit-length vector per label."""
    prompts: list[str] = []
    spans: list[tuple[int, int]] = []
    for label in label_set.labels:
        ps = label.prompts(label_set.templates)
        spans.append((len(prompts), len(prompts) + len(ps)))
        prompts.extend(ps)
    text_vecs = embedder.embed_texts(prompts)
    out = np.stack([text_vecs[a:b].mean(axis=0) for a, b in spans])
    return normalise(out)


def normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def rank(
    image_vecs: np.ndarray, label_vecs: np.ndarray, names: Sequence[str], logit_scale: float, top_k: int | None = None
) -> list[list[LabelScore]]:
    """Per image: labels best first with softmax probability and raw cosine."""
    cos = image_vecs @ label_vecs.T
    probs = softmax(logit_scale * cos)
    order = np.argsort(-probs, axis=1, kind="stable")[:, : top_k or len(names)]
    return [
        [LabelScore(names[j], float(probs[i, j]), float(cos[i, j])) for j in row] for i, row in enumerate(order)
    ]
