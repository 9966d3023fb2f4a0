"""The library facade: what the CLI and Python users call. Never prints or exits."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from . import config
from . import labels as labels_mod
from .errors import ImageError, IndexStateError, UsageError
from .images import read_image
from .labels import LabelScore, LabelSet

if TYPE_CHECKING:
    from .embedder import Embedder
    from .ingest import IngestReport, Progress


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


def as_label_set(labels: LabelSet | Sequence[str] | str, templates: Sequence[str] | None = None) -> LabelSet:
    """Accept a LabelSet, 'a,b,c' or a list of names; templates override the defaults."""
    if isinstance(labels, LabelSet):
        ls = labels
    elif isinstance(labels, str):
        ls = LabelSet(labels_mod.parse_label_list(labels))
    else:
        ls = LabelSet(labels_mod.parse_label_list(",".join(labels)))
    if templates:
        ls = LabelSet(ls.labels, labels_mod.check_templates(templates))
    return ls


def _default_embedder(embedder: "Embedder | None", model: str | None, pretrained: str | None) -> "Embedder":
    if embedder is not None:
        return embedder
    from .embedder import load_embedder

    return load_embedder(model, pretrained)


def embed_files(embedder: "Embedder", paths: Sequence[str | Path]) -> tuple[np.ndarray, list[int], dict[int, str]]:
    """Embed image files; returns vectors for the readable ones, their positions, and errors by position."""
    images, ok, errors = [], [], {}
    for i, p in enumerate(paths):
        try:
            images.append(read_image(Path(p), getattr(embedder, "image_size", 224)).image)
            ok.append(i)
        except ImageError as e:
            errors[i] = str(e)
    return embedder.embed_images(images), ok, errors


def classify(
    images: Sequence[str | Path],
    labels: LabelSet | Sequence[str] | str,
    *,
    templates: Sequence[str] | None = None,
    top_k: int | None = None,
    embedder: "Embedder | None" = None,
    model: str | None = None,
    pretrained: str | None = None,
) -> list[Classification]:
    """Zero-shot classify image files against labels: softmax(logit_scale * cosine)."""
    if not images:
        raise UsageError("no images given")
    label_set = as_label_set(labels, templates)
    emb = _default_embedder(embedder, model, pretrained)
    label_vecs = labels_mod.label_vectors(emb, label_set)
    vecs, ok, errors = embed_files(emb, images)
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


def similarity(
    images: Sequence[str | Path],
    texts: Sequence[str],
    *,
    embedder: "Embedder | None" = None,
    model: str | None = None,
    pretrained: str | None = None,
) -> Similarity:
    """Cosine similarity of every readable image against every text."""
    if not images or not texts:
        raise UsageError("give at least one --image and one --text")
    emb = _default_embedder(embedder, model, pretrained)
    vecs, ok, errors = embed_files(emb, images)
    text_vecs = emb.embed_texts(list(texts))
    return Similarity(
        [str(images[i]) for i in ok],
        list(texts),
        vecs @ text_vecs.T,
        {str(images[i]): reason for i, reason in errors.items()},
    )


def default_workers() -> int:
    """Decode processes: leave a core to the model, which is the slower stage on CPU."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


class Library:
    """An index folder: SQLite store, FAISS cache and the model that made its vectors.

    The model is loaded on first use: the one given, else $ZSINDEX_MODEL, else
    the one recorded in the index, else the default.
    """

    def __init__(self, folder: str | Path | None = None, *, embedder: "Embedder | None" = None,
                 model: str | None = None, pretrained: str | None = None, device: str | None = None,
                 create: bool = True) -> None:
        from .store import DB_NAME, Store

        self.folder = config.index_dir(folder)
        if not create and not (self.folder / DB_NAME).is_file():
            raise IndexStateError(f"no index at {self.folder}; run `zsindex ingest PATH --index {self.folder}` first")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.store = Store(self.folder)
        self._embedder = embedder
        self._model_args = (model, pretrained, device)
        self._vectors: Any = None

    # -- parts -------------------------------------------------------------------------------------
    @property
    def embedder(self) -> "Embedder":
        if self._embedder is None:
            from .embedder import load_embedder

            model, pretrained, device = self._model_args
            recorded = self.store.model()
            if not model and not os.environ.get(config.ENV_MODEL) and recorded is not None:
                model, pretrained = recorded.name, pretrained or recorded.pretrained
            self._embedder = load_embedder(model, pretrained, device)
        return self._embedder

    def _bind_model(self) -> Any:
        emb = self.embedder
        return self.store.bind_model(emb.identity, getattr(emb, "name", emb.identity),
                                     getattr(emb, "pretrained", None), emb.dim)

    def vectors(self, save: bool = False) -> Any:
        """The FAISS index, loaded or rebuilt from SQL when missing or stale; None for an empty index."""
        from .vectors import open_vectors

        model = self.store.model()
        if model is None:
            return None
        if self._vectors is None or self._vectors_generation != self.store.generation():
            self._vectors, _ = open_vectors(self.store, model.id, model.dim, save)
            self._vectors_generation = self.store.generation()
        return self._vectors

    # -- jobs --------------------------------------------------------------------------------------
    def ingest(self, paths: Sequence[str | Path], *, exclude: Sequence[str] = (), follow_symlinks: bool = False,
               batch_size: int = config.DEFAULT_BATCH_SIZE, workers: int | None = None,
               max_megapixels: float = config.DEFAULT_MAX_MEGAPIXELS,
               progress: "Progress | None" = None) -> "IngestReport":
        """Add new, changed and moved images under paths; mark vanished ones deleted."""
        from .ingest import Ingester
        from .lock import WriteLock

        if not paths:
            raise UsageError("give at least one folder or file to ingest")
        missing = [str(p) for p in paths if not os.path.exists(p)]
        if missing:
            raise UsageError(f"no such file or folder: {', '.join(missing)}")
        with WriteLock(self.folder):
            model = self._bind_model()
            vectors = self.vectors(save=True)
            ingester = Ingester(self.store, self.embedder, model.id, vectors, batch_size, progress)
            report = ingester.run([Path(p) for p in paths], exclude, follow_symlinks,
                                  default_workers() if workers is None else workers, max_megapixels)
            self._vectors_generation = self.store.generation()
            return report

    def rebuild(self) -> int:
        """Rebuild the FAISS file from SQL; returns the number of vectors."""
        from .lock import WriteLock
        from .vectors import VectorIndex

        model = self.store.model()
        if model is None:
            raise IndexStateError(f"the index at {self.folder} is empty; run `zsindex ingest PATH` first")
        with WriteLock(self.folder):
            generation = self.store.generation()
            self._vectors = VectorIndex.rebuild(self.store, model.id, model.dim)
            self._vectors.save(self.folder, generation)
            self._vectors_generation = generation
        return int(self._vectors.ntotal)

    def status(self) -> dict[str, Any]:
        from .vectors import FAISS_NAME, META_NAME

        model = self.store.model()
        run = self.store.last_run()
        files = {name: (self.folder / name).stat().st_size for name in
                 ("index.sqlite", "index.sqlite-wal", FAISS_NAME) if (self.folder / name).exists()}
        fresh = False
        if (self.folder / META_NAME).exists():
            import json

            fresh = json.loads((self.folder / META_NAME).read_text()).get("generation") == self.store.generation()
        return {
            "index": str(self.folder),
            "model": None if model is None else {"name": model.name, "pretrained": model.pretrained,
                                                 "identity": model.identity, "dim": model.dim},
            "images": self.store.counts_by_status(),
            "bytes": files,
            "faiss_fresh": fresh,
            "last_run": None if run is None else {
                "id": run.id, "status": run.status, "started_at": run.started_at.isoformat(timespec="seconds"),
                "finished_at": run.finished_at.isoformat(timespec="seconds") if run.finished_at else None,
                **{k: getattr(run, k) for k in ("added", "unchanged", "changed", "moved", "deleted", "skipped")},
            },
        }

    def errors(self) -> list[tuple[str, str]]:
        return self.store.errors()

    def classify(self, images: Sequence[str | Path], labels: LabelSet | Sequence[str] | str,
                 **kwargs: Any) -> list[Classification]:
        return classify(images, labels, embedder=self.embedder, **kwargs)

    def close(self) -> None:
        self.store.close()


def open(folder: str | Path | None = None, **kwargs: Any) -> Library:  # noqa: A001 - the API's name
    """Open (or create) the index at folder, $ZSINDEX_INDEX, or the default data directory."""
    return Library(folder, **kwargs)
