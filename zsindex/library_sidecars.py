"""The facade's part for other photo programs: XMP sidecars out, the user's keywords in.

A mixin of ``Library`` (library.py), kept apart so that each file stays small;
it composes sidecar_sync.py, keywords.py and keyword_truth.py and, like the
rest of the facade, never prints or exits.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import UsageError, check_path, check_paths

if TYPE_CHECKING:
    from .embedder import Embedder
    from .ingest import IngestReport, Progress
    from .store import Store


class SidecarsMixin:
    if TYPE_CHECKING:
        folder: Path
        store: Store

        @property
        def embedder(self) -> Embedder: ...

        def _label_set(self, labels: str, create: bool = False) -> tuple[Any, list[Any]]: ...

        def _query_model(self) -> Any: ...

    def _refresh_keywords(self, report: "IngestReport", roots: list[str]) -> None:
        """The user's keywords of new, changed and re-keyworded images; a changed sidecar counts as a change."""
        from .keywords import count_sidecar_changes, refresh

        found = refresh(self.store, roots)
        if found.sidecar_changes:
            count_sidecar_changes(self.store, report, found.sidecar_changes)

    def sidecars_write(self, labels: str, *, path: str | None = None, min_score: float | None = None,
                       dry_run: bool = False, naming: str = "ext", prefix: str | None = "zsindex",
                       progress: "Progress | None" = None) -> Any:
        """Write the current tags of a label set into each image's XMP sidecar; returns a SidecarReport."""
        from .lock import WriteLock
        from .sidecar_sync import run_sync, wanted_entries
        from .sidecars import sidecar_names

        check_path(path, "path", glob=True)
        sidecar_names("x", naming)  # validates the naming before anything is read
        set_row, _ = self._label_set(labels)
        wanted = wanted_entries(self.store, set_row.name, set_row.id, prefix or None, min_score, path)
        with WriteLock(self.folder):
            report = run_sync(self.store, [set_row.name], wanted, naming, path, dry_run, progress)
            self._after_sidecar_writes(report)
            return report

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
        from .lock import WriteLock
        from .sidecar_sync import run_sync
        from .sidecars import recorded_sets

        with self.store.session() as session:
            scope = sorted(recorded_sets(session)) if labels is None else [labels]
        with WriteLock(self.folder):
            report = run_sync(self.store, scope, {}, "ext", None, dry_run, progress)
            self._after_sidecar_writes(report)
            return report

    def keyword_counts(self, path: str | None = None) -> dict[str, int]:
        """The user's keywords (read by ingest) -> number of indexed images carrying each."""
        from .keywords import counts

        check_path(path, "path", glob=True)
        return counts(self.store, path)

    def keywords(self, paths: Sequence[str | Path] | None = None) -> dict[str, list[str]]:
        """Image path -> the user's own keywords (sidecar, embedded XMP, IPTC), apart from zsindex's tags."""
        from .keywords import image_keywords

        check_paths(paths, "paths")
        return image_keywords(self.store, None if paths is None else {os.path.abspath(p) for p in paths})

    def eval_keywords(self, labels: str, cutoffs: Sequence[float] | None = None) -> dict[str, Any]:
        """Per-label precision/recall/F1 of the set's current tags and of raw cut-offs, against the user's keywords."""
        from .keyword_truth import DEFAULT_CUTOFFS, evaluate, examples, tagged_matrix

        model, set_row, label_rows, vecs = self._set_vectors(labels)
        ex = examples(self.store, [r.name for r in label_rows], model.id)
        if not len(ex.ids):
            raise UsageError(f"no indexed image carries a keyword named like a label of {set_row.name!r}; keyword "
                             "some images (in digiKam, darktable, Lightroom...) and run `zsindex ingest` again")
        tagged = tagged_matrix(self.store, ex, [r.id for r in label_rows])
        return {"label_set": set_row.name, **evaluate(ex, vecs, tagged, cutoffs or DEFAULT_CUTOFFS)}

    def _set_vectors(self, labels: str) -> tuple[Any, Any, list[Any], np.ndarray]:
        from .tagging import as_label_set as stored_set
        from .tagging import cached_label_vectors

        model = self._query_model()
        set_row, label_rows = self._label_set(labels, create=True)  # an ad-hoc list 'a,b' works too
        vecs = cached_label_vectors(self.store, model.id, stored_set(set_row, label_rows),
                                    loader=lambda: self.embedder)
        return model, set_row, label_rows, vecs
