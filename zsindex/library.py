"""The library facade: what the CLI and Python users call. Never prints or exits."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import config
from .errors import IndexStateError, UsageError
from .labels import LabelSet
from .zeroshot import Classification, Similarity, as_label_set, classify, similarity  # noqa: F401 - public API

if TYPE_CHECKING:
    from .embedder import Embedder
    from .ingest import IngestReport, Progress
    from .search import Filters, Hit


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (str, Path)):
        return [value]
    return list(value)


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
                 create: bool = True, runtime: str | None = None, precision: str | None = None) -> None:
        from .store import DB_NAME, Store

        self.folder = config.index_dir(folder)
        if not create and not (self.folder / DB_NAME).is_file():
            raise IndexStateError(f"no index at {self.folder}; run `zsindex ingest PATH --index {self.folder}` first")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.store = Store(self.folder)
        self._embedder = embedder
        self._model_args = (model, pretrained, device)
        self._runtime, self._precision = runtime, precision
        self._vectors: Any = None
        self._vectors_generation = -1

    # -- parts -------------------------------------------------------------------------------------
    @property
    def embedder(self) -> "Embedder":
        if self._embedder is None:
            from .embedder import load_embedder

            model, pretrained, device = self._model_args
            recorded = self.store.model()
            if not model and not os.environ.get(config.ENV_MODEL) and recorded is not None:
                model, pretrained = recorded.name, pretrained or recorded.pretrained
            precision = self._precision or (recorded.precision if recorded is not None else None)
            self._embedder = load_embedder(model, pretrained, device, runtime=self._runtime, precision=precision)
        return self._embedder

    def _bind_model(self) -> Any:
        emb = self.embedder
        return self.store.bind_model(emb.identity, getattr(emb, "name", emb.identity),
                                     getattr(emb, "pretrained", None), emb.dim, getattr(emb, "precision", "fp32"),
                                     getattr(emb, "runtime", None))

    def _model_row(self) -> Any:
        """The index's model row for the chosen model, loading the model only when nothing else can tell.

        An index that already has a model needs no loading to check that the
        chosen model is that one (its identity is a name or a cached file
        hash); another model is refused as in ``_bind_model``.
        """
        from .embedder import chosen_model

        recorded = self.store.model()
        if recorded is None or self._embedder is not None:
            return self._bind_model()
        model, pretrained, _ = self._model_args
        if not model and not os.environ.get(config.ENV_MODEL):
            if (not pretrained or pretrained == recorded.pretrained) and self._precision in (None, recorded.precision):
                return recorded  # the index's own model is the one that would be loaded
            model = recorded.name
        identity, name, tag = chosen_model(model, pretrained)
        return self.store.bind_model(identity, name, tag, recorded.dim, self._precision)

    def vectors(self, save: bool = False) -> Any:
        """The FAISS index, loaded or rebuilt from SQL when missing or stale; None for an empty index."""
        from .vectors import open_vectors

        model = self.store.model()
        if model is None:
            return None
        generation = self.store.generation()
        stale = self._vectors is None or self._vectors_generation != generation
        if stale or (save and self._vectors.mapped):  # a writer needs the index in memory, not a read-only map
            self._vectors, rebuilt = open_vectors(self.store, model.id, model.dim, generation, writable=save)
            self._vectors_generation = generation
            if rebuilt:
                self._save_vectors(generation, holding_lock=save)
        return self._vectors

    def _save_vectors(self, generation: int, holding_lock: bool) -> None:
        """Keep a rebuilt FAISS file, so the next process need not rebuild it; only one writer saves."""
        from .errors import IndexLockedError
        from .lock import WriteLock

        if holding_lock:
            self._vectors.save(self.folder, generation)
            return
        try:
            with WriteLock(self.folder):
                self._vectors.save(self.folder, generation)
        except IndexLockedError:
            pass  # an ingest is writing; it saves the file when it finishes

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
            model = self._model_row()
            vectors = self.vectors(save=True)
            # the model is loaded only if some file needs embedding
            ingester = Ingester(self.store, lambda: self.embedder, model.id, vectors, batch_size, progress)
            report = ingester.run([Path(p) for p in paths], exclude, follow_symlinks,
                                  default_workers() if workers is None else workers, max_megapixels)
            self._vectors_generation = self.store.generation()
            return report

    def rebuild(self, kind: str | None = None) -> int:
        """Rebuild the FAISS file from SQL; returns the number of vectors.

        ``kind`` (flat, ivf, ivfpq) is recorded and kept by later rebuilds; "auto" or None
        chooses by size (see zsindex.vectors).
        """
        from .lock import WriteLock
        from .vectors import KIND_STATE, KINDS, VectorIndex

        if kind not in (None, "auto", *KINDS):
            raise UsageError(f"unknown vector index kind {kind!r}; choose auto, {', '.join(KINDS)}")
        model = self.store.model()
        if model is None:
            raise IndexStateError(f"the index at {self.folder} is empty; run `zsindex ingest PATH` first")
        with WriteLock(self.folder):
            if kind is not None:
                with self.store.session() as session:
                    self.store.set_state(session, KIND_STATE, "" if kind == "auto" else kind)
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
        fresh, kind = False, None
        if (self.folder / META_NAME).exists():
            import json

            meta = json.loads((self.folder / META_NAME).read_text())
            fresh, kind = meta.get("generation") == self.store.generation(), meta.get("kind", "flat")
        return {
            "index": str(self.folder),
            "model": None if model is None else {"name": model.name, "pretrained": model.pretrained,
                                                 "identity": model.identity, "dim": model.dim,
                                                 "precision": model.precision, "runtime": model.runtime},
            "images": self.store.counts_by_status(),
            "bytes": files,
            "faiss_fresh": fresh,
            "vector_index": kind,
            "last_run": None if run is None else {
                "id": run.id, "status": run.status, "started_at": run.started_at.isoformat(timespec="seconds"),
                "finished_at": run.finished_at.isoformat(timespec="seconds") if run.finished_at else None,
                **{k: getattr(run, k) for k in ("added", "unchanged", "changed", "moved", "deleted", "skipped")},
            },
        }

    def errors(self) -> list[tuple[str, str]]:
        return self.store.errors()

    # -- queries -----------------------------------------------------------------------------------
    def _query_model(self) -> Any:
        """The index's model row; an explicitly chosen model must be the same one."""
        model = self.store.model()
        if model is None or not self.store.has_indexed():
            raise IndexStateError(f"the index at {self.folder} has no images yet; run `zsindex ingest PATH` first")
        if self._embedder is not None or self._model_args[0] or os.environ.get(config.ENV_MODEL):
            self._model_row()  # raises ModelMismatchError for another model
        return model

    def text_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of query texts; cached in the index, so a repeated query skips the text encoder."""
        model = self._query_model()
        wanted = list(dict.fromkeys(texts))
        found = self.store.cached_texts(model.id, wanted)
        missing = [t for t in wanted if t not in found]
        if missing:
            fresh = dict(zip(missing, self.embedder.embed_texts(missing)))
            self.store.cache_texts(model.id, fresh)
            found.update(fresh)
        return np.stack([found[t] for t in texts])

    def image_vector(self, path: str | Path) -> np.ndarray:
        """The stored vector of an indexed file, else the file embedded now."""
        model = self._query_model()
        stored = self.store.stored_vector(model.id, os.path.abspath(path))
        if stored is not None:
            return stored
        from .images import load_pixels

        return self.embedder.embed_images([load_pixels(Path(path), self.embedder.image_size)])[0]

    def search(self, text: str | Sequence[str] | None = None, *, like: str | Path | Sequence[str | Path] | None = None,
               not_: str | Sequence[str] | None = None, not_weight: float = 0.5, k: int = 10, offset: int = 0,
               min_score: float | None = None, filters: "Filters | None" = None, **filter_args: Any) -> list["Hit"]:
        """Images best matching texts and/or example images, minus negative texts, after filters.

        Results are sorted by score, then id, so pages (offset, k) are stable between calls.
        """
        from .search import Filters, compose, filter_ids, hits_for, top_k

        texts, likes, nots = _as_list(text), _as_list(like), _as_list(not_)
        if any(not str(t).strip() for t in texts + nots) or not (texts or likes):
            raise UsageError("give a non-empty query text or --like IMAGE")
        if k < 1 or offset < 0:
            raise UsageError("k must be at least 1 and offset at least 0")
        filters = filters or Filters(**filter_args)
        positive = list(self.text_vectors(texts)) if texts else []
        positive += [self.image_vector(p) for p in likes]
        negative = list(self.text_vectors(nots)) if nots else []
        query = compose(positive, negative, not_weight)
        with self.store.session() as session:
            ids = filter_ids(session, filters) if filters.active else None
        pairs = top_k(self.vectors(), query, offset + k, ids)[offset:]
        if min_score is not None:
            pairs = [p for p in pairs if p[1] >= min_score]
        with self.store.session() as session:
            return hits_for(session, pairs)

    def classify(self, images: Sequence[str | Path], labels: LabelSet | Sequence[str] | str,
                 **kwargs: Any) -> list[Classification]:
        return classify(images, labels, embedder=self.embedder, **kwargs)

    # -- label sets and tags ------------------------------------------------------------------------
    def labels_add(self, name: str, labels: LabelSet | Sequence[str] | str,
                   templates: Sequence[str] = ()) -> dict[str, Any]:
        """Register a label set (labels may carry descriptions and templates of their own)."""
        from .tagging import add_set

        label_set = as_label_set(labels)
        with self.store.session() as session:
            add_set(session, name, label_set.labels, templates or ())
        return self.labels_show(name)

    def labels_edit(self, name: str, add: LabelSet | Sequence[str] | str | None = None,
                    drop: Sequence[str] = ()) -> dict[str, Any]:
        from .tagging import edit_set

        with self.store.session() as session:
            edit_set(session, name, as_label_set(add).labels if add else (), drop)
        return self.labels_show(name)

    def labels_remove(self, name: str) -> None:
        from .tagging import remove_set

        with self.store.session() as session:
            remove_set(session, name)

    def labels_list(self) -> list[dict[str, Any]]:
        from .tagging import list_sets

        with self.store.session() as session:
            return list_sets(session)

    def labels_show(self, name: str) -> dict[str, Any]:
        from .tagging import get_set, row_label, set_templates

        with self.store.session() as session:
            row, labels = get_set(session, name)
            return {"name": row.name, "version": row.version, "templates": list(set_templates(row)),
                    "labels": [{"label": lab.name, "descriptions": list(lab.descriptions),
                                "templates": list(lab.templates)} for lab in map(row_label, labels)]}

    def _label_set(self, labels: str) -> tuple[Any, list[Any]]:
        """A registered set by name, or an ad-hoc 'a,b,c' list registered under that text."""
        from .tagging import add_set, get_set, set_exists

        with self.store.session() as session:
            if not set_exists(session, labels):
                if "," not in labels:
                    get_set(session, labels)  # raises: names the known sets and how to create one
                parsed = as_label_set(labels)
                add_set(session, ",".join(parsed.names), parsed.labels)
                labels = ",".join(parsed.names)
            return get_set(session, labels)

    def tag(self, labels: str, *, mode: str = "single", threshold: float | None = None,
            filters: "Filters | None" = None, progress: "Progress | None" = None, **filter_args: Any) -> Any:
        """Tag every indexed image (or those passing filters) from its stored vector; no image is re-read."""
        from .search import Filters, filter_ids
        from .tagger import MODES, run_tagging
        from .tagging import BACKGROUND, cached_label_vectors
        from .tagging import as_label_set as stored_set

        if mode not in MODES:
            raise UsageError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        model = self._query_model()
        set_row, label_rows = self._label_set(labels)
        label_set = stored_set(set_row, label_rows)
        label_set.labels.append(BACKGROUND)
        vecs = cached_label_vectors(self.store, model.id, label_set, loader=lambda: self.embedder)
        filters = filters or Filters(**filter_args)
        only = None
        if filters.active:
            with self.store.session() as session:
                only = filter_ids(session, filters)
        scale = self._embedder.logit_scale if self._embedder is not None else self._logit_scale(model)
        return run_tagging(self.store, self.vectors(), model.id, set_row, label_rows, vecs[:-1], vecs[-1], scale,
                           mode, threshold, only, repr(filters) if filters.active else "", progress)

    def _logit_scale(self, model: Any) -> float:
        """The model's logit scale, remembered in the index so tagging never needs the model loaded."""
        key = f"logit_scale:{model.id}"
        stored = self.store.get_state(key)
        if stored is None:
            stored = str(self.embedder.logit_scale)
            with self.store.session() as session:
                self.store.set_state(session, key, stored)
        return float(stored)

    def tag_rows(self, labels: str) -> list[dict[str, Any]]:
        from .tagger import tag_rows

        _, rows = self._label_set(labels)
        return tag_rows(self.store, [r.id for r in rows])

    def untag(self, labels: str) -> int:
        from .tagger import untag

        _, rows = self._label_set(labels)
        return untag(self.store, [r.id for r in rows])

    def tag_counts(self, labels: str | None = None) -> dict[str, int]:
        from .tagger import tag_counts

        return tag_counts(self.store, None if labels is None else [r.id for r in self._label_set(labels)[1]])

    def close(self) -> None:
        self.store.close()


def open(folder: str | Path | None = None, **kwargs: Any) -> Library:  # noqa: A001 - the API's name
    """Open (or create) the index at folder, $ZSINDEX_INDEX, or the default data directory."""
    return Library(folder, **kwargs)
