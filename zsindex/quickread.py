"""A plain text query answered from the index's SQLite file directly, without SQLAlchemy.

Importing SQLAlchemy and mapping the schema would be about half of a repeated
query's time (0.25-0.3 s of 0.6 s on the 2-core machine of the README's
figures) and a third of a new one's, so the search command tries this path
first. The standard library's sqlite3 opens the folder's own store read-only
and, in one read transaction, reads the schema revision (it must be this
zsindex's head), the index's one model (when a model is chosen, it must be
that one), the vector generation, the kind of vector index recorded, and the
cached text vectors. A text not in the cache is embedded by the index's model,
loaded as the library loads it (``config.model_spec``, ``load_embedder``), and
added to the cache (``_remember``). The saved FAISS file of that generation is
searched as the full path searches it (``hits.compose``, ``hits.top_k``), and
the hits' paths are read by id.

Only the plain case is answered: no --like, no filters, no --group-stems, a
current flat or IVF file, no video frame among the hits. Anything else, and
any doubt (an sqlite3 error, a missing or stale FAISS file, a database server,
a quantised index that needs its exact vectors), returns None and the full
path answers; it alone rebuilds the FAISS file, migrates, and words every
error.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import config
from .errors import ZsindexError
from .output import is_utf8

if TYPE_CHECKING:
    from .hits import Hit

DB_NAME = "index.sqlite"  # store.DB_NAME, without importing the store (SQLAlchemy) here
KIND_STATE = "vector_kind"  # vectors.KIND_STATE
VECTORS_ID = "vectors_id"  # store.VECTORS_ID
CACHE_WAIT_MS = 1000


def connect(folder: Path) -> sqlite3.Connection | None:
    """The folder's SQLite store opened read-only; None when there is none or it cannot be opened so."""
    path = folder / DB_NAME
    try:
        if not path.is_file() or any(not os.path.isfile(f"{path}{x}") for x in ("-wal", "-shm", "-journal")
                                     if os.path.lexists(f"{path}{x}")):
            return None  # something other than a file where SQLite keeps one: the full path words it
        return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=0.2)
    except (sqlite3.Error, ValueError, OSError):  # a folder it may not read, say: the full path words it
        return None


def the_model(con: sqlite3.Connection) -> tuple[Any, ...] | None:
    """(id, identity, name, pretrained, precision, dim) of the index's model, when it has exactly one."""
    rows = con.execute("SELECT id, identity, name, pretrained, precision, dim FROM models").fetchall()
    return tuple(rows[0]) if len(rows) == 1 else None


def cached_texts(con: sqlite3.Connection, model_id: int, texts: Sequence[str]) -> dict[str, bytes]:
    """text -> stored vector bytes, for the texts in the model's text cache (a text that is not UTF-8, which
    no cache can hold, is never looked up: it is not there)."""
    wanted = sorted(t for t in set(texts) if is_utf8(t))
    marks = ",".join("?" * len(wanted))
    return dict(con.execute(f"SELECT text, vector FROM text_vectors WHERE model_id = ? AND text IN ({marks})",
                            [model_id, *wanted]))


def search(folder: Path, texts: Sequence[str], nots: Sequence[str], not_weight: float, k: int, offset: int,
           min_score: float | None, *, model: str | None = None, pretrained: str | None = None,
           device: str | None = None, runtime: str | None = None, precision: str | None = None,
           db: str | None = None) -> "list[Hit] | None":
    """The hits of this plain text query, as ``Library.search`` finds them; None when only it can answer."""
    if db or os.environ.get(config.ENV_DB) or not texts:
        return None
    if any(not t.strip() or not is_utf8(t) for t in [*texts, *nots]):
        return None  # the full path words the error
    con = connect(folder)
    if con is None:
        return None
    try:
        con.execute("BEGIN")  # one snapshot: generation, vectors and paths agree
        return _search(con, folder, texts, nots, not_weight, k, offset, min_score,
                       (model, pretrained, device, runtime, precision))
    except (sqlite3.Error, ZsindexError, OSError, ValueError):
        return None
    finally:
        con.close()


def _search(con: sqlite3.Connection, folder: Path, texts: Sequence[str], nots: Sequence[str], not_weight: float,
            k: int, offset: int, min_score: float | None,
            choice: tuple[str | None, str | None, str | None, str | None, str | None]) -> "list[Hit] | None":
    from .schema_version import script_head

    model, pretrained, _, _, precision = choice
    revision = con.execute("SELECT version_num FROM alembic_version").fetchone()
    recorded = the_model(con)
    if revision is None or revision[0] != script_head() or recorded is None:
        return None
    model_id, identity, name, recorded_pretrained, recorded_precision, dim = recorded
    if model or os.environ.get(config.ENV_MODEL):  # a chosen model must be the index's own (else: its message)
        from .embedder import chosen_model

        if chosen_model(model, pretrained)[0] != identity or precision not in (None, recorded_precision):
            return None
    stored = {t: v for t, v in cached_texts(con, model_id, [*texts, *nots]).items()
              if len(v) == 4 * int(dim)}  # one of the wrong length (damage) is embedded again
    missing = [t for t in dict.fromkeys([*texts, *nots]) if t not in stored]
    if missing:
        from . import warm

        if warm.wanted(None, model, choice[3]):  # the text tower's session, made while the rest loads
            warm.text_tower_of(identity)
    state = dict(con.execute("SELECT key, value FROM state WHERE key IN ('generation', ?, ?)",
                             [KIND_STATE, VECTORS_ID]))
    import numpy as np  # only now: a case that falls back early does not pay for it

    from .hits import FRAME_ID_BASE, Hit, compose, stored_path, top_k
    from .vectors import VectorIndex

    vectors = VectorIndex.load(folder, int(dim), int(state.get("generation") or 0), state.get(VECTORS_ID),
                               mapped=True, kind=state.get(KIND_STATE) or None)
    if vectors is None or vectors.quantised or not vectors.ntotal:
        return None
    found = {t: np.frombuffer(v, dtype=np.float32) for t, v in stored.items()}
    if missing:  # a new text: the text tower embeds it, and the cache remembers it
        spec = config.model_spec(*choice, recorded=(name, recorded_pretrained, recorded_precision))
        from .embedder import load_embedder

        found.update(zip(missing, load_embedder(**spec).embed_texts(missing)))
        _remember(folder, model_id, {t: found[t] for t in missing})
    query = compose([found[t] for t in texts], [found[t] for t in nots], not_weight)
    pairs = top_k(vectors, query, offset + k, None)[offset:]
    if any(i >= FRAME_ID_BASE for i, _ in pairs):
        return None  # a video's frames: the full path makes them one hit
    marks = ",".join("?" * len(pairs))
    paths = {i: stored_path(p) for i, p in con.execute(f"SELECT id, path FROM images WHERE id IN ({marks})",
                                                        [i for i, _ in pairs])}
    hits = [Hit(i, paths[i], score, exists=os.path.exists(paths[i])) for i, score in pairs if i in paths]
    return hits if min_score is None else [h for h in hits if h.score >= min_score]


def _remember(folder: Path, model_id: int, vectors: dict[str, Any]) -> None:
    """Add query vectors to the index's text cache, as ``Store.cache_texts`` does, waiting at most
    CACHE_WAIT_MS for another writer: the cache only saves the next identical query some work, so a
    read-only index or a long tag run holding the database means no caching, not a slower answer."""
    from datetime import datetime, timezone

    stamp = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    rows = [(model_id, t, v.astype("float32").tobytes(), stamp) for t, v in vectors.items() if is_utf8(t)]
    try:
        con = sqlite3.connect(f"{(folder / DB_NAME).resolve().as_uri()}?mode=rw", uri=True,
                              timeout=CACHE_WAIT_MS / 1000)
    except (sqlite3.Error, ValueError):
        return
    try:
        with con:
            con.executemany("INSERT INTO text_vectors (model_id, text, vector, last_used) VALUES (?, ?, ?, ?) "
                            "ON CONFLICT DO NOTHING", rows)
    except sqlite3.Error:
        pass
    finally:
        con.close()
