"""Jobs: tag and ingest runs on one worker thread, with progress clients can poll or stream.

One worker thread means one writer at a time, as SQLite and the index's write
lock want; searches run on the server's other threads and read the database
in WAL mode meanwhile. Jobs live in memory (the newest ``KEEP`` of them); what
a run changed is recorded in the index itself (ingest runs, tags).
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import NotFoundError, ZsindexError
from .messages import server_text

log = logging.getLogger("zsindex.service")
KEEP = 200
STATES = ("queued", "running", "done", "failed")
FINISHED = ("done", "failed")


@dataclass
class Job:
    id: str
    kind: str  # "tag" or "ingest"
    params: dict[str, Any] = field(default_factory=dict)
    state: str = "queued"
    done: int = 0
    total: int | None = None
    stage: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    version: int = 0  # bumped on every change, so a stream sends only what changed
    stopping: threading.Event | None = field(default=None, repr=False, compare=False)  # set: the server stops

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def progress(self, stage: str, done: int, total: int) -> None:
        """The library's progress callback: (stage, done, total); where a running job stops when the server does."""
        if self.stopping is not None and self.stopping.is_set():
            raise JobStopped
        self.stage, self.done, self.total = stage, int(done), int(total)
        self.version += 1

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "state": self.state, "params": self.params,
                "progress": {"done": self.done, "total": self.total, "stage": self.stage},
                "result": self.result, "error": self.error,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created))}


Work = Callable[[Job], dict[str, Any]]


class JobStopped(KeyboardInterrupt):
    """Raised in a running job at its next progress step when the server stops: the job ends as a Ctrl-C
    ends a command (an ingest is recorded as interrupted and the next run finishes it; a tag run keeps the
    previous tags), instead of the server waiting for it to finish."""


class JobRunner:
    """A queue of jobs and the one thread that runs them in order."""

    def __init__(self) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queue: queue.Queue[tuple[Job, Work] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()
        self._stopping = threading.Event()

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._loop, name="zsindex-jobs", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the running job at its next progress step (waiting up to timeout); jobs still queued fail as
        not run."""
        self._stopping.set()
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                item[0].error, item[0].state = "not run: the server stopped", "failed"
                item[0].version += 1
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def submit(self, kind: str, work: Work, params: dict[str, Any] | None = None) -> Job:
        with self._lock:
            job = Job(f"{kind}-{next(self._ids)}", kind, dict(params or {}), stopping=self._stopping)
            self._jobs[job.id] = job
            while len(self._jobs) > KEEP:
                oldest = next(iter(self._jobs))
                if not self._jobs[oldest].finished:
                    break
                self._jobs.pop(oldest)
            self._idle.clear()
        self.start()
        self._queue.put((job, work))
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no job with id {job_id!r}")
        return job

    def all(self) -> list[Job]:
        with self._lock:
            return list(reversed(self._jobs.values()))

    def pending(self, kind: str | None = None) -> list[Job]:
        """Jobs queued or running (of one kind)."""
        return [j for j in self.all() if not j.finished and (kind is None or j.kind == kind)]

    def wait_idle(self, timeout: float) -> bool:
        """Block until no job is queued or running (for tests and shutdown)."""
        return self._idle.wait(timeout)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            job, work = item
            job.state = "running"
            job.version += 1
            try:
                job.result = work(job)
                job.state = "done"
            except JobStopped:
                job.error, job.state = "interrupted: the server stopped (an ingest finishes on its next run)", "failed"
            except ZsindexError as e:
                job.error, job.state = server_text(str(e)), "failed"
            except Exception:  # a bug: the job fails, the server and the next jobs carry on
                log.exception("job %s failed", job.id)
                job.error, job.state = "internal error (see the server log)", "failed"
            job.version += 1
            if self._queue.empty() and not self.pending():
                self._idle.set()
