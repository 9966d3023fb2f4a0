"""Property: any file history with incremental ingests ends as one fresh ingest of the final tree."""

from __future__ import annotations

import io
import itertools
import os
import sqlite3
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from zsindex import shapes
from zsindex.library import Library

NAMES = ["a.png", "b.png", "sub/c.png", "sub/deeper/d.png", "e f (1).png"]


def _contents() -> list[bytes]:
    rng = np.random.default_rng(3)
    out = []
    for c, s in shapes.seen_pairs()[:6]:
        buf = io.BytesIO()
        Image.fromarray(shapes.draw([shapes.Thing(c, s)], size=48, rng=rng)).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


CONTENTS = _contents()
_clock = itertools.count(1_700_000_000_000_000_000, 10**9)

ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.sampled_from(NAMES), st.integers(0, len(CONTENTS) - 1)),
        st.tuples(st.just("move"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
        st.tuples(st.just("delete"), st.sampled_from(NAMES), st.just(0)),
        st.tuples(st.just("ingest"), st.just(""), st.just(0)),
    ),
    max_size=12,
)


def apply(root: Path, op: tuple) -> None:
    kind, name, arg = op
    path = root / name
    if kind == "write":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(CONTENTS[arg])
        t = next(_clock)  # a distinct mtime, as any real edit has
        os.utime(path, ns=(t, t))
    elif kind == "move" and path.exists() and arg != name:
        dest = root / arg
        dest.parent.mkdir(parents=True, exist_ok=True)
        path.replace(dest)
    elif kind == "delete" and path.exists():
        path.unlink()


def snapshot(index: Path) -> set[tuple[str, bytes]]:
    con = sqlite3.connect(index / "index.sqlite")
    try:
        return set(con.execute(
            "SELECT i.path, v.vector FROM images i JOIN vectors v ON v.sha256 = i.sha256 WHERE i.status = 'indexed'"
        ).fetchall())
    finally:
        con.close()


def faiss_matches_sql(lib: Library) -> bool:
    con = sqlite3.connect(lib.folder / "index.sqlite")
    ids = {i for (i,) in con.execute("SELECT id FROM images WHERE status = 'indexed'")}
    con.close()
    held = lib.vectors().ids().tolist()
    return len(held) == len(set(held)) and set(held) == ids


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=ops)
def test_incremental_equals_fresh(tmp_path_factory, demo_embedder, history):
    work = tmp_path_factory.mktemp("prop")
    root = work / "photos"
    root.mkdir()
    inc = Library(work / "inc", embedder=demo_embedder)
    for op in history:
        if op[0] == "ingest":
            inc.ingest([root], workers=0)
        else:
            apply(root, op)
    inc.ingest([root], workers=0)
    fresh = Library(work / "fresh", embedder=demo_embedder)
    fresh.ingest([root], workers=0)
    expected = {(str(p), None) for p in root.rglob("*.png")}
    assert {(p, None) for p, _ in snapshot(fresh.folder)} == expected
    assert snapshot(inc.folder) == snapshot(fresh.folder)
    assert faiss_matches_sql(inc) and faiss_matches_sql(fresh)
    inc.close()
    fresh.close()
