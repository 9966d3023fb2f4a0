"""The facade's part for other photo programs: XMP sidecars out, the user's keywords in.

A mixin of ``Library`` (library.py), kept apart so that each file stays small;
it composes sidecar_sync.py, keywords.py and keyword_truth.py and, like the
rest of the facade, never prints or exits.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UsageError, check_path
from .params import Glob, number_list, path_list

if TYPE_CHECKING:
    from .embedder import Embedder
    from .ingest import IngestReport, Progress
    from .store import Store


def _lock_unless(dry_run: bool, folder: Path) -> Any:
    """The index's write lock, which a dry run (it changes nothing) goes without: it works on a read-only
    index and beside a running ingest."""
    import contextlib

    from .lock import WriteLock

    return contextlib.nullcontext() if dry_run else WriteLock(folder)


class SidecarsMixin:
    if TYPE_CHECKING:
        folder: Path
        @property
        def store(self) -> Store: ...

        @property
        def embedder(self) -> Embedder: ...

        def _label_set(self, labels: str, create: bool = False) -> tuple[Any, list[Any]]: ...

        def _query_model(self) -> Any: ...

    def _refresh_keywords(self, report: "IngestReport", roots: list[str]) -> None:
        """The user's keywords of new, changed and re-keyworded images; a changed sidecar counts as a change,
        and one that cannot be read is reported as skipped (its image is indexed; its keywords are not read)."""
        from .keywords import count_sidecar_changes, refresh

        found = refresh(self.store, roots)
        if found.sidecar_changes:
            count_sidecar_changes(self.store, report, found.sidecar_changes)
        for unread in dict.fromkeys(found.unread_sidecars):  # a sidecar two images share (IMG.xmp): once
            report.skipped_sidecars.append(unread)

    def sidecars_write(self, labels: str, *, path: Glob | None = None, min_score: float | None = None,
                       dry_run: bool = False, naming: str = "ext", prefix: str | None = "zsindex",
                       progress: "Progress | None" = None) -> Any:
        """Write the current tags of a label set into each image's XMP sidecar; returns a SidecarReport."""
        from .sidecar_sync import run_sync, wanted_entries
        from .sidecars import sidecar_names

        check_path(path, "path", glob=True)
        sidecar_names("x", naming)  # validates the naming before anything is read
        set_row, _ = self._label_set(labels)
        wanted = wanted_entries(self.store, set_row.name, set_row.id, prefix or None, min_score, path)
        with _lock_unless(dry_run, self.folder):
            report = run_sync(self.store, [set_row.name], wanted, naming, path, dry_run, progress)
            self._after_sidecar_writes(report)
        if not wanted and not report.sidecars and not self._set_has_tags(set_row.id):
            report.note = (f"label set {set_row.name!r} has no tags yet, so there was nothing to write; tag it "
                           f"first with Library.tag({set_row.name!r})")
        return report

    def _set_has_tags(self, set_id: int) -> bool:
        from sqlalchemy import select

        from . import schema as s

        with self.store.session() as session:
            return session.scalar(select(s.Tag.id).join(s.LabelRow, s.LabelRow.id == s.Tag.label_id)
                                  .where(s.LabelRow.set_id == set_id).limit(1)) is not None

    def _after_sidecar_writes(self, report: Any) -> None:
        """zsindex's own writes are not the user's keyword changes: note the sidecars' new state."""
        from .keywords import refresh

        touched = {image for d in report.sidecars if d["action"] not in ("unchanged", "skipped")
                   for image in d["images"]}
        if touched and not report.dry_run:
            refresh(self.store, paths=touched)

    def sidecars_remove(self, labels: str | None = None, *, dry_run: bool = False,
                        progress: "Progress | None" = None) -> Any:
        """Take out of every sidecar exactly what zsindex wrote there (of one label set, or of all)."""
        from .sidecar_sync import run_sync
        from .sidecars import recorded_sets

        with self.store.session() as session:
            recorded = recorded_sets(session)
        if labels is not None and labels not in recorded:
            self._label_set(labels)  # a set that never wrote a sidecar must at least exist (raises, naming the sets)
        scope = sorted(recorded) if labels is None else [labels]
        with _lock_unless(dry_run, self.folder):
            report = run_sync(self.store, scope, {}, "ext", None, dry_run, progress)
            self._after_sidecar_writes(report)
            return report

    def keyword_counts(self, path: Glob | None = None) -> dict[str, int]:
        """The user's keywords (read by ingest) -> number of indexed images carrying each."""
        from .keywords import counts

        check_path(path, "path", glob=True)
        return counts(self.store, path)

    def keywords(self, paths: Sequence[str | Path] | None = None) -> dict[str, list[str]]:
        """Image path -> the user's own keywords (sidecar, embedded XMP, IPTC), apart from zsindex's tags."""
        from .keywords import image_keywords
        from .scan import index_names

        wanted = None if paths is None else {n for p in path_list(paths, "paths") for n in index_names(p)}
        return image_keywords(self.store, wanted)

    def eval_keywords(self, labels: str, cutoffs: Sequence[float] | None = None) -> dict[str, Any]:
        """Per-label precision/recall/F1 of the set's current tags and of raw cut-offs, against the user's keywords.

        ``labels`` is a label set, or an ad-hoc list 'a,b' (or one label), which is evaluated without being
        registered: nothing is written to the index.
        """
        from .keyword_truth import DEFAULT_CUTOFFS, evaluate, examples, tagged_matrix
        from .tagging import adhoc_set_name, cached_label_vectors, get_set, set_exists
        from .tagging import as_label_set as stored_set
        from .zeroshot import as_label_set

        cutoffs = number_list(cutoffs, "cutoffs")
        model = self._query_model()
        with self.store.session() as session:
            registered = set_exists(session, labels)
            if registered:
                set_row, label_rows = get_set(session, labels)
                name, label_set, label_ids = set_row.name, stored_set(set_row, label_rows), [r.id for r in label_rows]
            else:
                label_set, label_ids = as_label_set(labels), []
                name = adhoc_set_name(label_set.names)
        ex = examples(self.store, label_set.names, model.id)
        if not len(ex.ids):
            if not registered and len(label_set.labels) == 1:  # a set name misspelt, more likely than one label
                with self.store.session() as session:
                    get_set(session, labels)  # raises: no such set, naming the known ones
            raise UsageError(f"no indexed image carries a keyword named like a label of {name!r}; keyword "
                             "some images (in digiKam, darktable, Lightroom...) and run Library.ingest(PATH) again")
        vecs = cached_label_vectors(self.store, model.id, label_set, loader=lambda: self.embedder)
        # Labels never tagged (an ad-hoc list, a set not tagged yet) have no tags to score: a column of zeros
        # would read as tags that are all wrong, so it is left out, and the result says why.
        ever = bool(label_ids) and self._has_tags(label_ids)
        tagged = tagged_matrix(self.store, ex, label_ids) if ever else None
        out = {"label_set": name, **evaluate(ex, vecs, tagged, cutoffs or DEFAULT_CUTOFFS)}
        if not ever:
            out["note"] = (f"{name!r} has no tags yet, so only raw cut-offs are compared; tag it with "
                           f"Library.tag({name!r}) to score its tags too")
        return out

    def _has_tags(self, label_ids: Sequence[int]) -> bool:
        from sqlalchemy import select

        from . import schema as s

        with self.store.session() as session:
            return session.scalar(select(s.Tag.id).where(s.Tag.label_id.in_(list(label_ids))).limit(1)) is not None
