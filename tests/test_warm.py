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
