"""Zero-shot scoring of files outside any index: classify and the image-text similarity matrix."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import labels as labels_mod
from .config import DEFAULT_MAX_MEGAPIXELS
from .errors import ImageError, UsageError, known_list, missing_paths
from .images import read_image
from .labels import LabelScore, LabelSet
from .params import checked, path_list, text_list

if TYPE_CHECKING:
    from .embedder import Embedder


@dataclass
class Classification:
    """One image's labels, best first; ``error`` is set instead when it could not be read."""

    path: str
    labels: list[LabelScore] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict:
        if self.error is not None:
            return {"path": self.path, "error": self.error}
        return {
            "path": self.path,
            "labels": [{"label": s.label, "score": s.score, "cosine": s.cosine} for s in self.labels],
        }


LABEL_FILE_SUFFIXES = (".txt", ".csv", ".json", ".yaml", ".yml", ".tsv")


def names_a_path(text: str) -> bool:
    """A labels text that reads as a path (a folder separator, ~, or a label file's suffix) and names one that
    exists; a plain word is a label even when a file of that name happens to be in the current folder."""
    looks = os.sep in text or text.startswith("~") or text.lower().endswith(LABEL_FILE_SUFFIXES)
    return looks and os.path.exists(os.path.expanduser(text))


def as_label_set(labels: LabelSet | Sequence[str] | str, templates: Sequence[str] | None = None) -> LabelSet:
    """Accept a LabelSet, 'a,b,c' or a list of names; templates override the defaults."""
    if isinstance(labels, LabelSet):
        ls = labels
        labels_mod.check_templates(ls.templates)
        for label in ls.labels:
            labels_mod.check_templates(label.templates, f"label {label.name!r}: templates")
    elif isinstance(labels, str):
        if names_a_path(labels):  # `-l labels.txt`: a file (or folder) of labels, not one label of that name
            what = "a folder" if os.path.isdir(os.path.expanduser(labels)) else "a file"
            raise UsageError(f"{labels!r} is {what}, not labels: give the labels themselves, pass the file as a "
                             f"label file where the command takes one, or register its labels as a set (labels "
                             f"add NAME with the file) and name that set")
        ls = LabelSet(labels_mod.parse_label_list(labels))
    elif isinstance(labels, (bytes, Mapping)) or not isinstance(labels, Iterable):
        raise UsageError(f"labels= takes 'a,b,c', a list of label names or a LabelSet, not "
                         f"{type(labels).__name__} {labels!r}")
    else:  # a list of names: each taken whole (a name may hold a comma), each checked
        ls = LabelSet(labels_mod.labels_from_names(labels, "labels="))
    checked = labels_mod.check_templates(templates)
    if checked:
        ls = LabelSet(ls.labels, checked)
    return ls


def _default_embedder(embedder: "Embedder | None", model: str | None, pretrained: str | None) -> "Embedder":
    if embedder is not None:
        return embedder
    from .embedder import load_embedder

    return load_embedder(model, pretrained)


def embed_files(embedder: "Embedder", paths: Sequence[str | Path],
                max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> tuple[np.ndarray, list[int], dict[int, str]]:
    """Embed image files; returns vectors for the readable ones, their positions, and errors by position.

    A video (by its extension, as ingest tells them) is read as ingest reads it, a frame every few seconds,
    and stands for the mean of its frames' vectors (made unit length again): what the clip shows overall."""
    from .media import kind_of_name

    size = getattr(embedder, "image_size", 224)
    images, ok, errors = [], [], {}
    spans: list[int] = []  # how many pictures each readable file gave (a video: its frames)
    for i, p in enumerate(paths):
        try:
            if kind_of_name(os.fspath(p)) == "video":
                from .video import read_video

                frames = [im for _pos, _sec, im in read_video(os.fspath(p), size, max_megapixels).frames]
            else:
                image = read_image(Path(p), size, max_megapixels).image
                assert image is not None  # pixels are always decoded here
                frames = [image]
            images.extend(frames)
            spans.append(len(frames))
            ok.append(i)
        except ImageError as e:
            errors[i] = str(e)
        except OSError as e:
            errors[i] = f"cannot read: {e.strerror or e}"
    vectors = embedder.embed_images(images)
    if len(spans) == len(images):  # one picture each: no video among them
        return vectors, ok, errors
    ends = np.cumsum(spans)
    pooled = np.stack([vectors[end - n:end].mean(axis=0) for n, end in zip(spans, ends)]) if spans else vectors
    pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return pooled.astype(vectors.dtype, copy=False), ok, errors


def existing_files(images: object, name: str = "images") -> list[str | Path]:
    """The image files of a call: one path or a list (see params.path_list); a path that does not exist
    is a usage error at once ("no such file"), while a file that exists but cannot be read is skipped."""
    paths = path_list(images, name)
    missing = [os.fspath(p) for p in paths if not os.path.exists(p)]
    if missing:
        raise UsageError(missing_paths(missing, "file"))
    folders = [os.fspath(p) for p in paths if os.path.isdir(p)]
    if folders:  # a folder is not an image that could not be read: say what to give instead
        raise UsageError(f"{known_list(folders)}: a folder, where image files are wanted; give its files (a "
                         "shell glob such as FOLDER/*.jpg), or index the folder with Library.ingest(PATH) and tag it "
                         "with Library.tag()")
    return paths


@checked
def classify(
    images: Sequence[str | Path],
    labels: LabelSet | Sequence[str] | str,
    *,
    templates: Sequence[str] | None = None,
    top_k: int | None = None,
    embedder: "Embedder | None" = None,
    model: str | None = None,
    pretrained: str | None = None,
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
) -> list[Classification]:
    """Zero-shot classify image files against labels: softmax(logit_scale * cosine)."""
    label_set = as_label_set(labels, templates)  # the arguments first, then the files they name
    images = existing_files(images)
    if not images:
        raise UsageError("no images given")
    emb = _default_embedder(embedder, model, pretrained)
    label_vecs = labels_mod.label_vectors(emb, label_set)
    vecs, ok, errors = embed_files(emb, images, max_megapixels)
    ranked = labels_mod.rank(vecs, label_vecs, label_set.names, emb.logit_scale, top_k)
    out = [Classification(str(p)) for p in images]
    for row, i in zip(ranked, ok):
        out[i].labels = row
    for i, reason in errors.items():
        out[i].error = reason
    return out


@dataclass
class Similarity:
    images: list[str]
    texts: list[str]
    cosine: np.ndarray  # (images, texts)
    errors: dict[str, str]


@checked
def similarity(
    images: Sequence[str | Path],
    texts: Sequence[str],
    *,
    embedder: "Embedder | None" = None,
    model: str | None = None,
    pretrained: str | None = None,
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
) -> Similarity:
    """Cosine similarity of every readable image against every text."""
    images, texts = path_list(images, "images"), text_list(texts, "texts")
    if not images or not texts:
        raise UsageError("give at least one image (images=) and one text (texts=)")
    images = existing_files(images)
    if any(not t.strip() for t in texts):
        raise UsageError("a text (texts=) is empty")
    emb = _default_embedder(embedder, model, pretrained)
    vecs, ok, errors = embed_files(emb, images, max_megapixels)
    text_vecs = emb.embed_texts(list(texts))
    return Similarity(
        [str(images[i]) for i in ok],
        list(texts),
        vecs @ text_vecs.T,
        {str(images[i]): reason for i, reason in errors.items()},
    )
