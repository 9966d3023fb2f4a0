"""The compressed (IVF-PQ) vector index: candidates from codes, exact scores from SQL, kinds kept, files mapped."""

from __future__ import annotations

import json
import os
import types
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from zsindex import schema as s
from zsindex import vectors
from zsindex.cli import cli
from zsindex.library import Library
from zsindex.rowfile import ROWS_NAME
from zsindex.vectors import (
    META_NAME,
    TRAIN_MAX,
    StoredVectors,
    VectorIndex,
    choose_kind,
    ivf_lists,
    list_probes,
    pq_bytes,
    training_size,
)

from .synthetic import store_vectors

DIM = 64


def _clustered(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, DIM)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 0.5 * rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _library(folder, x: np.ndarray) -> Library:
    """A real index whose SQL holds these vectors, as an ingest would have left them."""
    lib = Library(folder, create=True)  # written below through its store, not the API
    model = lib.store.bind_model("test/synthetic", "synthetic", None, DIM)
    store_vectors(lib, model.id, x)
    return lib


@pytest.fixture(scope="module")
def pq_library(tmp_path_factory):
    x = _clustered(6000, seed=3)
    lib = _library(tmp_path_factory.mktemp("pq"), x)
    assert lib.rebuild("ivfpq") == len(x)
    return lib, x


def _ids_by_path(lib: Library) -> np.ndarray:
    """SQL image ids in the order of the synthetic vectors."""
    with lib.store.session() as session:
        rows = session.execute(s.Image.__table__.select().order_by(s.Image.path)).all()
    return np.array([r.id for r in rows], dtype=np.int64)


def test_kind_chosen_by_size_and_code_size():
    assert [choose_kind(n) for n in (10, 199_999, 200_000, 1_999_999, 2_000_000)] == \
        ["flat", "flat", "ivf", "ivf", "ivfpq"]
    assert pq_bytes(512) == 64 and pq_bytes(768) == 64 and pq_bytes(64) == 8 and 96 % pq_bytes(96) == 0


def test_ivfpq_returns_true_cosine_scores_and_near_exact_hits(pq_library):
    lib, x = pq_library
    vi = lib.vectors()
    assert vi.kind == "ivfpq" and vi.quantised
    ids = _ids_by_path(lib)
    rng = np.random.default_rng(9)
    q = x[rng.integers(0, len(x), 50)] + 0.2 * rng.normal(size=(50, DIM)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    scores, found = vi.search(q, 10)
    recalls = []
    for row in range(len(q)):
        exact = x @ q[row]
        truth = set(ids[np.argsort(-exact)[:10]].tolist())
        recalls.append(len(truth & set(found[row].tolist())) / 10)
        # every score is the exact cosine of the hit, best first: codes only chose the candidates
        hit_rows = np.searchsorted(ids, found[row])
        np.testing.assert_allclose(scores[row], exact[hit_rows], atol=1e-5)
        assert (np.diff(scores[row]) <= 1e-7).all()
    assert np.mean(recalls) >= 0.95


def test_ivfpq_filtered_search_keeps_to_the_selection(pq_library):
    lib, x = pq_library
    ids = _ids_by_path(lib)
    chosen = ids[::500]  # 12 scattered images
    scores, found = lib.vectors().search(x[:1], 10, chosen)
    assert set(found[0].tolist()) <= set(chosen.tolist()) and (found[0] >= 0).all()
    exact = x[::500] @ x[0]
    np.testing.assert_allclose(scores[0], np.sort(exact)[::-1][:10], atol=1e-5)


def test_ivfpq_streams_exact_vectors_for_tagging(pq_library):
    lib, x = pq_library
    got = {int(i): v for b_ids, b_x in lib.vectors().batches(size=1000) for i, v in zip(b_ids, b_x)}
    ids = _ids_by_path(lib)
    assert set(got) == set(ids.tolist())
    np.testing.assert_array_equal(np.stack([got[int(i)] for i in ids]), x)


def test_kind_is_recorded_kept_by_rebuilds_and_reported(tmp_path):
    x = _clustered(1500, seed=4)
    lib = _library(tmp_path / "idx", x)
    lib.rebuild("ivfpq")
    assert lib.rebuild() == len(x) and lib.vectors().kind == "ivfpq"  # kept without --kind
    assert json.loads((tmp_path / "idx" / META_NAME).read_text())["kind"] == "ivfpq"
    assert lib.status()["vector_index"] == "ivfpq"
    lib.rebuild("auto")
    assert lib.vectors().kind == "flat"  # 1,500 vectors: exact


def test_search_process_maps_the_file_and_a_writer_gets_it_in_memory(pq_library, tmp_path):
    lib, x = pq_library
    fresh = Library(lib.folder)  # a new process's view: loads the saved file
    vi = fresh.vectors()
    assert vi.mapped and vi.kind == "ivfpq"
    before = vi.search(x[:3], 5)
    writer = fresh.vectors(save=True)
    assert not writer.mapped
    after = writer.search(x[:3], 5)
    np.testing.assert_array_equal(before[1], after[1])
    # the in-memory copy takes changes, as an ingest needs
    writer.remove([int(after[1][0, 0])])
    assert writer.ntotal == len(x) - 1


def test_rebuild_kind_from_the_cli_gives_the_same_search_results(tmp_path, world):
    runner = CliRunner()
    index = tmp_path / "idx"
    folder = world[0][0].parent
    res = runner.invoke(cli, ["ingest", str(folder), "--index", str(index), "-m", "demo", "-q"])
    assert res.exit_code == 0, res.output
    flat = runner.invoke(cli, ["search", "a red circle", "--index", str(index), "--json", "-k", "8"])
    assert flat.exit_code == 0, flat.output
    res = runner.invoke(cli, ["rebuild", "--kind", "ivfpq", "--index", str(index)])
    assert res.exit_code == 0 and json.loads(res.stdout)["vectors"] == 20
    store = Library(index).store
    assert VectorIndex.load(index, 64, store.generation(), store.vectors_id()).kind == "ivfpq"
    pq = runner.invoke(cli, ["search", "a red circle", "--index", str(index), "--json", "-k", "8"])
    # a small library is re-ranked whole, so the compressed index gives the exact answer
    assert pq.output == flat.output
    bad = runner.invoke(cli, ["rebuild", "--kind", "hnsw", "--index", str(index)])
    assert bad.exit_code == 2


def test_list_count_follows_the_library_not_the_training_sample():
    # about 2·√N lists for ivfpq and 4·√N for ivf, N being the vectors indexed: a 5M library has
    # √5 times the lists of a 1M one, though both are trained on capped samples
    assert ivf_lists(1_000_000, "ivfpq") == 2000 and ivf_lists(5_000_000, "ivfpq") == 4472
    assert ivf_lists(100_000_000, "ivfpq") == 20_000
    assert ivf_lists(1_000_000, "ivf") == 4000
    assert ivf_lists(1000, "ivfpq") == 25  # small: never fewer than 39 training vectors per list
    # the sample: 40 (ivfpq) or 64 (ivf) vectors per list, at least 10,000, at most TRAIN_MAX
    assert training_size(5_000_000, "ivfpq") == 40 * 4472
    assert training_size(1_000_000, "ivf") == 64 * 4000
    assert training_size(5000, "ivfpq") == 5000
    assert training_size(10**10, "ivfpq") == TRAIN_MAX
    assert [list_probes(nl, "ivfpq") for nl in (10, 64, 4472)] == [10, 64, 64]


def test_rebuild_sizes_lists_by_the_library(tmp_path):
    # 20,000 vectors: the sample is 40 per list (11,280 vectors), yet the lists are those of 20,000
    x = _clustered(20_000, seed=5)
    lib = _library(tmp_path / "idx", x)
    lib.rebuild("ivfpq")
    vi = lib.vectors()
    assert vi.ivf.nlist == ivf_lists(20_000, "ivfpq") == 282
    assert vi.ivf.nprobe == list_probes(282, "ivfpq") == 64


def test_many_lists_are_chosen_by_a_graph_that_survives_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(vectors, "HNSW_LISTS", 16)
    x = _clustered(6000, seed=6)
    lib = _library(tmp_path / "idx", x)
    lib.rebuild("ivfpq")
    faiss = vectors._faiss()
    built = lib.vectors()
    assert isinstance(faiss.downcast_index(built.ivf.quantizer), faiss.IndexHNSWFlat)
    mapped = Library(lib.folder).vectors()  # a search process: the file, memory-mapped
    assert mapped.mapped and isinstance(faiss.downcast_index(mapped.ivf.quantizer), faiss.IndexHNSWFlat)
    rng = np.random.default_rng(2)
    q = x[rng.integers(0, len(x), 40)] + 0.2 * rng.normal(size=(40, DIM)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    scores, found = mapped.search(q, 10)
    np.testing.assert_array_equal(found, built.search(q, 10)[1])
    ids = _ids_by_path(lib)
    truth = np.argsort(-(q @ x.T), axis=1)[:, :10]
    recall = np.mean([len(set(ids[t].tolist()) & set(f.tolist())) / 10 for t, f in zip(truth, found)])
    assert recall >= 0.9


def _sql_vectors(lib: Library, ids: np.ndarray) -> np.ndarray:
    return lib.store.vectors_by_ids(lib.store.model().id, ids)


def test_candidates_are_ranked_from_the_row_file_without_sql(pq_library, monkeypatch):
    """The rebuild writes every vector at its id; a search process then re-ranks with no SQL read."""
    lib, x = pq_library
    ids = _ids_by_path(lib)
    rows = np.fromfile(lib.folder / ROWS_NAME, dtype=np.float32).reshape(-1, DIM)
    np.testing.assert_array_equal(rows[ids], x)  # row i holds image i's vector, exactly
    searcher = Library(lib.folder).vectors()
    assert searcher.mapped

    def no_sql(*args, **kwargs):
        raise AssertionError("read SQL for a vector the row file holds")

    monkeypatch.setattr(lib.store.__class__, "vectors_by_ids", no_sql)
    scores, found = searcher.search(x[:5], 10)
    for row in range(5):
        np.testing.assert_allclose(scores[row], x[np.searchsorted(ids, found[row])] @ x[row], atol=1e-6)


@pytest.mark.parametrize("damage", ["missing", "truncated", "garbage row", "zero row", "random bytes", "a folder",
                                    "frame id"])
def test_rows_the_file_cannot_vouch_for_come_from_sql(tmp_path, damage):
    """Whatever happened to the cache file, scores stay the true cosines of SQL's vectors."""
    x = _clustered(1500, seed=8)
    lib = _library(tmp_path / "idx", x)
    lib.rebuild("ivfpq")
    ids = _ids_by_path(lib)
    path = lib.folder / ROWS_NAME
    victim = int(ids[7])
    if damage == "missing":
        path.unlink()
    elif damage == "truncated":
        with open(path, "r+b") as f:
            f.truncate(victim * DIM * 4 + 10)  # the victim's row cut short, every later row gone
    elif damage in ("garbage row", "zero row"):
        bad = np.full(DIM, 3.0 if damage == "garbage row" else 0.0, dtype=np.float32)
        with open(path, "r+b") as f:
            f.seek(victim * DIM * 4)
            f.write(bad.tobytes())
    elif damage == "random bytes":  # infinities and NaNs among them
        path.write_bytes(np.random.default_rng(1).bytes(path.stat().st_size))
    elif damage == "a folder":
        path.unlink()
        path.mkdir()
    exact = StoredVectors(lib.store, lib.store.model().id, DIM, vectors_id=lib.store.vectors_id())
    asked = ids[[7, 3, 900]]
    if damage == "frame id":
        from zsindex.hits import FRAME_ID_BASE

        got, found = exact.rows.read(np.array([FRAME_ID_BASE + 1, int(ids[3])]))
        assert found.tolist() == [False, True]
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing on stderr either: no numpy overflow chatter
        np.testing.assert_array_equal(exact.by_ids(asked), _sql_vectors(lib, asked))
        scores, found = Library(lib.folder).vectors().search(x[7:8], 10)
    assert found[0, 0] == victim and scores[0, 0] == pytest.approx(1.0, abs=1e-6)
    if damage == "a folder":  # not a file of ours: left alone, and no save blames vectors.faiss for it
        assert lib.rebuild("flat") == len(x) and path.is_dir()


def _compressed_demo_index(tmp_path, world, n: int) -> tuple:
    """The first n drawn images copied into a folder, ingested with the demo model and rebuilt as ivfpq."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for path, _ in world[:n]:
        (folder / path.name).write_bytes(path.read_bytes())
    index = tmp_path / "idx"
    lib = Library(index, model="demo")
    lib.ingest([folder], workers=0)
    lib.rebuild("ivfpq")
    return folder, index, lib


def test_an_ingest_keeps_the_row_file_of_a_compressed_index(tmp_path, world):
    """New and changed images get their rows as they are committed; a failed write removes the file."""
    from PIL import Image

    from zsindex import rowfile

    folder, index, lib = _compressed_demo_index(tmp_path, world, 12)
    for path, _ in world[12:16]:  # four new images
        (folder / path.name).write_bytes(path.read_bytes())
    changed = folder / world[0][0].name
    Image.open(world[16][0]).save(changed)  # another picture at a known path: same id, new vector
    Library(index, model="demo").ingest([folder], workers=0)
    with lib.store.session() as session:
        ids = np.array(sorted(session.scalars(s.Image.__table__.select().with_only_columns(s.Image.id)
                                              .where(s.Image.status == s.STATUS_INDEXED))), dtype=np.int64)
    assert len(ids) == 16
    rows = np.fromfile(index / ROWS_NAME, dtype=np.float32).reshape(-1, 64)
    np.testing.assert_array_equal(rows[ids], _sql_vectors(lib, ids))
    # a write that fails half-way leaves no row older than SQL's: the file goes, SQL serves
    for path, _ in world[17:19]:
        (folder / path.name).write_bytes(path.read_bytes())
    def full_disk(fd, data, offset):
        raise OSError(28, "No space left on device")

    with pytest.MonkeyPatch.context() as mp:  # the row file's writes fail, nothing else's
        mp.setattr(rowfile, "os", types.SimpleNamespace(**{**vars(os), "pwrite": full_disk}))
        Library(index, model="demo").ingest([folder], workers=0)
    assert not (index / ROWS_NAME).exists()
    flat = Library(index).search("a red circle", k=5)
    lib.rebuild("flat")
    assert not (index / ROWS_NAME).exists()
    assert [(h.path, round(h.score, 5)) for h in Library(index).search("a red circle", k=5)] == \
        [(h.path, round(h.score, 5)) for h in flat]


@pytest.mark.parametrize("n", [1, 2, 15, 300])
def test_a_compressed_index_of_a_small_library_builds_and_answers_exactly(tmp_path, n, capfd):
    """Fewer vectors than a code book has entries (16) used to make FAISS refuse to train."""
    x = _clustered(n, seed=n)
    lib = _library(tmp_path / "idx", x)
    assert lib.rebuild("ivfpq") == n
    vi = Library(lib.folder).vectors()
    assert vi.kind == "ivfpq"
    scores, found = vi.search(x[:1], 10)
    ids = _ids_by_path(lib)
    want = np.sort(x @ x[0])[::-1][:min(n, 10)]
    np.testing.assert_allclose(scores[0][:len(want)], want, atol=1e-6)  # every vector re-ranked: exact
    assert set(found[0][:len(want)].tolist()) <= set(ids.tolist())
    assert "WARNING" not in capfd.readouterr().err  # no FAISS chatter about few training points


def test_an_index_emptied_and_filled_again_keeps_its_chosen_kind(tmp_path, world):
    """Emptied, a compressed index has nothing to train on and gets a flat file; filled again, the writer
    gives it back the kind chosen with `rebuild --kind` (not the next search process)."""
    folder, index, lib = _compressed_demo_index(tmp_path, world, 6)
    lib.forget([folder])
    assert lib.rebuild() == 0
    lib.ingest([folder], workers=0)
    assert json.loads((index / META_NAME).read_text())["kind"] == "ivfpq" and (index / ROWS_NAME).exists()
    assert lib.status()["vector_index"] == "ivfpq"
    assert VectorIndex.load(index, 64, lib.store.generation(), lib.store.vectors_id(),
                            kind="ivfpq") is not None  # a searcher loads it


def test_status_names_the_kind_even_while_the_file_is_stale(tmp_path):
    x = _clustered(500, seed=11)
    lib = _library(tmp_path / "idx", x)
    lib.rebuild("ivfpq")
    (tmp_path / "idx" / META_NAME).unlink()  # stale: rebuilt on next use, as the kind recorded
    info = Library(tmp_path / "idx").status()
    assert (info["vector_index"], info["faiss_fresh"]) == ("ivfpq", False)
    table = CliRunner().invoke(cli, ["status", "--index", str(tmp_path / "idx"), "--table"])
    assert "vectors ivfpq (the FAISS file is stale" in table.output
    Library(tmp_path / "idx").rebuild()
    table = CliRunner().invoke(cli, ["status", "--index", str(tmp_path / "idx"), "--table"])
    assert "vectors ivfpq\n" in table.output


def test_a_row_file_left_dirty_by_a_dead_writer_is_not_read(tmp_path, monkeypatch):
    """A writer marks the file dirty before its first row and clean when its FAISS file is saved. Dirty with
    no writer alive (one died between a commit and its rows) is read from SQL; dirty while a writer holds the
    lock is read, since that writer keeps it current."""
    from zsindex import rowfile
    from zsindex.lock import WriteLock

    x = _clustered(800, seed=12)
    lib = _library(tmp_path / "idx", x)
    lib.rebuild("ivfpq")
    path = lib.folder / ROWS_NAME
    assert path.read_bytes()[:len(rowfile.MAGIC)] == rowfile.MAGIC and rowfile_state(lib.folder) == "clean"
    ids = _ids_by_path(lib)
    victim = int(ids[5])
    with open(path, "r+b") as f:  # as a writer that died: dirty, and one row older than SQL's vector
        f.write(rowfile.MAGIC + rowfile.DIRTY)
        f.seek(victim * DIM * 4)
        f.write(x[6].tobytes())  # another image's unit vector: no length check could see it
    scores, found = Library(lib.folder).vectors().search(x[5:6], 1)
    assert found[0, 0] == victim and scores[0, 0] == pytest.approx(1.0, abs=1e-6)  # SQL's vector, not the row

    def no_sql(*args, **kwargs):
        raise AssertionError("read SQL while a live writer keeps the row file current")

    monkeypatch.setattr(lib.store.__class__, "vectors_by_ids", no_sql)
    with WriteLock(lib.folder):  # a live writer (here, this test): the dirty file is read
        Library(lib.folder).vectors().search(x[7:8], 5)


def test_a_rebuild_beside_a_writer_serves_its_process_and_writes_nothing(tmp_path, monkeypatch):
    """A search process that finds the FAISS file stale while a writer holds the lock rebuilds in memory only:
    writing rows beside the writer could put back vectors older than the ones it just stored."""
    from zsindex import rowfile
    from zsindex.lock import WriteLock

    x = _clustered(800, seed=13)
    lib = _library(tmp_path / "idx", x)
    lib.rebuild("ivfpq")
    (lib.folder / META_NAME).unlink()  # stale
    before = {p.name: p.read_bytes() for p in lib.folder.iterdir() if p.name != "write.lock"}
    writes = []
    real_write = rowfile.RowFile.write
    monkeypatch.setattr(rowfile.RowFile, "write", lambda self, ids, vecs: writes.append(len(ids)) or
                        real_write(self, ids, vecs))
    with WriteLock(lib.folder):
        vi = Library(lib.folder).vectors()
        assert vi.kind == "ivfpq" and not vi.mapped  # rebuilt here, in memory
        assert writes == []  # not a row written, not even the same vectors again
        scores, found = vi.search(x[:1], 3)
        assert scores[0, 0] == pytest.approx(1.0, abs=1e-6)
    after = {p.name: p.read_bytes() for p in lib.folder.iterdir() if p.name != "write.lock"}
    assert after == before  # neither the FAISS file nor a row written
    vi = Library(lib.folder).vectors()  # no writer now: rebuilt under the lock, and kept
    assert (lib.folder / META_NAME).exists() and rowfile_state(lib.folder) == "clean" and writes


def rowfile_state(folder):
    from zsindex.rowfile import RowFile

    return RowFile(folder, DIM).state()
