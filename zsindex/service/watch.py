"""Keeping the index current: watch the ingested roots, ingest once the changes settle.

A watcher thread (watchfiles) only notes that something changed and when; a
scheduler thread starts one incremental ingest job once the roots have been
quiet for ``quiet`` seconds and no ingest is queued or running. A burst of
thousands of files therefore costs one ingest (or a few, if the burst outlasts
a run), never one per file. The ingest job then re-tags the label sets marked
auto (see Service.submit_ingest).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..media import kind_of_name
from ..scan import INDEXED_KINDS

log = logging.getLogger("zsindex.service")


class Watcher:
    def __init__(self, service: Any, roots: Sequence[str], quiet: float, ignore: Sequence[str] = ()) -> None:
        self.service = service
        self.roots = [r for r in roots if os.path.isdir(r)]
        self.quiet = quiet
        self.ignore = [os.path.realpath(p).rstrip(os.sep) + os.sep for p in ignore]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending = False
        self._last_change = 0.0
        self.changes_seen = 0
        self.ingests_started = 0
        self._threads: list[threading.Thread] = []

    def wanted(self, _change: Any, path: str) -> bool:
        """Every file ingest indexes (images, RAW, JPEG XL, video), XMP sidecars (ingest re-reads their keywords)
        and folders (a moved or deleted folder carries images); never the index's own files."""
        real = os.path.realpath(path)
        if any(real.startswith(prefix) or real + os.sep == prefix for prefix in self.ignore):
            return False
        name = os.path.basename(path)
        if name.startswith("."):
            return False
        suffix = os.path.splitext(name)[1].lower()
        return kind_of_name(name) in INDEXED_KINDS or suffix in ("", ".xmp") or os.path.isdir(path)

    def start(self) -> None:
        if not self.roots:
            log.warning("--watch: no existing roots to watch")
            return
        for target, name in ((self._watch, "zsindex-watch"), (self._schedule, "zsindex-watch-ingest")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._threads = []

    def _watch(self) -> None:
        from watchfiles import watch

        try:
            for changes in watch(*self.roots, watch_filter=self.wanted, stop_event=self._stop, step=50,
                                 debounce=1000, raise_interrupt=False):
                with self._lock:
                    self._pending = True
                    self._last_change = time.monotonic()
                    self.changes_seen += len(changes)
        except Exception:  # a watcher that dies must not take the server with it
            log.exception("the file watcher stopped")

    def _schedule(self) -> None:
        while not self._stop.wait(0.1):
            with self._lock:
                settled = self._pending and time.monotonic() - self._last_change >= self.quiet
            if not settled or self.service.jobs.pending("ingest"):
                continue
            with self._lock:
                self._pending = False
            try:
                self.service.submit_ingest(None, reason="watch")
                self.ingests_started += 1
            except Exception:
                log.exception("could not start an ingest for the watched roots")
