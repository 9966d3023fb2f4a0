"""The ingest job: scan, plan, decode in worker threads, embed in batches, commit per batch.

Plan per file: unchanged (same path, size, mtime: not even read), changed,
new, moved (a new path whose content hash belongs to a vanished path: the
image row, its id, vector and tags move with it), or deleted (gone from a
scanned root). Identical files share one stored vector. Each batch is one
transaction, so a crash loses at most the batch in flight; the FAISS file is
saved at the end and rebuilt from SQL if a crash left it stale.

Decoding runs in threads of this process, not in child processes: Pillow,
hashlib and file reads release the GIL for their heavy parts, so threads
overlap with the model as processes did, while a script that calls
``ingest`` needs no ``if __name__ == "__main__"`` guard (spawned children
re-import the caller's main module), and nothing is left running when the
process is killed, even by SIGKILL (no orphaned workers, no resource tracker).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from sqlalchemy import delete, select, update

from . import frames, ignored
from . import schema as s
from .config import DEFAULT_MAX_MEGAPIXELS
from .errors import ImageError, TooLargeError
from .images import decode_bytes
from .scan import FileEntry, real_name, scan
from .sidecars import follow_move
from .store import Store, model_dim, now

if TYPE_CHECKING:
    from .embedder import Embedder
    from .vectors import VectorIndex


class Source(Protocol):
    """Decodes and embeds elsewhere (a Ray cluster, see ingest_ray.py) instead of this process."""

    def open(self, todo: Sequence[FileEntry]) -> int: ...  # returns the image size the model needs

    def decoded(self, entries: Sequence[FileEntry], known: frozenset[str], target: int,
                max_mp: float) -> Iterator[Work]: ...

REPORT_KEYS = ("added", "unchanged", "changed", "moved", "deleted", "skipped")
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class IngestReport:
    run_id: int = 0
    added: int = 0
    unchanged: int = 0
    changed: int = 0
    moved: int = 0
    deleted: int = 0
    skipped: int = 0
    seconds: float = 0.0
    skipped_files: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. a folder with no image files in it
    decode_seconds: float = 0.0
    embed_seconds: float = 0.0
    ignored: dict[str, int] = field(default_factory=dict)  # files that are not images, by type (see scan.py)
    # (sidecar, reason) of XMP sidecars that could not be read: their images are indexed, their keywords not read
    skipped_sidecars: list[tuple[str, str]] = field(default_factory=list)
    # Images whose tags this run dropped (their files changed), the sets those tags were of, and how many of
    # those images have a sidecar that zsindex wrote keywords into (they still hold the old ones)
    untagged: list[str] = field(default_factory=list)
    untagged_sets: set[str] = field(default_factory=set)
    stale_sidecars: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in REPORT_KEYS}
        out["skipped_sidecars"] = len(self.skipped_sidecars)
        out["tags_dropped"] = len(self.untagged)
        out["ignored"] = sum(self.ignored.values())
        out["run_id"] = self.run_id
        out["seconds"] = round(self.seconds, 3)
        return out


@dataclass
class Work:
    """What a worker learnt about one file."""

    entry: FileEntry
    sha256: str | None = None
    image: Any = None  # PIL image when the model needs pixels
    frames: list[tuple[int, float, Any]] | None = None  # a video's sampled (position, seconds, image)
    width: int | None = None
    height: int | None = None
    format: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    vectors: dict[str, np.ndarray] | None = None  # embedded where it was decoded (a Ray node), by vector key
    embed_seconds: float = 0.0  # this item's share of that embedding


# -- decode side (worker threads) ---------------------------------------------------------------------
def _work(entry: FileEntry, known: frozenset[str], target: int, max_mp: float) -> Work:
    """Read once, hash, and decode unless the content already has a vector."""
    started = time.perf_counter()
    out = Work(entry)
    try:
        if entry.kind == "video":
            from .video import read_video

            decoded: Any = read_video(entry.path, target, max_mp)
            out.frames = decoded.frames
        else:
            with open(entry.path, "rb") as f:
                data = f.read()
            decoded = decode_bytes(data, target, max_mp, header_only_for=known,
                                   suffix=os.path.splitext(entry.path)[1])
            out.image = decoded.image
        out.sha256 = decoded.sha256
        out.width, out.height, out.format, out.meta = decoded.width, decoded.height, decoded.format, decoded.meta
    except ImageError as e:
        out.error = str(e)
        if isinstance(e, TooLargeError):  # kept with the error: a later run with a higher limit tries it again
            out.width, out.height = e.width, e.height
    except OSError as e:
        out.error = f"cannot read: {e.strerror or e}"
    out.seconds = time.perf_counter() - started
    return out


class _InlineExecutor(Executor):
    """workers=0: decode in the calling thread (tests, tiny runs, debugging)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:  # type: ignore[override]
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def _decoded(entries: Sequence[FileEntry], workers: int, known: frozenset[str], target: int,
             max_mp: float) -> Iterator[Work]:
    """Decode in order with a bounded window, so memory stays flat however slow the model is."""
    work = functools.partial(_work, known=known, target=target, max_mp=max_mp)
    executor: Executor = (_InlineExecutor() if workers <= 0
                          else ThreadPoolExecutor(workers, thread_name_prefix="zsindex-decode"))
    window: deque[Future] = deque()
    ahead = max(8, workers * 16)
    try:
        it = iter(entries)
        for entry in it:
            window.append(executor.submit(work, entry))
            if len(window) >= ahead:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
    finally:
        for f in window:
            f.cancel()
        executor.shutdown(wait=True, cancel_futures=True)


# -- main side --------------------------------------------------------------------------------------
def _one_name(path: str, given: dict[str, str], follow: bool) -> str:
    """The name the index gives a file the walk found at ``path``: its real path (see scan.real_name);
    ``given``: the walk's roots and their real paths. Without following links the walk passed none below its
    root: the file's real path is its root's real path and the rest."""
    root = max((g for g in given if _under(path, [g])), key=len, default=None)
    if follow or root is None:
        return real_name(path)
    return real_name(path, root, given[root])


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


class _Plan:
    def __init__(self, store: Store, files: list[FileEntry], roots: Sequence[str],
                 max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> None:
        with store.session() as session:
            rows = session.execute(
                select(s.Image.id, s.Image.path, s.Image.size, s.Image.mtime_ns, s.Image.status, s.Image.sha256,
                       s.Image.width, s.Image.height)
            ).all()
        self.by_path = {r.path: r for r in rows}
        self.paths = {r.id: r.path for r in rows}
        seen = {f.path for f in files}
        self.unchanged_ids: list[int] = []
        self.todo: list[FileEntry] = []
        for f in files:
            row = self.by_path.get(f.path)
            # A file refused for its size (its width and height kept with the error) that this run's limit
            # allows is read again: the message had pointed at --max-megapixels, and the flag must work
            allowed = (row is not None and row.status == s.STATUS_ERROR and row.width is not None
                       and row.height is not None and row.width * row.height <= max_megapixels * 1_000_000)
            if row and row.status != s.STATUS_DELETED and row.size == f.size and row.mtime_ns == f.mtime_ns \
                    and not allowed:
                self.unchanged_ids.append(row.id)
            else:
                self.todo.append(f)
        # Rows whose files vanished: deleted, unless a new path turns out to hold their content (a move).
        self.vanished: dict[str, list[int]] = {}
        self.vanished_ids: set[int] = set()
        for r in rows:
            if r.status != s.STATUS_DELETED and r.path not in seen and _under(r.path, roots):
                self.vanished_ids.add(r.id)
                if r.status == s.STATUS_INDEXED and r.sha256:
                    self.vanished.setdefault(r.sha256, []).append(r.id)

    def claim_move(self, session: Any, sha256: str, new_path: str) -> int | None:
        """The row a file found at a new path moved from: a row of this content that vanished from the folders
        walked, or one elsewhere whose file is gone (a folder moved, a link an older index named files through
        removed). Of several, the one whose old name leads to this very file (its link's name), then one of the
        same file name, then any: files of equal content keep their own rows."""
        candidates = {i: self.paths[i] for i in self.vanished.get(sha256, []) if i in self.vanished_ids}
        if not candidates:  # looked up only now, by the content's index (rows this run already moved: in session)
            candidates = {i: p for i, p in session.execute(select(s.Image.id, s.Image.path).where(
                s.Image.sha256 == sha256, s.Image.status == s.STATUS_INDEXED)) if not os.path.lexists(p)}
        if not candidates:
            return None
        name = os.path.basename(new_path)
        rid = min(candidates, key=lambda i: (os.path.realpath(candidates[i]) != new_path,
                                             os.path.basename(candidates[i]) != name, i))
        self.vanished_ids.discard(rid)
        return rid


def _drop_tags(session: Any, image_ids: list[int]) -> tuple[dict[int, str], set[str]]:
    """Tags of images whose content changed (or became unreadable): they described the old content.

    Re-tagging covers these images again (an ingest that changes vectors moves
    the library generation, which every label's tag key includes). Returns the
    images that had tags (id -> path) and the label sets those tags were of.
    """
    tagged: dict[int, str] = {}
    sets: set[str] = set()
    for i in range(0, len(image_ids), 500):
        part = image_ids[i:i + 500]
        for image_id, path, set_name in session.execute(
                select(s.Tag.image_id, s.Image.path, s.LabelSetRow.name).distinct()
                .join(s.Image, s.Image.id == s.Tag.image_id)
                .join(s.LabelRow, s.LabelRow.id == s.Tag.label_id)
                .join(s.LabelSetRow, s.LabelSetRow.id == s.LabelRow.set_id)
                .where(s.Tag.image_id.in_(part))):
            tagged[image_id] = path
            sets.add(set_name)
        session.execute(delete(s.Tag).where(s.Tag.image_id.in_(part)))
    return tagged, sets


def _with_sidecars(session: Any, paths: list[str]) -> int:
    """How many of these images have a sidecar with keywords zsindex wrote (a record is kept only while it
    holds some; see sidecars.py)."""
    wanted = set(paths)
    return len({image for image in session.scalars(select(s.Sidecar.image_path)) if image in wanted})


def _meta_columns(w: Work) -> dict[str, Any]:
    m = w.meta
    return dict(size=w.entry.size, mtime_ns=w.entry.mtime_ns, sha256=w.sha256, width=w.width, height=w.height,
                format=w.format, taken_at=m.get("taken_at"), camera_make=m.get("camera_make"),
                camera_model=m.get("camera_model"), gps_lat=m.get("gps_lat"), gps_lon=m.get("gps_lon"),
                orientation=m.get("orientation"), media_kind=m.get("media_kind"), duration=m.get("duration"))


class Ingester:
    """One ingest run. ``embedder`` may be a loader (a function returning one), called only if a file needs it."""

    def __init__(self, store: Store, embedder: "Embedder | Callable[[], Embedder]", model_id: int,
                 vectors: "VectorIndex", batch_size: int, progress: Progress | None,
                 source: "Source | None" = None) -> None:
        self.store, self.model_id, self.vectors = store, model_id, vectors
        self.source = source  # None: decode in this process's threads and embed here
        self._embedder: Embedder | None = None
        self._loader: Callable[[], Embedder] | None = None
        if hasattr(embedder, "embed_images"):
            self._embedder = embedder  # type: ignore[assignment]
        else:
            self._loader = embedder  # type: ignore[assignment]
        self.batch_size = batch_size
        self.progress = progress or (lambda _stage, _done, _total: None)
        self.report = IngestReport()

    @property
    def embedder(self) -> "Embedder":
        if self._embedder is None:
            assert self._loader is not None  # one of the two is always given
            self._embedder = self._loader()
        return self._embedder

    def known_hashes(self) -> set[str]:
        with self.store.session() as session:
            return set(session.scalars(select(s.Vector.sha256).where(s.Vector.model_id == self.model_id)))

    def run(self, roots: Sequence[Path], exclude: Sequence[str], follow_symlinks: bool, workers: int,
            max_megapixels: float) -> IngestReport:
        from .filters import ingest_roots

        started = time.perf_counter()
        given = [os.path.abspath(os.fspath(r)) for r in roots]
        with self.store.session() as session:
            known = sorted(ingest_roots(session))
        root_strs = [os.path.realpath(g) for g in given]  # the index names files by their real paths
        for g, name in zip(given, root_strs):
            if name != g:
                self.report.warnings.append(f"{g} is {name} under another name (a symbolic link on its way); "
                                            f"the index names its files by their real paths, under {name}")
        try:  # the run's own record too: a Ctrl-C just after it is committed must still mark it
            with self.store.session() as session:
                session.execute(update(s.IngestRun).where(s.IngestRun.status == "running")
                                .values(status="interrupted"))
                run = s.IngestRun(started_at=now(), status="running", roots=json.dumps(root_strs),
                                  **{k: 0 for k in REPORT_KEYS})
                session.add(run)
                session.flush()
                self.report.run_id = run.id
            self._run(roots, root_strs, known, exclude, follow_symlinks, workers, max_megapixels)
        except BaseException as e:  # Ctrl-C or a crash: the run must not stay "running" in `status`
            from .interrupts import is_interrupt

            try:
                if self.report.run_id:  # (a record never committed is nothing to mark)
                    # A connection whose transaction the Ctrl-C cut short may still hold the write lock: close
                    # the pool's connections first, so that the run's own record can be written.
                    self.store.engine.dispose()
                    self._stop("interrupted" if is_interrupt(e) else "failed")  # whatever a Ctrl-C became
            except Exception:  # noqa: BLE001, S110 - left "running": status reads that as interrupted once the
                pass  # lock is free, and the error that ended the run is the one to raise
            raise
        self.report.seconds = time.perf_counter() - started
        return self.report

    def _stop(self, status: str) -> None:
        with self.store.session() as session:
            run = session.get(s.IngestRun, self.report.run_id)
            if run is not None:
                run.status, run.finished_at = status, now()

    def _run(self, roots: Sequence[Path], root_strs: list[str], known: list[str], exclude: Sequence[str],
             follow_symlinks: bool, workers: int, max_megapixels: float) -> None:
        result = scan(roots, exclude, follow_symlinks)
        reals = {os.path.abspath(os.fspath(r)): real for r, real in zip(roots, root_strs)}
        name = functools.partial(_one_name, given=reals, follow=follow_symlinks)
        files = {name(f.path): f for f in reversed(result.files)}  # one file reached twice: kept once
        result.files = sorted((dataclasses.replace(f, path=p) for p, f in files.items()), key=lambda f: f.path)
        result.ignored = sorted({name(p): (name(p), kind, why) for p, kind, why in result.ignored}.values())
        for g, real in reals.items():
            if not any(_under(f.path, [real]) for f in result.files):
                self.report.warnings.append(f"no image files found in {g} (nothing to add from it)")
        # Files that vanished are looked for under the real roots, and under any other name an earlier run
        # gave a folder in them (an index from before names were real paths): such a file found at its real
        # path is that row moved, and keeps its id and tags
        looked_in = sorted({*root_strs, *(k for k in known if k != os.path.realpath(k)
                                          and _under(os.path.realpath(k), root_strs))})
        with self.store.session() as session:
            self.report.ignored = ignored.record(session, self.report.run_id, root_strs, result.ignored)
        self.report.skipped_files.extend(result.problems)
        self.report.skipped += len(result.problems)
        plan = _Plan(self.store, result.files, looked_in, max_megapixels)
        self.report.unchanged = len(plan.unchanged_ids)
        done, total = 0, len(plan.todo)
        if not total:  # nothing to read: no model, no decode workers
            self._finish(plan)
            return
        self.progress("ingest", 0, total)
        batch: list[Work] = []
        for work in self._works(plan.todo, workers, max_megapixels):
            self.report.decode_seconds += work.seconds
            self.report.embed_seconds += work.embed_seconds
            batch.append(work)
            if len(batch) >= self.batch_size:
                self._commit(batch, plan)
                done += len(batch)
                self.progress("ingest", done, total)
                batch = []
        if batch:
            self._commit(batch, plan)
            self.progress("ingest", total, total)
        self._finish(plan)

    def _works(self, todo: list[FileEntry], workers: int, max_megapixels: float) -> Iterator[Work]:
        """The files to add, decoded (and, from a source such as a Ray cluster, embedded) in plan order."""
        known = frozenset(self.known_hashes())
        if self.source is not None:
            target = self.source.open(todo)
            return self.source.decoded(todo, known, target, max_megapixels)
        target = getattr(self.embedder, "image_size", 224)
        return _decoded(todo, workers, known, target, max_megapixels)

    def _embed_new(self, batch: list[Work], session: Any) -> dict[str, np.ndarray]:
        """Vectors for every hash in the batch: stored ones reused, the rest embedded once."""
        items = [item for w in batch for item in frames.pixels_needed(w)]  # (vector key, pixels)
        hashes = {key for key, _ in items}
        found = session.execute(
            select(s.Vector.sha256, s.Vector.vector).where(s.Vector.model_id == self.model_id,
                                                           s.Vector.sha256.in_(hashes))
        ).all()
        stored = self.store.unpack([v for _, v in found], model_dim(session, self.model_id))  # or names damage
        vecs = dict(zip((h for h, _ in found), stored))
        need: dict[str, Any] = {}
        for key, pixels in items:
            if key not in vecs and key not in need:
                # Pixels are only skipped for hashes with a stored vector, and vectors are never
                # removed while the ingest lock is held, so every hash here has an image.
                need[key] = pixels
        if need:
            done = {key: v for w in batch if w.vectors for key, v in w.vectors.items() if key in need}
            rest = [key for key in need if key not in done]
            if rest:
                t = time.perf_counter()
                done.update(zip(rest, self.embedder.embed_images([need[key] for key in rest])))
                self.report.embed_seconds += time.perf_counter() - t
            for h in need:
                v = vecs[h] = done[h]
                session.add(s.Vector(model_id=self.model_id, sha256=h, vector=v.astype(np.float32).tobytes()))
        return vecs

    def _commit(self, batch: list[Work], plan: _Plan) -> None:
        add_ids: list[int] = []
        add_vecs: list[np.ndarray] = []
        remove_ids: list[int] = []
        counts = dict.fromkeys(REPORT_KEYS, 0)
        stamp = now()
        stale_tags: list[int] = []  # images whose content changed: their tags described the old content
        with self.store.session() as session:
            vecs = self._embed_new([w for w in batch if w.error is None], session)
            for w in batch:
                row = plan.by_path.get(w.entry.path)
                image = session.get(s.Image, row.id) if row else None
                if image is not None and image.sha256 is not None and image.sha256 != w.sha256:
                    stale_tags.append(image.id)
                if w.error is not None:
                    if image is None:
                        image = s.Image(path=w.entry.path, first_seen=stamp)
                        session.add(image)
                    elif image.status == s.STATUS_INDEXED:
                        remove_ids.extend(frames.faiss_ids_of_row(session, image))
                    image.size, image.mtime_ns, image.sha256 = w.entry.size, w.entry.mtime_ns, None
                    image.width, image.height = w.width, w.height  # set for a file over the size limit only
                    image.status, image.error, image.last_seen = s.STATUS_ERROR, w.error, stamp
                    counts["skipped"] += 1
                    self.report.skipped_files.append((w.entry.path, w.error))
                    continue
                kind = "changed" if image is not None and image.status != s.STATUS_DELETED else "added"
                if image is not None and image.status == s.STATUS_INDEXED:
                    # its old vector (a video: its frames' vectors) leaves FAISS before the new one goes in
                    remove_ids.extend(frames.faiss_ids_of_row(session, image))
                if image is None:
                    moved_id = plan.claim_move(session, w.sha256 or "", w.entry.path)
                    if moved_id is not None:
                        image = session.get(s.Image, moved_id)
                        follow_move(session, image.path, w.entry.path)  # type: ignore[union-attr]
                        image.path = w.entry.path  # type: ignore[union-attr]
                        kind = "moved"
                    else:
                        image = s.Image(path=w.entry.path, first_seen=stamp)
                        session.add(image)
                for key, value in _meta_columns(w).items():
                    setattr(image, key, value)
                image.status, image.error, image.last_seen = s.STATUS_INDEXED, None, stamp  # type: ignore[union-attr]
                session.flush()
                if kind != "moved" and w.frames is not None:  # a video: one FAISS entry per frame
                    ids, frame_vecs = frames.store(session, image.id, w.sha256 or "", w.frames, vecs)  # type: ignore[union-attr]
                    add_ids.extend(ids)
                    add_vecs.extend(frame_vecs)
                elif kind != "moved":  # a moved row keeps its id and content, so its FAISS entry stays as it is
                    add_ids.append(image.id)  # type: ignore[union-attr]
                    add_vecs.append(vecs[w.sha256])  # type: ignore[index]
                counts[kind] += 1
            # in the transaction of the new vectors: never served as current
            untagged, sets = _drop_tags(session, stale_tags)
            self.report.untagged += untagged.values()
            self.report.untagged_sets |= sets
            self._count(session, counts)
            self.store.bump_generation(session)
        self.vectors.remove(remove_ids)
        if add_ids:
            self.vectors.add(np.array(add_ids, dtype=np.int64), np.stack(add_vecs))

    def _count(self, session: Any, counts: dict[str, int]) -> None:
        run = session.get(s.IngestRun, self.report.run_id)
        for key, n in counts.items():
            setattr(run, key, getattr(run, key) + n)
            setattr(self.report, key, getattr(self.report, key) + n)

    def _finish(self, plan: _Plan) -> None:
        stamp = now()
        gone = sorted(plan.vanished_ids)
        with self.store.session() as session:
            for i in range(0, len(gone), 500):
                session.execute(update(s.Image).where(s.Image.id.in_(gone[i:i + 500]))
                                .values(status=s.STATUS_DELETED, last_seen=stamp))
            for i in range(0, len(plan.unchanged_ids), 500):
                session.execute(update(s.Image).where(s.Image.id.in_(plan.unchanged_ids[i:i + 500]))
                                .values(last_seen=stamp))
            run = session.get(s.IngestRun, self.report.run_id)
            assert run is not None  # created at the start of this run
            run.deleted, run.unchanged = len(gone), self.report.unchanged
            run.skipped = self.report.skipped
            run.status, run.finished_at = "finished", stamp
            generation = self.store.bump_generation(session) if gone else self.store.generation(session)
            vectors_id = self.store.vectors_id(session)
            gone_frames = frames.faiss_ids_of(session, gone)
            if self.report.untagged:
                self.report.stale_sidecars = _with_sidecars(session, self.report.untagged)
        self.report.deleted = len(gone)
        self.vectors.remove(gone + gone_frames)
        self.vectors.save(self.store.folder, generation, vectors_id)
