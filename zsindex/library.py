"""The library facade: what the CLI and Python users call. Never prints or exits."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import config
from .browse import BrowseMixin
from .errors import IndexStateError, UsageError, check_path, given, missing_paths, shown
from .labels import LabelSet
from .library_sidecars import SidecarsMixin
from .params import Glob, checked, checked_api, path_list, text_list
from .zeroshot import Classification, Similarity, as_label_set, classify, similarity  # noqa: F401 - public API

if TYPE_CHECKING:
    from .embedder import Embedder
    from .ingest import IngestReport, Progress
    from .search import Filters, Hit
    from .store import Store


def default_workers() -> int:
    """Decode threads: one per core, at most 4. The model's lanes use every core too; the OS shares
    them, and a decode thread that waits on the disk leaves its core to the model."""
    return max(1, min(4, config.usable_cores()))


@checked_api
class Library(SidecarsMixin, BrowseMixin):
    """An index folder: SQLite store, FAISS cache and the model that made its vectors.

    The model is loaded on first use: the one given, else $ZSINDEX_MODEL, else
    the one recorded in the index, else the default.

    Every public method checks its parameters (params.py): a wrong type, a number that is not finite
    or one the command line would refuse raises UsageError naming the parameter; a parameter taking a
    list of paths, globs or texts takes one str or Path as one item.
    """

    def __init__(self, folder: str | Path | None = None, *, embedder: "Embedder | None" = None,
                 model: str | None = None, pretrained: str | None = None, device: str | None = None,
                 create: bool | None = None, runtime: str | None = None, precision: str | None = None,
                 db: str | bool | None = None) -> None:
        """``create``: None (the default) makes the index when something is first written into it (ingest,
        labels_add); reading a folder with no index raises "no index at ..." and creates nothing, as
        the command line does. True makes it now; False refuses a folder with no index at once."""
        from .faults import check_database_files, check_folder_readable
        from .owned import check_index_folder
        from .store import DB_NAME

        self.folder = config.index_dir(folder)
        check_folder_readable(self.folder)  # never taken for a folder with no index, nor for one to make
        if embedder is None and (model or pretrained or create):
            from .embedder import check_weights

            check_weights(model, pretrained)  # a model without weights: refused before any folder is made
        # A database server (db URL, else $ZSINDEX_DB) holds the store and the folder keeps the FAISS
        # cache; db=False: the folder's own SQLite whatever the environment says (private indexes).
        self._url = None if db is False else config.db_url(db if isinstance(db, str) else None)
        self._store: Any = None
        if not self._url:
            check_database_files(self.folder)  # a folder or a pipe in the database's place is no missing index
        if self._url or (self.folder / DB_NAME).is_file() or create:
            self._open_store()
        elif create is False:
            raise self._no_index()
        else:
            self._check_folder_path()
            if self.folder.is_dir():
                check_index_folder(self.folder)  # files of its names zsindex did not make: refused now, as before
        self._embedder = embedder
        self._model_args = (model, pretrained, device)
        self._runtime, self._precision = runtime, precision
        self._vectors: Any = None
        self._vectors_generation = -1
        self._vectors_lock = threading.Lock()  # a server searches from many threads
        self._hold_vectors = False
        self.cache_wait_ms: int | None = None  # a server sets this: a busy database never delays a search

    def _no_index(self) -> IndexStateError:
        from .faults import check_database_files

        check_database_files(self.folder)  # raises when something other than a file has the database's name
        if self.folder.exists() and not self.folder.is_dir():
            return IndexStateError(f"{shown(self.folder)} is a file, not an index folder; give a folder as folder=")
        return IndexStateError(f"no index at {shown(self.folder)}; ingest images into it first "
                               f"(Library.ingest(PATH) with folder={given(self.folder)})")

    def _check_folder_path(self) -> None:
        """A folder that can never be made (a file in its place or on its path) is refused at once."""
        from .faults import file_fault
        from .store import DB_NAME

        for place in (self.folder, *self.folder.parents):
            if os.path.lexists(place):
                if not place.is_dir():
                    raise file_fault(NotADirectoryError(20, "Not a directory"), self.folder / DB_NAME,
                                     f"create the index folder {shown(self.folder)}")
                return

    def _open_store(self) -> None:
        """Open the index, making its folder and database when they are not there yet."""
        from .faults import file_fault
        from .owned import check_index_folder, claim_cache_folder
        from .store import DB_NAME, Store

        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise file_fault(e, self.folder / DB_NAME, f"create the index folder {shown(self.folder)}") from None
        if self._url:
            store = Store(self.folder, self._url)
            claim_cache_folder(self.folder, store)
        else:
            check_index_folder(self.folder)
            store = Store(self.folder, self._url)
        self._store = store

    @property
    def store(self) -> "Store":
        """The index's store; reading a folder with no index (not made yet) raises "no index at ..."."""
        if self._store is None:
            from .store import DB_NAME

            if not (self.folder / DB_NAME).is_file():  # made by another process since: open it
                raise self._no_index()
            self._open_store()
        return self._store

    def _has_index(self) -> bool:
        from .store import DB_NAME

        return self._store is not None or (self.folder / DB_NAME).is_file()

    def _create(self) -> None:
        """Make the index now, for a first write into a folder that has none."""
        if self._store is None:
            self._open_store()

    # -- parts -------------------------------------------------------------------------------------
    @property
    def embedder(self) -> "Embedder":
        if self._embedder is None:
            from .embedder import load_embedder

            self._embedder = load_embedder(**self._model_spec())
        return self._embedder

    def _model_spec(self) -> dict[str, Any]:
        """The load_embedder arguments of this index's model, the environment's settings written in:
        a Ray node loads the same model from them whatever its own environment says."""
        recorded = self.store.model() if self._has_index() else None  # an index not made yet records none
        return config.model_spec(*self._model_args, self._runtime, self._precision,
                                 None if recorded is None else (recorded.name, recorded.pretrained, recorded.precision))

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
        """The FAISS index, loaded or rebuilt from SQL when missing or stale; None for an empty index.

        While ``hold_vectors`` is on (a server's job is writing), the index already
        loaded is kept, so searches do not rebuild it after every ingest batch.
        """
        model = self.store.model()
        if model is None:
            return None
        generation = self.store.generation()
        current = self._vectors
        if current is not None and not (save and current.mapped) and (
                self._vectors_generation == generation or self._hold_vectors):
            return current
        with self._vectors_lock:
            stale = self._vectors is None or self._vectors_generation != generation
            if stale or (save and self._vectors.mapped):  # a writer needs the index in memory, not a read-only map
                self._vectors = self._open_vectors(model, generation, holding_lock=save)
                self._vectors_generation = generation
            return self._vectors

    def hold_vectors(self, hold: bool) -> None:
        """Keep searching the loaded FAISS index while another handle writes (see vectors)."""
        self._hold_vectors = hold

    def refresh_vectors(self) -> None:
        """Load the current FAISS index beside the one in use, then swap: searches never wait for the load."""
        model = self.store.model()
        generation = self.store.generation()
        if model is None or (self._vectors is not None and self._vectors_generation == generation):
            return
        fresh = self._open_vectors(model, generation, holding_lock=False)
        with self._vectors_lock:
            self._vectors, self._vectors_generation = fresh, generation

    def _open_vectors(self, model: Any, generation: int, holding_lock: bool) -> Any:
        """The saved FAISS file of this generation, else one rebuilt from SQL.

        A rebuild is kept (the FAISS file saved, a compressed index's row file written) only under the
        write lock: held by a writer, else taken here when free. Without it (an ingest is writing; a
        read-only folder) the rebuilt index serves this process alone: a row file written beside a writer
        could put back vectors older than the ones it just stored, and the writer saves when it finishes.
        """
        from .lock import WriteLock
        from .vectors import VectorIndex, cache_fault, load_vectors

        blocked = cache_fault(self.folder)  # a folder or a pipe where the cache is kept
        if holding_lock and blocked is not None:
            raise blocked  # a writer: before any work, rather than once it is done
        vectors_id = self.store.vectors_id()
        loaded = load_vectors(self.store, model.id, model.dim, generation, vectors_id, writable=holding_lock)
        if loaded is not None:
            return loaded
        if holding_lock:
            return self._rebuilt_and_saved(model, generation)
        if not self.store.read_only and blocked is None:
            try:
                lock: WriteLock | None = WriteLock(self.folder).acquire()
            except IndexStateError:  # held by a writer (IndexLockedError), or it cannot be made (a full disk)
                lock = None
            if lock is not None:
                try:
                    return self._rebuilt_and_saved(model, generation, reader=True)
                finally:
                    lock.release()
        return VectorIndex.rebuild(self.store, model.id, model.dim, write_rows=False, vectors_id=vectors_id)

    def _rebuilt_and_saved(self, model: Any, generation: int, reader: bool = False) -> Any:
        """The FAISS file (and a compressed index's row file) rebuilt from SQL and saved; under the write lock.

        For a ``reader`` (a search finding the file stale) the save is a favour to the next process: when it
        fails (a full disk, a quota, an I/O error, a read-only file system), the rebuilt index still answers.
        """
        from .vectors import VectorIndex

        vectors_id = self.store.vectors_id()
        vectors = VectorIndex.rebuild(self.store, model.id, model.dim, vectors_id=vectors_id)
        try:
            vectors.save(self.folder, generation, vectors_id)
        except IndexStateError:
            if not reader:
                raise
        return vectors

    # -- jobs --------------------------------------------------------------------------------------
    def ingest(self, paths: Sequence[str | Path], *, exclude: Sequence[str] = (), follow_symlinks: bool = False,
               batch_size: int = config.DEFAULT_BATCH_SIZE, workers: int | None = None,
               max_megapixels: float = config.DEFAULT_MAX_MEGAPIXELS,
               progress: "Progress | None" = None, ray_address: str | None = None) -> "IngestReport":
        """Add new, changed and moved images under paths; mark vanished ones deleted.

        ``ray_address`` ("auto" or HOST:PORT): decode and embed on that Ray cluster, whose nodes
        must all read the files at these paths; this process still plans and writes (ingest_ray.py).
        """
        from .ingest import Ingester
        from .vectors import KIND_STATE

        paths = path_list(paths, "paths")
        exclude = [str(e) for e in path_list(exclude, "exclude", glob=True)]
        if not paths:
            raise UsageError("give at least one folder or file to ingest")
        missing = [str(p) for p in paths if not os.path.exists(p)]
        if missing:
            raise UsageError(missing_paths(missing, gone_hint="; to remove what the index holds under a folder that "
                                                             "is gone, use Library.forget(PATH)"))
        if ray_address is not None:
            from .ingest_ray import require_ray

            require_ray()  # before the model is loaded for nothing
        if self._embedder is None:  # a model without weights is refused before the index is made
            from .embedder import check_weights

            spec = self._model_spec()
            check_weights(spec["model"], spec["pretrained"])
        self._create()
        self._require_writable("ingest into it")
        with self.store.write_lock():
            model = self._model_row()
            self._check_images_allowed()  # before any model is loaded or any run recorded
            vectors = self.vectors(save=True)
            source = self._ray_source(ray_address, model.identity, batch_size)
            # the model is loaded only if some file needs embedding
            ingester = Ingester(self.store, lambda: self.embedder, model.id, vectors, batch_size, progress, source)
            try:
                report = ingester.run([Path(p) for p in paths], exclude, follow_symlinks,
                                      default_workers() if workers is None else workers, max_megapixels)
            finally:
                if source is not None:
                    source.close()
            self._vectors_generation = self.store.generation()
            kind = self.store.get_state(KIND_STATE)
            if kind and vectors.ntotal and vectors.kind != kind:
                # Emptied (nothing to train on), the index got a flat file; filled again, it gets back the kind
                # chosen with `rebuild --kind`, here in the writer rather than in the next search process.
                self._rebuild_vectors(model)
            self._refresh_keywords(report, [os.path.realpath(p) for p in paths])  # files are named so
            return report

    def _check_images_allowed(self) -> None:
        """Refuse, without loading a model, a runtime whose image vectors would not match the index's."""
        from .embedder import images_refused, pick_runtime
        from .errors import ModelMismatchError

        if self._embedder is not None:
            reason = getattr(self._embedder, "images_refused", None)
        else:
            spec = self._model_spec()
            reason = images_refused(spec["precision"], spec["index_precision"],
                                    pick_runtime(spec["runtime"], spec["device"]))
        if reason:
            raise ModelMismatchError(reason)

    def _ray_source(self, address: str | None, identity: str, batch_size: int) -> Any:
        if address is None:
            return None
        from .ingest_ray import RaySource

        return RaySource(address, self._model_spec(), identity, batch_size)

    def rebuild(self, kind: str | None = None) -> int:
        """Rebuild the FAISS file from SQL; returns the number of vectors.

        ``kind`` (flat, ivf, ivfpq) is recorded and kept by later rebuilds; "auto" or None
        chooses by size (see zsindex.vectors).
        """
        from .vectors import KIND_STATE, KINDS

        if kind not in (None, "auto", *KINDS):
            raise UsageError(f"unknown vector index kind {kind!r}; choose auto, {', '.join(KINDS)}")
        model = self.store.model()
        if model is None:
            raise IndexStateError(f"the index at {shown(self.folder)} is empty; run Library.ingest(PATH) first")
        self._require_writable("rebuild its vector file")
        with self.store.write_lock():
            if kind is not None:
                with self.store.session() as session:
                    self.store.set_state(session, KIND_STATE, "" if kind == "auto" else kind)
            self._rebuild_vectors(model)
        return int(self._vectors.ntotal)

    def _rebuild_vectors(self, model: Any) -> None:
        """Rebuild and save the FAISS file now (`rebuild`, a recorded kind restored); under the write lock."""
        self.store.add_vectors_id()  # an index made before generations had ids gets one
        generation = self.store.generation()
        self._vectors = self._rebuilt_and_saved(model, generation)
        self._vectors_generation = generation

    def _require_writable(self, what: str) -> None:
        from .faults import read_only_error

        if self.store.write_fault is not None:
            raise self.store.write_fault
        if self.store.read_only:
            raise read_only_error(self.folder, what)

    def forget(self, paths: Sequence[str | Path] = (), *, missing: bool = False, dry_run: bool = False) -> Any:
        """Remove the images under paths (files or folders, gone or not) from the index, vectors included.

        With ``missing``, only those whose file no longer exists (under paths, or anywhere if none are
        given). Returns a ForgetReport; ``dry_run`` counts without changing anything.
        """
        from .forget import forget_paths

        paths = path_list(paths, "paths")
        if not dry_run:
            self._require_writable("forget images in it")
        return forget_paths(self, paths, missing, dry_run)

    def status(self) -> dict[str, Any]:
        from .lock import writer_active
        from .rowfile import ROWS_NAME
        from .vectors import FAISS_NAME, KIND_STATE, META_NAME, choose_kind, meta_stale, read_regular

        model = self.store.model()
        run = self.store.last_run()
        run_status = run.status if run is not None else None
        if run_status == "running" and not writer_active(self.folder):
            run_status = "interrupted"  # killed before it could say so (SIGKILL, power loss)
        files = {name: (self.folder / name).stat().st_size for name in
                 ("index.sqlite", "index.sqlite-wal", FAISS_NAME, ROWS_NAME) if (self.folder / name).is_file()}
        fresh, kind = False, None
        try:
            import json

            meta = json.loads(read_regular(self.folder / META_NAME))  # never waits on a pipe of that name
            if isinstance(meta, dict):
                fresh = not meta_stale(meta, self.store.generation(), self.store.vectors_id())
                kind = meta.get("kind", "flat")
        except (OSError, ValueError):  # missing or damaged: the cache is rebuilt on next use
            pass
        if not fresh and model is not None:  # the kind it will be rebuilt as: the one chosen, else by size
            kind = self.store.get_state(KIND_STATE) or choose_kind(self.store.count_indexed(model.id))
        return {
            "index": str(self.folder),
            "model": None if model is None else {"name": model.name, "pretrained": model.pretrained,
                                                 "identity": model.identity, "dim": model.dim,
                                                 "precision": model.precision, "runtime": model.runtime},
            "images": self.store.counts_by_status(),
            "ignored": self.ignored_counts(),
            "bytes": files,
            "faiss_fresh": fresh,
            "vector_index": kind,
            "last_run": None if run is None else {
                "id": run.id, "status": run_status, "started_at": run.started_at.isoformat(timespec="seconds"),
                "finished_at": run.finished_at.isoformat(timespec="seconds") if run.finished_at else None,
                **{k: getattr(run, k) for k in ("added", "unchanged", "changed", "moved", "deleted", "skipped")},
            },
        }

    def errors(self) -> list[tuple[str, str]]:
        return self.store.errors()

    def ignored_files(self) -> list[tuple[str, str]]:
        """(path, reason) of files under ingested folders that are not images or videos."""
        from . import ignored

        with self.store.session() as session:
            return ignored.rows(session)

    def ignored_counts(self) -> dict[str, int]:
        """Ignored files by type (extension, or "live photo clip")."""
        from . import ignored

        with self.store.session() as session:
            return ignored.counts(session)

    # -- queries -----------------------------------------------------------------------------------
    def _query_model(self) -> Any:
        """The index's model row; an explicitly chosen model must be the same one."""
        model = self.store.model()
        if model is None or not self.store.has_indexed():
            raise IndexStateError(f"the index at {shown(self.folder)} has no images yet; run Library.ingest(PATH) "
                                  "first")
        if self._embedder is not None or self._model_args[0] or os.environ.get(config.ENV_MODEL):
            self._model_row()  # raises ModelMismatchError for another model
        return model

    def check_model(self) -> None:
        """Refuse now, without loading it, a model this handle could not search the index with: another model
        than the index's (ModelMismatchError), or one whose weights are neither here nor downloadable
        (ModelUnavailableError). A server checks this when it starts, as the command line does at once."""
        if not self._has_index() or self.store.model() is None:
            return  # a new index takes the model its first ingest brings
        if self._embedder is not None or self._model_args[0] or self._model_args[1] or os.environ.get(config.ENV_MODEL):
            self._model_row()
        if self._embedder is None:
            from .embedder import check_obtainable

            spec = self._model_spec()
            check_obtainable(spec["model"], spec["pretrained"], spec["runtime"], spec["device"])

    def text_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of query texts; cached in the index, so a repeated query skips the text encoder."""
        from .labels import check_text

        texts = [check_text(t, "the query text") for t in text_list(texts, "texts")]  # UTF-8, or a UsageError
        model = self._query_model()
        wanted = list(dict.fromkeys(texts))
        found = self.store.cached_texts(model.id, wanted)
        missing = [t for t in wanted if t not in found]
        if missing:
            fresh = dict(zip(missing, self.embedder.embed_texts(missing)))
            self.store.cache_texts(model.id, fresh, wait_ms=self.cache_wait_ms)
            found.update(fresh)
        return np.stack([found[t] for t in texts])

    def image_vector(self, path: str | Path, max_megapixels: float = config.DEFAULT_MAX_MEGAPIXELS) -> np.ndarray:
        """The stored vector of an indexed file, else the file embedded now (a video: its sampled frames,
        as ingest samples them, averaged as for an indexed video), refused over ``max_megapixels``."""
        from .errors import ImageError

        check_path(path, "like")
        model = self._query_model()
        from .scan import index_names

        stored = None
        for name in index_names(path):  # the index names files by their real paths (an older one: as given)
            stored = self.store.stored_vector(model.id, name)
            if stored is None:
                from .frames import mean_vector

                with self.store.session() as session:
                    stored = mean_vector(session, model.id, name, self.store.unpack)  # an indexed video
            if stored is not None:
                break
        if stored is not None:
            return stored
        from .frames import normalised_mean
        from .images import load_pixels
        from .media import kind_of_name
        from .video import read_video

        self._check_images_allowed()
        try:
            if kind_of_name(os.fspath(path)) == "video":
                frames = [image for _, _, image in read_video(os.fspath(path), self.embedder.image_size,
                                                                     max_megapixels).frames]
                return normalised_mean(self.embedder.embed_images(frames))
            pixels = load_pixels(Path(path), self.embedder.image_size, max_megapixels)
        except ImageError as e:
            raise UsageError(f"cannot use {os.fspath(path)!r} as an example image (like=): {e}") from None
        return self.embedder.embed_images([pixels])[0]

    def search(self, text: str | Sequence[str] | None = None, *, like: str | Path | Sequence[str | Path] | None = None,
               not_: str | Sequence[str] | None = None, not_weight: float = 0.5, top_k: int | None = None,
               offset: int = 0, min_score: float | None = None, filters: "Filters | None" = None,
               k: int | None = None, group_stems: bool = False,
               max_megapixels: float = config.DEFAULT_MAX_MEGAPIXELS, **filter_args: Any) -> list["Hit"]:
        """Images best matching texts and/or example images, minus negative texts, after filters.

        ``top_k`` hits (default 10; ``k`` is the same parameter under its older name). Results are
        sorted by score, then id, so pages (offset, top_k) are stable between calls. A hit whose
        file has gone since it was indexed has ``exists`` False. A video is one hit, at the time of
        its best-matching frame (``Hit.seconds``); with ``group_stems`` the files of one shot
        (IMG_1.CR2 + IMG_1.JPG) are one hit, the others in ``Hit.also``. A ``like`` file that is not
        indexed is decoded now, and refused when it is over ``max_megapixels`` (the bomb guard of ingest).
        """
        from .hitgroups import best_hits
        from .labels import check_text
        from .search import check_int, check_number, compose, filter_ids, make_filters

        texts, nots = text_list(text, "text"), text_list(not_, "not_")
        likes = self._likes(like)
        for t in texts + nots:
            check_text(str(t), "the query text")
        if any(not str(t).strip() for t in texts):
            raise UsageError("the query text is empty; give words to search for, or like=IMAGE")
        if any(not str(t).strip() for t in nots):
            raise UsageError("a not_= text is empty; give the words to push results away from")
        if not (texts or likes):
            raise UsageError("give a query text or like=IMAGE")
        if top_k is not None and k is not None and top_k != k:
            raise UsageError("k is another name for top_k; give only one")
        k = check_int(top_k if top_k is not None else k if k is not None else 10, "top_k" if k is None else "k", 1)
        offset = check_int(offset, "offset", 0)
        not_weight = check_number(not_weight, "not_weight") or 0.0
        min_score = check_number(min_score, "min_score")
        filters = make_filters(filters, filter_args)
        positive = list(self.text_vectors(texts)) if texts else []
        positive += [self.image_vector(p, max_megapixels) for p in likes]
        negative = list(self.text_vectors(nots)) if nots else []
        query = compose(positive, negative, not_weight)
        with self.store.session() as session:
            if filters.tag is not None:
                from .tagging import check_tag

                check_tag(session, filters.tag, filters.tag_set)
            ids = filter_ids(session, filters) if filters.active else None
            hits = best_hits(session, self.vectors(), query, offset, k, ids, group_stems)
        return hits if min_score is None else [h for h in hits if h.score >= min_score]

    def _likes(self, like: Any) -> list[str | Path]:
        """like=: example images, each a path or the id of an indexed image (as the server's like=ID)."""
        items = like if isinstance(like, (list, tuple)) else [like] if isinstance(like, (int, np.integer)) else None
        if items is None or not any(isinstance(v, (int, np.integer)) for v in items):
            return path_list(like, "like")
        out: list[str | Path] = []
        for item in items:
            if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
                from .search import check_int

                out.append(self.image_source(check_int(item, "like", 1)))
            else:
                out += path_list([item], "like")
        return out

    def path_matches(self, path: Glob) -> int:
        """How many indexed images a path glob matches, read as search's path= reads it."""
        from .filters import count_path_matches
        from .search import Filters

        pattern = Filters(path=path).path  # the type checked as for any filter
        with self.store.session() as session:
            return count_path_matches(session, pattern or "")

    def classify(self, images: Sequence[str | Path], labels: LabelSet | Sequence[str] | str,
                 **kwargs: Any) -> list[Classification]:
        return classify(images, labels, embedder=self.embedder, **kwargs)

    # -- label sets and tags ------------------------------------------------------------------------
    def labels_add(self, name: str, labels: LabelSet | Sequence[str] | str,
                   templates: Sequence[str] = ()) -> dict[str, Any]:
        """Register a label set (labels may carry descriptions and templates of their own)."""
        from .labels import check_templates
        from .tagging import add_set, check_set_name

        check_set_name(name)  # refused before the index is made
        label_set = as_label_set(labels)
        templates = check_templates(templates)  # refused before the index is made
        self._create()
        with self.store.session() as session:
            add_set(session, name, label_set.labels, templates or ())
        return self.labels_show(name)

    def labels_edit(self, name: str, add: LabelSet | Sequence[str] | str | None = None,
                    drop: Sequence[str] = ()) -> dict[str, Any]:
        from .tagging import edit_set

        drop = text_list(drop, "drop")
        added = as_label_set(add).labels if add else ()
        if not added and not drop:  # as the command line: an edit that changes nothing is no new version
            raise UsageError("nothing to do: give add= (labels to add) or drop= (labels to drop)")
        with self.store.session() as session:
            edit_set(session, name, added, drop)
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

    def has_label_set(self, name: str) -> bool:
        from .tagging import set_exists

        with self.store.session() as session:
            return set_exists(session, name)

    def _label_set(self, labels: str, create: bool = False) -> tuple[Any, list[Any]]:
        """A registered set by name; with create, an unknown name is an ad-hoc list ('a,b,c', or one label).

        An ad-hoc list is registered as a set named by its labels, comma-separated (CSV quoting), or where
        that cannot name a set ('/', control characters, over 200 characters) as tagging.adhoc_set_name
        writes it.
        """
        from .tagging import add_set, adhoc_set_name, get_set, set_exists

        with self.store.session() as session:
            if not set_exists(session, labels):
                if not create:
                    get_set(session, labels)  # raises: names the known sets and how to create one
                parsed = as_label_set(labels)
                labels = adhoc_set_name(parsed.names)
                if not set_exists(session, labels):
                    add_set(session, labels, parsed.labels)
            return get_set(session, labels)

    def tag(self, labels: str, *, mode: str = "single", threshold: float | None = None,
            filters: "Filters | None" = None, progress: "Progress | None" = None,
            calibrate_from_keywords: bool = False, **filter_args: Any) -> Any:
        """Tag every indexed image (or those passing filters) from its stored vector; no image is re-read.

        With ``calibrate_from_keywords``, a label's threshold is learnt from the images the user
        keyworded (see keyword_truth.py) where there are enough of them; the report's warning names
        the labels that kept the unsupervised threshold.
        """
        from .search import check_number, filter_query, make_filters
        from .tagger import MODES

        if mode not in MODES:
            raise UsageError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        self._require_writable("tag its images")
        from .tagging import TagReport

        threshold = check_number(threshold, "threshold")
        if calibrate_from_keywords and threshold is not None:
            raise UsageError("threshold= and calibrate_from_keywords=True exclude each other; give one")
        filters = make_filters(filters, filter_args)  # checked before an ad-hoc set is registered
        model = self._query_model()
        known = self.has_label_set(labels)
        if not known:
            as_label_set(labels)  # an ad-hoc list that cannot be read is refused before anything is written
        only = among = None
        if filters.active:
            from .frames import with_frames

            with self.store.session() as session:
                among = filter_query(session, filters)  # the images the report's counts cover
                ids = np.fromiter(session.scalars(among), dtype=np.int64)
                only = with_frames(session, ids)  # a video is tagged from its frames
            if len(only) == 0:
                from .tagging import adhoc_set_name

                name = labels if known else adhoc_set_name(as_label_set(labels).names)
                version = self.labels_show(name)["version"] if known else 0
                report = TagReport(name, version, mode)
                report.notes = ["no indexed image matches the filters; nothing was tagged" +
                                ("" if known else " and no label set was registered")]
                return report
        set_row, label_rows = self._label_set(labels, create=True)
        try:
            return self._tag(model, set_row, label_rows, known, labels, mode, threshold, filters, only, progress,
                             calibrate_from_keywords, among)
        except BaseException:
            if not known:  # a failed (or interrupted) run leaves no ad-hoc set behind, nor its tags
                self.labels_remove(set_row.name)
            raise

    def _near_set(self, typed: str, new_name: str) -> str:
        """'; did you mean ...' when an ad-hoc label reads like a misspelt set name (a set of the same words)."""
        import difflib

        from .tagging import set_names

        with self.store.session() as session:
            names = [n for n in set_names(session) if n != new_name]
        folded = {n.casefold(): n for n in names}
        near = difflib.get_close_matches(typed.casefold(), list(folded), n=1, cutoff=0.75)
        if not near or "," in typed:
            return ""
        return (f"; did you mean the set {folded[near[0]]!r}? If so, Library.labels_remove({new_name!r}) "
                f"takes the new one away again")

    def _tag(self, model: Any, set_row: Any, label_rows: list[Any], known: bool, labels: str, mode: str,
             threshold: float | None, filters: "Filters", only: Any, progress: "Progress | None",
             calibrate_from_keywords: bool, among: Any = None) -> Any:
        from .tagger import run_tagging
        from .tagging import BACKGROUND, cached_label_vectors
        from .tagging import as_label_set as stored_set

        notes = [] if known else [f"no label set was named {labels!r}: tagged with the ad-hoc labels "
                                  f"{', '.join(r.name for r in label_rows)} (now set {set_row.name!r})"
                                  + self._near_set(labels, set_row.name)]
        label_set = stored_set(set_row, label_rows)
        label_set.labels.append(BACKGROUND)
        vecs = cached_label_vectors(self.store, model.id, label_set, loader=lambda: self.embedder)
        scale = self._embedder.logit_scale if self._embedder is not None else self._logit_scale(model)
        learnt = None
        if calibrate_from_keywords:
            from .keyword_truth import examples, learn_thresholds

            learnt = learn_thresholds(examples(self.store, [r.name for r in label_rows], model.id), vecs[:-1])
        report = run_tagging(self.store, self.vectors(), model.id, set_row, label_rows, vecs[:-1], vecs[-1], scale,
                             mode, threshold, only, repr(filters) if filters.active else "", progress,
                             supervised=None if learnt is None else learnt.thresholds, among=among)
        report.notes = notes + report.notes
        if learnt is not None:
            from .keyword_truth import describe

            report.warning = "; ".join(filter(None, [describe(learnt), report.warning]))
        return report

    def _logit_scale(self, model: Any) -> float:
        """The model's logit scale, remembered in the index so tagging never needs the model loaded."""
        key = f"logit_scale:{model.id}"
        stored = self.store.get_state(key)
        if stored is None:
            stored = str(self.embedder.logit_scale)
            with self.store.session() as session:
                self.store.set_state(session, key, stored)
        return float(stored)

    def tag_rows(self, labels: str, filters: "Filters | None" = None, **filter_args: Any) -> list[dict[str, Any]]:
        """(path, label, score, cosine) of every tag of a set, or of the images passing filters."""
        from .search import filter_ids, make_filters
        from .tagger import tag_rows

        filters = make_filters(filters, filter_args)
        _, rows = self._label_set(labels)
        only = None
        if filters.active:
            with self.store.session() as session:
                only = filter_ids(session, filters)
        return tag_rows(self.store, [r.id for r in rows], only)

    def untag(self, labels: str) -> int:
        from .tagger import untag

        _, rows = self._label_set(labels)
        return untag(self.store, [r.id for r in rows])

    def tag_counts(self, labels: str | None = None, filters: "Filters | None" = None,
                   **filter_args: Any) -> dict[str, int]:
        """Tagged images per label name (of one set, or of all); with filters, only the images passing them."""
        from .tagger import tag_counts

        among = self._among(filters, filter_args)
        return tag_counts(self.store, None if labels is None else [r.id for r in self._label_set(labels)[1]], among)

    def tag_summary(self, labels: str | None = None, filters: "Filters | None" = None,
                    **filter_args: Any) -> list[dict[str, Any]]:
        """Tagged images per label, one row per (set, label): {"set", "label", "images"}; with filters (as
        search takes them), only the images passing them are counted."""
        from .tagger import tag_count_rows

        among = self._among(filters, filter_args)
        return tag_count_rows(self.store, None if labels is None else [r.id for r in self._label_set(labels)[1]],
                              among)

    def _among(self, filters: "Filters | None", filter_args: dict[str, Any]) -> Any:
        """The images a count covers: a SELECT of the ids passing the filters, or None for every image."""
        from .search import filter_query, make_filters

        filters = make_filters(filters, filter_args)
        if not filters.active:
            return None
        with self.store.session() as session:
            if filters.tag is not None:
                from .tagging import check_tag

                check_tag(session, filters.tag, filters.tag_set)
            return filter_query(session, filters)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


@checked
def open(folder: str | Path | None = None, **kwargs: Any) -> Library:  # noqa: A001 - the API's name
    """Open the index at folder, $ZSINDEX_INDEX, or the default data directory.

    A folder with no index is made by the first write (ingest, labels_add); reading it first raises
    IndexStateError ("no index at ...") and creates nothing. ``create=True`` makes it at once.
    """
    return Library(folder, **kwargs)
