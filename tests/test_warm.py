"""A new query's text tower is created in the background while zsindex imports, and used."""

from __future__ import annotations

import time

import numpy as np
import pytest

from zsindex import runtime_onnx, warm
from zsindex.library import Library

from .test_ingest import draw


@pytest.fixture()
def index(tmp_path):
    draw(tmp_path / "photos", ["red-circle", "blue-square"])
    lib = Library(tmp_path / "index", model="demo")
    lib.ingest([tmp_path / "photos"], workers=0)
    lib.search("a red circle")  # now cached
    return lib


def _prepared(lib: Library, timeout: float = 60.0):
    export = str(runtime_onnx.export_dir(lib.store.model().identity))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        future = warm._PREPARED.get(export)
        if future is not None and future.done():
            return future
        time.sleep(0.05)
    return warm._PREPARED.get(export)


def test_an_uncached_text_gets_its_tower_early_and_the_query_takes_it(index):
    warm._PREPARED.clear()
    warm.text_tower_for(index.folder, ["a green star"])
    future = _prepared(index)
    assert future is not None and future.exception() is None
    prepared = future.result()
    fresh = Library(index.folder)
    hits = fresh.search("a green star", k=2)
    assert fresh.embedder._towers._sessions["text"] is prepared  # the prepared session, not a second one
    assert not warm._PREPARED  # taken
    exact = runtime_onnx.OnnxEmbedder(fresh.embedder.identity, fresh.embedder._meta, "fp32").embed_texts(
        ["a green star"])
    assert np.allclose(fresh.text_vectors(["a green star"]), exact, atol=1e-6) and len(hits) == 2


def test_no_warm_up_for_cached_texts_other_stores_or_runtimes(index, tmp_path):
    warm._PREPARED.clear()
    warm.text_tower_for(index.folder, ["a red circle"])  # cached: nothing to prepare
    warm.text_tower_for(tmp_path / "no-index", ["anything"])
    time.sleep(1.0)
    assert not warm._PREPARED
    assert warm.wanted(None, None, None) and warm.wanted(None, None, "onnx")
    assert not warm.wanted("postgresql+psycopg://x/y", None, None)
    assert not warm.wanted(None, "demo", None) and not warm.wanted(None, None, "torch")
    assert callable(warm.text_tower_for)


NOT_UTF8 = "re\udcffd"  # what Python makes of the shell argument $'re\xffd'


@pytest.mark.parametrize("extra", [[], ["--not", "blue"], ["--path", "*"], ["-m", "demo"]])
def test_a_query_that_is_not_utf8_gets_its_usage_error_and_no_thread_prints(index, extra):
    """`zsindex search $'re\\xffd'`: the usage error alone; no background thread prints a traceback, whichever
    path (quick read, full search, warm-up) the query takes."""
    import os
    import subprocess
    import sys

    from .conftest import REPO

    args = [sys.executable, "-m", "zsindex", "search", os.fsencode(NOT_UTF8), "--index", str(index.folder), *extra]
    done = subprocess.run(args, capture_output=True, cwd=REPO, timeout=120)
    err = done.stderr.decode(errors="replace")
    assert done.returncode == 2, err
    assert "not valid UTF-8 text" in err and "Traceback" not in err and "Exception in thread" not in err, err


def test_texts_that_are_not_utf8_never_reach_a_cache(index):
    """Every text cache (the quick read's, the store's, the warm-up's peek) passes over a text no database can
    hold instead of failing on it; the API refuses it as a query with a UsageError."""
    import sqlite3
    import threading

    from zsindex import quickread
    from zsindex.errors import UsageError

    seen = []
    hook, threading.excepthook = threading.excepthook, seen.append
    try:
        warm._PREPARED.clear()
        warm.text_tower_for(index.folder, [NOT_UTF8, "a red circle"])
        assert warm._uncached_model(index.folder, [NOT_UTF8]) is not None  # not cached, and no error
        for thread in threading.enumerate():
            if thread.name == "zsindex-warm":
                thread.join(60)
    finally:
        threading.excepthook = hook
    assert not seen, seen
    model_id = index.store.model().id
    con = sqlite3.connect(index.folder / "index.sqlite")
    try:
        assert list(quickread.cached_texts(con, model_id, [NOT_UTF8, "a red circle"])) == ["a red circle"]
    finally:
        con.close()
    assert list(index.store.cached_texts(model_id, [NOT_UTF8, "a red circle"])) == ["a red circle"]
    assert index.store.cache_texts(model_id, {NOT_UTF8: np.ones(4, dtype=np.float32)}) is True
    quickread._remember(index.folder, model_id, {NOT_UTF8: np.ones(4, dtype=np.float32)})
    with index.store.session() as session:
        from sqlalchemy import text

        stored = [r[0] for r in session.execute(text("SELECT text FROM text_vectors"))]
    assert stored == ["a red circle"], stored
    with pytest.raises(UsageError, match="not valid UTF-8"):
        index.text_vectors([NOT_UTF8])
