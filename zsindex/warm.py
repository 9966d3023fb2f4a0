"""Start the text tower of a new query early, while the rest of zsindex is still being imported.

A new text query (one not in the index's cache) spends a large part of its
time creating the ONNX text tower's session, and another importing numpy,
FAISS and ONNX Runtime and reading the index; the session's creation releases
the GIL, so the two can overlap. The quick read path of a plain query
(quickread.py) sees which model the index holds and that a text is new, and
calls ``text_tower_of(identity)``; for any other query
``text_tower_for(folder, texts)`` peeks at the index with the standard
library's sqlite3, read-only, to learn the same. Either creates the session in
a background thread when the model's ONNX export exists. ``runtime_onnx`` takes
that session when the query asks for one (`OnnxTowers`), or creates its own if
none was prepared.

Only a hint: any doubt (a database server, another runtime, an unreadable
index) means no warm-up, and a warm-up nobody takes costs only CPU time.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

_PREPARED: dict[str, Future] = {}  # export folder -> its text session, being created
_REGISTER = threading.Lock()


def text_tower_for(folder: Path, texts: Sequence[str]) -> None:
    """Create the text tower's session in the background when these texts will need it."""
    from .output import is_utf8

    if not texts or not all(is_utf8(t) for t in texts):  # a query that is not text: the caller's message says so
        return
    threading.Thread(target=_quietly, args=(_peek_and_prepare, folder, list(texts)), name="zsindex-warm",
                     daemon=True).start()


def _quietly(work: Any, *args: Any) -> None:
    """A warm-up in a thread of its own: only a hint, so whatever goes wrong in it is dropped, never printed
    (the caller meets the same fault itself, and says it in its own words)."""
    try:
        work(*args)
    except BaseException:  # noqa: BLE001, S110 - see the docstring
        pass


def take(export_folder: Path) -> Any:
    """The session prepared for this export folder, once ready; None when there is none (or it failed)."""
    future = _PREPARED.pop(str(export_folder), None)
    if future is None:
        return None
    from concurrent.futures import TimeoutError as Pending

    from . import interrupts

    for _ in range(1200):  # two minutes at most, a tenth of a second at a time: a Ctrl-C never waits for it
        if interrupts.requested():
            raise KeyboardInterrupt  # one that was swallowed (it may have left the session's thread stuck)
        try:
            return future.result(timeout=0.1)
        except Pending:
            continue
        except Exception:  # noqa: BLE001 - the caller creates its own session and meets the error itself
            return None
    return None


def text_tower_of(identity: str) -> None:
    """Create this model's text tower session in the background: the caller has seen that a text is new."""
    threading.Thread(target=_quietly, args=(_prepare, identity), name="zsindex-warm", daemon=True).start()


def _peek_and_prepare(folder: Path, texts: list[str]) -> None:
    identity = _uncached_model(folder, texts)
    if identity is not None:
        _prepare(identity)


def _prepare(identity: str) -> None:
    from . import runtime_onnx

    export = runtime_onnx.export_dir(identity)
    if runtime_onnx.read_export(identity) is None:
        return
    with _REGISTER:  # one session per export, whichever caller asked first
        if str(export) in _PREPARED:
            return
        future: Future = Future()
        _PREPARED[str(export)] = future
    try:
        future.set_result(runtime_onnx.OnnxTowers(export, "fp32").create_session("text"))
    except BaseException as e:  # noqa: BLE001 - handed to whoever takes it
        future.set_exception(e)


def _uncached_model(folder: Path, texts: list[str]) -> str | None:
    """The identity of the index's one model, if some of the texts are not in its cache."""
    from .quickread import cached_texts, connect, the_model

    con = connect(folder)
    if con is None:
        return None
    try:
        model = the_model(con)
        if model is None:
            return None
        return None if len(cached_texts(con, model[0], texts)) == len(set(texts)) else str(model[1])
    except (sqlite3.Error, ValueError):
        return None
    finally:
        con.close()


def wanted(db: str | None, model: str | None, runtime: str | None) -> bool:
    """Whether a warm-up can know the model: the folder's SQLite store, the index's own model, on ONNX."""
    from . import config

    if db or os.environ.get(config.ENV_DB) or model:
        return False
    return (runtime or os.environ.get(config.ENV_RUNTIME) or "auto") != "torch"
