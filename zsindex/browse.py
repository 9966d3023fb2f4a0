"""The facade's browsing half: images by id, their files and thumbnails, facets, label-set overviews.

A mixin of ``Library`` (see library.py), kept apart so each module stays small.
Everything here goes through the store's unit of work; nothing prints.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import NotFoundError
from .params import int_list, path_list

if TYPE_CHECKING:
    from .labels import LabelSet
    from .store import Store


class BrowseMixin:
    if TYPE_CHECKING:
        @property
        def store(self) -> "Store": ...

    folder: Path
    _embedder: Any
    _model_args: tuple[str | None, str | None, str | None]
    _url: str | None
    _create: Callable[[], None]

    # -- model sharing -----------------------------------------------------------------------------
    def sibling(self) -> Any:
        """Another Library on the same folder and model choice, sharing the model once it is loaded.

        A server searches through one and runs jobs through the other, so a job's
        in-place FAISS updates never race a search.
        """
        from .library import Library

        model, pretrained, device = self._model_args
        # The same store: this one's database server (whatever $ZSINDEX_DB says now), or its SQLite file.
        other = Library(self.folder, model=model, pretrained=pretrained, device=device, db=self._url or False)
        other._embedder = self._embedder
        return other

    def use_model_of(self, other: Any) -> None:
        """Use another Library's model (loading it there if needed): one copy of the weights per process."""
        self._embedder = other.embedder

    # -- images ------------------------------------------------------------------------------------
    def roots(self, extra: Sequence[str | Path] = ()) -> list[str]:
        """Roots paths are shown relative to: those given (e.g. at a server's start) and every ingested one."""
        from .catalog import recorded_roots

        with self.store.session() as session:
            recorded = recorded_roots(session)
        extra = path_list(extra, "extra")
        from .scan import index_names

        return list(dict.fromkeys([n for r in extra for n in index_names(r)] + recorded))

    def describe(self, ids: Sequence[int], roots: Sequence[str] | None = None) -> dict[int, dict[str, Any]]:
        """Metadata of indexed images by id; paths relative to their ingest root."""
        from .catalog import describe

        ids = int_list(ids, "ids")
        roots = self.roots() if roots is None else [os.fspath(r) for r in path_list(roots, "roots")]
        with self.store.session() as session:
            return describe(session, ids, roots)

    def image(self, image_id: int, roots: Sequence[str] | None = None) -> dict[str, Any]:
        """One indexed image: metadata and tags. NotFoundError for unknown, deleted or unreadable ids."""
        from .catalog import describe, image_tags, indexed_image

        roots = self.roots() if roots is None else [os.fspath(r) for r in path_list(roots, "roots")]
        with self.store.session() as session:
            indexed_image(session, image_id)
            out = describe(session, [image_id], roots)[image_id]
            out["tags"] = image_tags(session, image_id)
        return out

    def image_source(self, image_id: int) -> str:
        """The recorded path of an indexed image (its stored vector is found by it: "more like this")."""
        from .catalog import indexed_image

        with self.store.session() as session:
            return indexed_image(session, image_id).path

    def image_file(self, image_id: int) -> tuple[Path, str | None]:
        """(path, format) of an indexed image whose file is still the one indexed (same size and mtime).

        A file replaced since ingest (by another file or a link elsewhere) is refused
        until it is ingested again, so only content the index has seen is ever served.
        """
        from .catalog import indexed_image
        from .store import file_changed

        with self.store.session() as session:
            row = indexed_image(session, image_id)
            path, size, mtime_ns, fmt = row.path, row.size, row.mtime_ns, row.format
        changed = file_changed(path, size, mtime_ns)
        if changed is None:
            raise NotFoundError(f"the file of image {image_id} is gone; run Library.ingest(PATH) again")
        if changed:
            raise NotFoundError(f"the file of image {image_id} changed since it was indexed; "
                                f"run Library.ingest(PATH) again")
        return Path(path), fmt

    def _thumbnail_source(self, image_id: int, at: float | None) -> tuple[str, str, float | None]:
        """(path, cache name, frame time or None) of what an image's thumbnail shows. A video shows one
        of the frames ingest sampled: the one nearest ``at`` (a hit's best frame), else its first."""
        from sqlalchemy import select

        from . import schema as s
        from .catalog import indexed_image
        from .thumbcache import video_name

        with self.store.session() as session:
            row = indexed_image(session, image_id)
            path, sha, kind = row.path, row.sha256 or "", row.media_kind
            if kind != "video":
                return path, sha, None
            times = session.execute(select(s.Frame.seconds).where(s.Frame.image_id == image_id)
                                    .order_by(s.Frame.position)).scalars().all()
        if not times:
            seconds = 0.0
        elif at is None:
            seconds = float(times[0])
        else:
            seconds = float(min(times, key=lambda t: abs(t - at)))
        return path, video_name(sha, seconds), seconds

    def thumbnail_key(self, image_id: int, size: int, at: float | None = None) -> str:
        """What names a thumbnail (content hash, a video's frame time, size): an ETag that needs no file access."""
        from .thumbcache import check_size

        check_size(size)
        return f"{self._thumbnail_source(image_id, at)[1]}-{size}"

    def thumbnail(self, image_id: int, size: int, max_megapixels: float | None = None,
                  key: str | None = None, at: float | None = None) -> tuple[bytes, str]:
        """(JPEG bytes, key) of an indexed image's thumbnail, cached on first request. A video's shows
        the frame ingest sampled nearest ``at`` seconds (a hit's best frame), or its first sampled frame.

        With the ``key`` that thumbnail_key just gave, a cached thumbnail needs no second lookup.
        """
        from .config import DEFAULT_MAX_MEGAPIXELS
        from .thumbcache import cache_path, check_size, make_thumbnail, make_video_thumbnail

        check_size(size)
        if key is not None:
            try:
                return cache_path(self.folder, key.rsplit("-", 1)[0], size).read_bytes(), key
            except OSError:
                pass
        path, name, seconds = self._thumbnail_source(image_id, at)
        limit = max_megapixels or DEFAULT_MAX_MEGAPIXELS
        if seconds is not None:
            sha = name.split("@", 1)[0]
            return make_video_thumbnail(self.folder, path, sha, seconds, size, limit), f"{name}-{size}"
        return make_thumbnail(self.folder, path, name, size, limit), f"{name}-{size}"

    def facets(self) -> dict[str, list[dict[str, Any]]]:
        from .catalog import facets

        with self.store.session() as session:
            return facets(session)

    def runs(self, limit: int = 10) -> list[dict[str, Any]]:
        from .catalog import runs

        with self.store.session() as session:
            return runs(session, limit)

    # -- label sets --------------------------------------------------------------------------------
    def label_sets(self) -> list[dict[str, Any]]:
        """Every set: labels, templates, auto flag and how many indexed images it tags."""
        from .catalog import overviews

        with self.store.session() as session:
            return overviews(session)

    def label_set(self, name: str) -> dict[str, Any]:
        """One set's overview plus tag counts per label (NotFoundError if unknown)."""
        from .catalog import require_set, set_overview
        from .tagger import tag_counts

        with self.store.session() as session:
            row, labels = require_set(session, name)
            out = set_overview(session, row, labels)
            ids = [r.id for r in labels]
        counts = tag_counts(self.store, ids)
        out["counts"] = [{"label": lab, "count": counts.get(lab, 0)} for lab in out["labels"]]
        return out

    def labels_put(self, name: str, labels: "LabelSet | Sequence[str] | str", templates: Sequence[str] | None = None,
                   auto: bool | None = None) -> tuple[dict[str, Any], bool]:
        """Create set NAME or make it hold exactly these labels; (overview, created)."""
        from .catalog import put_set
        from .zeroshot import as_label_set

        label_set = as_label_set(labels)
        self._create()  # a first write makes the index
        with self.store.session() as session:
            created = put_set(session, name, label_set.labels, templates, auto)
        return self.label_set(name), created

    def labels_auto(self, name: str, auto: bool = True) -> None:
        """Mark a set for auto-tagging after each ingest the service runs."""
        from .catalog import set_auto

        with self.store.session() as session:
            set_auto(session, name, auto)

    def auto_label_sets(self) -> list[str]:
        from .catalog import auto_sets

        with self.store.session() as session:
            return auto_sets(session)

    def tag_mode(self, name: str) -> str:
        """The mode of the set's current tags ('single' when untagged), for re-tagging it the same way."""
        from .catalog import set_mode

        with self.store.session() as session:
            return set_mode(session, name)

    def stored_label_set(self, name: str) -> "LabelSet":
        """A registered set as a LabelSet (for classifying against it)."""
        from .catalog import require_set
        from .tagging import as_label_set

        with self.store.session() as session:
            return as_label_set(*require_set(session, name))

    def label_images(self, name: str, label: str | None = None, k: int = 24,
                     offset: int = 0) -> list[tuple[int, float]]:
        """(image id, score) of the images a set (or one label of it) tags, best first, stable pages."""
        from .catalog import label_images

        with self.store.session() as session:
            return label_images(session, name, label, k, offset)
