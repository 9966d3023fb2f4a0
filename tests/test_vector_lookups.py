"""Looking up a few stored vectors reads those vectors, never the whole vectors table.

Class test: every way of fetching the exact vectors of some images or frames
(re-ranking a compressed index, `--like PATH`, a video's mean vector, keyword
examples) is run on a real SQLite store, each statement that touches the
vectors table is captured, and SQLite's own query plan for it (same SQL, same
parameters, same connection) must look vectors up by (model, hash). Without
table statistics SQLite's planner guesses that `model_id = ?` matches a
handful of rows, so one query joining images to vectors for 50 ids chose to
read every vector of the model instead.
"""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import event, insert

from zsindex import schema as s
from zsindex.frames import FRAME_ID_BASE, mean_vector
from zsindex.keyword_truth import examples
from zsindex.library import Library
from zsindex.store import now

from .synthetic import store_vectors

N = 300
DIM = 8


@pytest.fixture()
def store(tmp_path):
    lib = Library(tmp_path / "index", db=False, create=True)
    model = lib.store.bind_model("test/lookups", "lookups", None, DIM)
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(N + 4, DIM)).astype(np.float32)
    store_vectors(lib, model.id, vecs[:N], path="/lib/{:04d}.jpg")
    stamp = now()
    with lib.store.session() as session:
        session.execute(insert(s.Image), [{"path": "/lib/clip.mp4", "size": 1, "mtime_ns": 1, "sha256": "v" * 64,
                                           "status": s.STATUS_INDEXED, "first_seen": stamp, "last_seen": stamp}])
        video_id = session.query(s.Image.id).filter(s.Image.path == "/lib/clip.mp4").scalar()
        session.execute(insert(s.Frame), [{"image_id": video_id, "position": k, "seconds": float(k),
                                           "sha256": f"f{k:063d}"} for k in range(4)])
        session.execute(insert(s.Vector), [
            {"model_id": model.id, "sha256": f"f{k:063d}", "vector": vecs[N + k].tobytes()} for k in range(4)])
        session.execute(insert(s.Keyword), [{"image_id": i + 1, "keyword": "cat", "folded": "cat", "source": "sidecar"}
                                            for i in range(0, N, 3)])
    return lib.store, model.id, vecs


def plans_reading_vectors(store, call) -> tuple[list[str], object]:
    """Run call(); return SQLite's plan lines about the vectors table for every statement it ran."""
    seen: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "vectors" in statement and statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        result = call()
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    lines = []
    with store.engine.connect() as conn:
        for statement, parameters in seen:
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            lines += [row[-1] for row in plan if "vectors" in row[-1]]
    assert seen, "no statement read the vectors table"
    return lines, result


def assert_looked_up_by_hash(lines: list[str]) -> None:
    for line in lines:
        assert line.startswith("SEARCH vectors USING") and "sha256=?" in line, line


def test_reranking_pool_of_images_and_frames(store):
    st, model_id, vecs = store
    ids = np.array([*range(1, N + 1, 5), FRAME_ID_BASE + 1, FRAME_ID_BASE + 3], dtype=np.int64)
    lines, got = plans_reading_vectors(st, lambda: st.vectors_by_ids(model_id, ids))
    assert_looked_up_by_hash(lines)
    want = np.stack([*(vecs[i - 1] for i in ids[:-2]), vecs[N], vecs[N + 2]])
    assert np.array_equal(got, want)  # in the order asked, images and frames alike


def test_vectors_by_path(store):
    st, model_id, vecs = store
    paths = [f"/lib/{i:04d}.jpg" for i in range(0, N, 4)] + ["/lib/not-there.jpg"]
    lines, got = plans_reading_vectors(st, lambda: st.stored_vectors(model_id, paths))
    assert_looked_up_by_hash(lines)
    assert sorted(got) == sorted(paths[:-1])
    assert np.array_equal(got["/lib/0008.jpg"], vecs[8])


def test_mean_vector_of_a_video(store):
    st, model_id, vecs = store

    def call():
        with st.session() as session:
            return mean_vector(session, model_id, "/lib/clip.mp4", st.unpack)

    lines, got = plans_reading_vectors(st, call)
    assert_looked_up_by_hash(lines)
    mean = vecs[N:N + 4].mean(axis=0)
    assert np.allclose(got, mean / np.linalg.norm(mean), atol=1e-6)


def test_keyword_examples(store):
    st, model_id, vecs = store
    lines, got = plans_reading_vectors(st, lambda: examples(st, ["cat"], model_id))
    assert_looked_up_by_hash(lines)
    assert len(got.ids) == N // 3 and np.array_equal(got.vectors[1], vecs[got.ids[1] - 1])
