"""Third-party code run without touching the caller's logging set-up.

open_clip and ONNX Runtime's quantizer log through the logging module's own
functions (``logging.info(...)``), that is on the root logger, and those call
``logging.basicConfig()`` when the root logger has no handler: a library that
merely loads a model would leave a handler on stderr in its caller's process.
``root_logging_kept()`` runs such code with a stand-in handler on a root
logger that has none, so that basicConfig never runs, and the stand-in shows
a record exactly as Python shows one that no handler takes (through
``logging.lastResort``). ``drop_records_from(package)`` drops the records made
in one package's files (the quantizer's advice to pre-process its graph) by a
filter on the root logger. Both are removed afterwards; ``logging.disable``,
levels and the caller's handlers are never changed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_users = 0


class _AsIfNoHandler(logging.Handler):
    """A root handler that does what Python does with a record no handler takes."""

    def emit(self, record: logging.LogRecord) -> None:
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:  # another handler on the record's way up takes it: nothing to add
            if any(h is not self for h in logger.handlers):
                return
            logger = logger.parent if logger.propagate else None
        last = logging.lastResort
        if last is not None and record.levelno >= last.level:
            last.handle(record)


_STAND_IN = _AsIfNoHandler()


@contextlib.contextmanager
def root_logging_kept() -> Iterator[None]:
    """Run third-party code so that its logging.info(...) calls do not configure the root logger."""
    global _users
    root = logging.getLogger()
    with _lock:
        _users += 1
        if not root.handlers:
            root.addHandler(_STAND_IN)
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _STAND_IN in root.handlers:
                root.removeHandler(_STAND_IN)


@contextlib.contextmanager
def drop_records_from(package_file: str) -> Iterator[None]:
    """Drop the root logger's records made in the folder of this package (its ``__file__``), meanwhile."""
    folder = os.path.dirname(os.path.abspath(package_file)) + os.sep

    def elsewhere(record: logging.LogRecord) -> bool:
        return not os.path.abspath(record.pathname).startswith(folder)

    root = logging.getLogger()
    with root_logging_kept():
        root.addFilter(elsewhere)
        try:
            yield
        finally:
            root.removeFilter(elsewhere)
