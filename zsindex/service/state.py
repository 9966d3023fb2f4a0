"""What one server process holds: settings, the index (a reader and a writer), the job runner.

Searches go through the reader; jobs (ingest, tagging) through the writer,
on the job thread. Both are ``Library`` objects over the same folder sharing
one loaded model, so a job's FAISS updates never race a search's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import NotFoundError, UsageError
from ..library import Library
from .jobs import Job, JobRunner


class OutsideRoots(Exception):
    """A request for a path outside what the server serves (the server's refusal, not the file system's)."""


log = logging.getLogger("zsindex.service")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class Settings:
    token: str | None = None
    read_only: bool = False
    roots: tuple[str, ...] = ()
    watch: bool = False
    cors_origins: tuple[str, ...] = ()
    # Host names the server answers to when no token is set: a page elsewhere that points its
    # own name at 127.0.0.1 (DNS rebinding) is refused. None: any host.
    allowed_hosts: tuple[str, ...] | None = LOOPBACK_HOSTS
    max_upload_bytes: int = 20_000_000
    max_upload_megapixels: float = 50.0
    ingest_workers: int | None = None
    watch_quiet_seconds: float = 2.0
    # Threads each model or FAISS call may use. A server runs many requests at once, so one each
    # avoids oversubscribing the cores (on a busy 2-core machine: text encoding 8x, search 5x faster).
    compute_threads: int | None = 1
    extra: dict[str, Any] = field(default_factory=dict)


class Service:
    def __init__(self, library: Library, settings: Settings) -> None:
        library.check_model()  # another model than the index's, or one not on this machine: refused at start
        self.settings = settings
        self.reader = library
        self.writer: Library = library.sibling()
        self.reader.cache_wait_ms = 100
        self.jobs = JobRunner()
        self.watcher: Any = None
        self.served_roots = tuple(os.path.realpath(r) for r in settings.roots)

    # -- paths -----------------------------------------------------------------------------------
    def roots(self) -> list[str]:
        return self.reader.roots(self.settings.roots)

    def ingest_roots(self, paths: Sequence[str] | None) -> list[str]:
        """The folders an ingest may read: the start-up roots, else the recorded ones; asked-for paths
        must lie inside one of them (so a client can never make the server read elsewhere)."""
        allowed = [os.path.realpath(r) for r in (self.settings.roots or self.reader.roots())]
        if not allowed:
            raise UsageError("no ingest roots: start the server with --root PATH, or ingest once with the CLI")
        if not paths:
            return [r for r in allowed if os.path.exists(r)] or allowed
        out = []
        for p in paths:
            if not isinstance(p, str) or not p or "\x00" in p:
                raise UsageError("each path must be a non-empty string")
            real = os.path.realpath(p if os.path.isabs(p) else os.path.join(allowed[0], p))
            if not any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in allowed):
                raise OutsideRoots("path is outside the served roots")
            if not os.path.exists(real):
                raise NotFoundError("no such file or folder under the served roots")
            out.append(real)
        return out

    # -- jobs ------------------------------------------------------------------------------------
    def _shared_model(self) -> None:
        self.writer.use_model_of(self.reader)

    def submit_tag(self, name: str, mode: str, threshold: float | None) -> Job:
        self.reader.label_set(name)  # NotFoundError now, not a failed job later

        def work(job: Job) -> dict[str, Any]:
            return self.writer.tag(name, mode=mode, threshold=threshold, progress=job.progress).summary()

        return self.jobs.submit("tag", work, {"label_set": name, "mode": mode, "threshold": threshold})

    def submit_ingest(self, paths: Sequence[str] | None = None, reason: str = "request") -> Job:
        roots = self.ingest_roots(paths)

        def work(job: Job) -> dict[str, Any]:
            self._shared_model()
            self.reader.hold_vectors(True)  # searches keep the loaded index instead of rebuilding per batch
            try:
                report = self.writer.ingest(roots, progress=job.progress, workers=self.settings.ingest_workers)
            finally:
                self._refresh_reader()
            shown = self.roots()
            out = report.to_dict()
            out["skipped_files"] = [{"path": _relative(p, shown), "reason": r} for p, r in report.skipped_files[:100]]
            out["auto_tagged"] = self._auto_tag(job)
            return out

        return self.jobs.submit("ingest", work, {"paths": [_relative(r, self.roots()) for r in roots],
                                                 "reason": reason})

    def _refresh_reader(self) -> None:
        try:
            self.reader.refresh_vectors()  # loaded here, on the job thread, then swapped in
        except Exception:
            log.exception("could not reload the vector index after an ingest")
        finally:
            self.reader.hold_vectors(False)

    def _auto_tag(self, job: Job) -> dict[str, Any]:
        """Re-tag every set marked auto, in the mode of its current tags, after an ingest."""
        out: dict[str, Any] = {}
        if not self.writer.store.has_indexed():
            return out
        for name in self.writer.auto_label_sets():
            try:
                report = self.writer.tag(name, mode=self.writer.tag_mode(name), progress=job.progress)
                out[name] = report.summary()
            except NotFoundError:
                continue  # removed meanwhile
        return out

    def limit_threads(self, n: int | None = None) -> int | None:
        """Cap torch's and FAISS's threads (process-wide) at n, or the configured number; returns the
        previous torch setting, for putting it back when the server stops."""
        n = n or self.settings.compute_threads
        if not n:
            return None
        import faiss
        import torch

        before = int(torch.get_num_threads())
        torch.set_num_threads(n)
        faiss.omp_set_num_threads(n)
        return before

    def warm_up(self) -> None:
        """Load the model in the background, so the first search does not wait for it."""
        import threading

        def load() -> None:
            try:
                if self.reader.store.model() is not None:
                    self.reader.embedder  # noqa: B018 - loading is the point
                    self.reader.vectors()
            except Exception as e:  # the first request that needs it reports the problem
                from .messages import server_text

                log.warning("could not load the model ahead of time: %s", server_text(str(e)))

        threading.Thread(target=load, name="zsindex-warm-up", daemon=True).start()

    def start_watching(self) -> None:
        from .watch import Watcher

        roots = [os.path.realpath(r) for r in (self.settings.roots or self.reader.roots())]
        self.watcher = Watcher(self, roots, self.settings.watch_quiet_seconds, ignore=[str(self.reader.folder)])
        self.watcher.start()

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self.jobs.stop()
        self.writer.close()


def _relative(path: str, roots: Sequence[str]) -> str:
    from ..catalog import relative_path

    return relative_path(path, roots)
