"""The FAISS vector index: a rebuildable cache of the vectors held in SQL.

Inner product over unit vectors (= cosine); FAISS ids are SQL image ids. Three
kinds, chosen by size unless the index records one (``zsindex rebuild --kind``):

- ``flat`` (below ``IVF_THRESHOLD``): exact (``IndexIDMap2`` over a flat index).
- ``ivf`` (up to ``PQ_THRESHOLD``): an inverted file (about 4·√N lists,
  ``NPROBE`` searched) holding full float32 vectors; approximate, but it scans
  a small fraction of them.
- ``ivfpq`` (above): an inverted file of product-quantised codes, ``m`` bytes
  per vector instead of 4·d, so 100M vectors need gigabytes, not hundreds of
  them. About 2·√N lists (fewer than ``ivf``: training cost grows with lists ×
  sample), ``PQ_NPROBE`` searched. Codes only approximate the scores, so a
  search asks FAISS for ``RERANK`` times more candidates (at least
  ``RERANK_MIN``) and ranks those again exactly from their stored vectors,
  read from the row file beside the FAISS file (``rowfile``), else from SQL:
  hits keep their true cosine scores, and recall is that of the candidate list.

N is the number of vectors indexed, not the training sample: the lists'
centroids are trained (spherical k-means, ten rounds) on ``TRAIN_PER_LIST``
vectors per list, at most ``TRAIN_MAX``, so list length grows only as √N.
From ``HNSW_LISTS`` lists (about 67M vectors in ``ivfpq``) an HNSW graph over
the trained centroids replaces the flat scan that chooses lists; below that the
flat scan measured more accurate (README, "Large libraries").

A filtered search widens nprobe until it has k results. The file is saved
atomically next to a small JSON file that records the SQL generation it
matches and that generation's random id (``store.VECTORS_ID``), so a file
copied from another index, or from a copy of this one that changed since, is
stale too; a missing or stale file is rebuilt. A search process maps the file
into memory instead of reading it (IVF kinds), so it starts at once however
large the index; a writer loads it whole.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .errors import shown

if TYPE_CHECKING:
    from .store import Store

FAISS_NAME = "vectors.faiss"
META_NAME = "vectors.json"
IVF_THRESHOLD = 200_000
PQ_THRESHOLD = 2_000_000
NPROBE = 32  # lists an `ivf` search scans
PQ_NPROBE = 64  # lists an `ivfpq` search scans
LISTS_PER_ROOT = {"ivf": 4.0, "ivfpq": 2.0}  # lists per √N vectors
TRAIN_PER_LIST = {"ivf": 64, "ivfpq": 40}  # training vectors per list
TRAIN_MAX = 1_000_000  # largest training sample (2 GB at 512 dimensions)
HNSW_LISTS = 16_384  # from this many lists (N ≥ 67M), an HNSW graph over the centroids chooses lists
HNSW_EF_SEARCH = 128
RERANK = 10  # candidates fetched per wanted hit from a product-quantised index
RERANK_MIN = 400  # and never fewer than this many (README, "Large libraries": what 400 buys and costs)
KINDS = ("flat", "ivf", "ivfpq")
KIND_STATE = "vector_kind"  # store state key: the kind chosen by `zsindex rebuild --kind`


class ExactVectors(Protocol):
    """Where exact vectors come from when the FAISS index holds only codes (the library: the row file, SQL)."""

    def by_ids(self, ids: np.ndarray) -> np.ndarray: ...

    def batches(self, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]: ...

    def remember(self, ids: np.ndarray, vecs: np.ndarray) -> None: ...

    def saved(self, vectors_id: str | None) -> None: ...


class StoredVectors:
    """Exact vectors of a model: by id from the row file beside the FAISS file where it has them, else from
    the store (``rowfile``); in chunks from the store."""

    def __init__(self, store: "Store", model_id: int, dim: int, complete: bool = False,
                 vectors_id: str | None = None) -> None:
        from .rowfile import RowFile

        self.store = store
        self.model_id = model_id
        self.rows = RowFile(store.folder, dim, vectors_id)  # trusted only when it says it holds these vectors
        # Whether every row is current once this process's writes are done (it writes them all, or the
        # file was clean when a writer opened it); only then does saving the FAISS file mark it clean.
        self.complete = complete

    def by_ids(self, ids: np.ndarray) -> np.ndarray:
        vecs, found = self.rows.read(ids)
        if not found.all():
            missing = np.flatnonzero(~found)
            vecs[missing] = self.store.vectors_by_ids(self.model_id, np.asarray(ids)[missing])
        return vecs

    def batches(self, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self.store.indexed_vectors(self.model_id, batch=size)

    def remember(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        """Vectors just added to a compressed index (committed in SQL): into the row file."""
        self.rows.write(ids, vecs)

    def saved(self, vectors_id: str | None) -> None:
        """The FAISS file these rows go with is saved, for the vectors named vectors_id."""
        if self.complete:
            self.rows.mark_clean(vectors_id)


def _faiss() -> Any:
    """faiss, imported on first use (it is heavy) and typed loosely: its SWIG stubs do not match it."""
    import faiss

    return faiss


def rerank_width(k: int) -> int:
    """Candidates a compressed index ranks again exactly for k hits."""
    return max(k * RERANK, RERANK_MIN)


def choose_kind(n: int) -> str:
    """The kind an index of n vectors gets when none is recorded."""
    return "flat" if n < IVF_THRESHOLD else "ivf" if n < PQ_THRESHOLD else "ivfpq"


def pq_bytes(dim: int) -> int:
    """Bytes of a PQ code: one per 8 dimensions, at most 64, and a divisor of dim (equal sub-vectors)."""
    return max(m for m in range(1, min(64, max(1, dim // 8)) + 1) if dim % m == 0)


def ivf_lists(n: int, kind: str) -> int:
    """Inverted lists for an index of n vectors: about ``LISTS_PER_ROOT``·√n, so lists keep a size that
    grows only as √n, and no more than a ``TRAIN_MAX`` sample can train (``TRAIN_PER_LIST`` per list)."""
    per_list = TRAIN_PER_LIST[kind]
    return max(1, min(int(LISTS_PER_ROOT[kind] * math.sqrt(n)), n // 39, TRAIN_MAX // per_list))


def training_size(n: int, kind: str) -> int:
    """Vectors the lists (and codes) of an index of n vectors are trained on: ``TRAIN_PER_LIST`` per list."""
    return min(n, max(TRAIN_PER_LIST[kind] * ivf_lists(n, kind), 10_000), TRAIN_MAX)


def list_probes(nlist: int, kind: str) -> int:
    """Lists a search scans."""
    return min(nlist, NPROBE if kind == "ivf" else PQ_NPROBE)


def new_faiss_index(dim: int, training: np.ndarray | None = None, kind: str = "flat", n: int | None = None) -> Any:
    """An empty index of this kind for n vectors (default: as many as ``training``); IVF kinds are
    trained on ``training`` (a sample of the vectors, or all of them)."""
    faiss = _faiss()

    if kind == "flat" or training is None or len(training) == 0:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    n = max(len(training), n or 0)
    nlist = min(ivf_lists(n, kind), max(1, len(training) // 39))
    if kind == "ivf":
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    else:
        m = pq_bytes(dim)
        index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, m, 8 if len(training) >= 256 * 39 else 4,
                                 faiss.METRIC_INNER_PRODUCT)
    # The lists' centroids: ten k-means rounds (FAISS's default is 25; training cost grows with lists × sample),
    # kept unit length like the vectors (spherical k-means), so they rank by cosine and a graph over them
    # (below) searches them as it would by distance.
    index.cp.niter = 10
    index.cp.spherical = True
    rng = np.random.default_rng(0)
    size = min(len(training), training_size(n, kind))
    sample = training if size == len(training) else training[np.sort(rng.choice(len(training), size, replace=False))]
    if kind == "ivfpq":
        # A small library has fewer vectors than a code book has entries (16 at 4 bits), which FAISS refuses:
        # repeat them (codes only pick candidates; every candidate is scored again from its exact vector).
        # Nor is it worth FAISS's warning on stderr that there are few points per centroid.
        index.cp.min_points_per_centroid = index.pq.cp.min_points_per_centroid = 1
        if len(sample) < 1 << index.pq.nbits:
            sample = np.resize(sample, (1 << index.pq.nbits, dim))
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    if nlist >= HNSW_LISTS:
        _graph_quantizer(faiss, index, dim)
    index.nprobe = list_probes(nlist, kind)
    return index


def _graph_quantizer(faiss: Any, index: Any, dim: int) -> None:
    """Replace a trained IVF index's flat quantizer by an HNSW graph over the same centroids.

    Choosing lists then costs a few hundred dot products instead of one per list: what makes adding
    millions of vectors to thousands of lists affordable (the training itself stays exact).
    """
    centroids = index.quantizer.reconstruct_n(0, index.nlist)
    graph = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = 80
    graph.add(centroids)
    graph.hnsw.efSearch = HNSW_EF_SEARCH
    index.quantizer = graph
    index.own_fields = True
    graph.this.disown()  # the IVF index frees it (and writes it in its file)


class VectorIndex:
    def __init__(self, dim: int, index: Any = None, *, mapped: bool = False) -> None:
        faiss = _faiss()

        self.dim = dim
        self._faiss = faiss
        self.index = index if index is not None else new_faiss_index(dim)
        ivf = faiss.try_extract_index_ivf(self.index) if not isinstance(self.index, faiss.IndexIDMap2) else None
        self.ivf = None if ivf is None else faiss.downcast_index(ivf)
        self.mapped = mapped  # a read-only memory map of the file: search only
        self.exact: ExactVectors | None = None  # set by the owner; needed by a quantised index

    @property
    def kind(self) -> str:
        if self.ivf is None:
            return "flat"
        return "ivfpq" if isinstance(self.ivf, self._faiss.IndexIVFPQ) else "ivf"

    @property
    def quantised(self) -> bool:
        return self.kind == "ivfpq"

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)  # type: ignore[attr-defined]

    def add(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        """Add new ids; callers remove an id first to replace it (a flat remove is O(N), so only when needed).

        A compressed index keeps only codes: its exact source remembers the vectors for re-ranking.
        """
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32),  # type: ignore[attr-defined]
                                    np.asarray(ids, dtype=np.int64))
            if self.quantised and self.exact is not None:
                self.exact.remember(ids, vecs)

    def remove(self, ids: Iterable[int]) -> None:
        arr = np.fromiter(ids, dtype=np.int64)
        if len(arr):
            self.index.remove_ids(arr)  # type: ignore[attr-defined]

    def search(self, queries: np.ndarray, k: int, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of shape (Q, k), best first; missing results have id -1.

        With ``ids``, only those ids are considered (a FAISS id selector), so a
        filter that keeps 1% of the library still gets k results when k exist.
        """
        k = max(1, min(k, self.ntotal)) if self.ntotal else 1
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if self.quantised:
            return self._reranked(q, k, ids)
        return self._search(q, k, ids)

    def _reranked(self, q: np.ndarray, k: int, ids: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Candidates from the codes, ranked again by their exact vectors (true cosine scores)."""
        if self.exact is None:
            raise RuntimeError("a product-quantised index needs its exact vectors to rank candidates")
        wide = min(self.ntotal, rerank_width(k))
        _, cand = self._search(q, wide, ids)
        pool = np.unique(cand[cand >= 0])  # one lookup for every query's candidates
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        found = np.full((len(q), k), -1, dtype=np.int64)
        if not len(pool):
            return scores, found
        exact = self.exact.by_ids(pool) @ q.T  # (candidates, queries)
        for row in range(len(q)):
            mine = np.searchsorted(pool, cand[row][cand[row] >= 0])
            order = mine[np.argsort(-exact[mine, row], kind="stable")[:k]]
            scores[row, :len(order)] = exact[order, row]
            found[row, :len(order)] = pool[order]
        return scores, found

    def _search(self, q: np.ndarray, k: int, ids: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        selector = None if ids is None else self._faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
        if self.ivf is None:
            params = None if selector is None else self._faiss.SearchParameters(sel=selector)
            return self.index.search(q, k, params=params)  # type: ignore[attr-defined]
        wanted = k if ids is None else min(k, len(ids))
        nprobe = self.ivf.nprobe
        while True:  # widen until every query has k results (filters can empty the nearest lists)
            params = self._faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
            scores, found = self.index.search(q, k, params=params)  # type: ignore[attr-defined]
            if (found[:, wanted - 1] >= 0).all() or nprobe >= self.ivf.nlist:
                return scores, found
            nprobe = min(self.ivf.nlist, nprobe * 4)

    def batches(self, size: int = 65_536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every (ids, vectors) held, in chunks, straight from FAISS memory (no SQL, no decoding).

        A quantised index holds codes, not vectors: its chunks come from the exact source (SQL).
        """
        if self.quantised:
            if self.exact is None:
                raise RuntimeError("a product-quantised index needs its exact vectors to stream them")
            yield from self.exact.batches(size)
            return
        if self.ivf is None:
            flat = self._faiss.downcast_index(self.index.index)  # type: ignore[attr-defined]
            n = self.ntotal
            xb = self._faiss.rev_swig_ptr(flat.get_xb(), n * self.dim).reshape(n, self.dim)
            ids = self.ids()
            for start in range(0, n, size):
                yield ids[start:start + size], xb[start:start + size]
            return
        # Inverted lists hold a few hundred vectors each: gather them into chunks of about
        # `size`, since callers multiply each chunk by a matrix and small products are slow.
        lists = self.ivf.invlists
        id_parts: list[np.ndarray] = []
        vec_parts: list[np.ndarray] = []
        held = 0
        for i in range(self.ivf.nlist):
            n = lists.list_size(i)
            if n:
                id_parts.append(self._faiss.rev_swig_ptr(lists.get_ids(i), n).astype(np.int64))
                codes = self._faiss.rev_swig_ptr(lists.get_codes(i), n * self.dim * 4)
                vec_parts.append(codes.view(np.float32).reshape(n, self.dim))
                held += n
            if held >= size or (i == self.ivf.nlist - 1 and held):
                yield np.concatenate(id_parts), np.concatenate(vec_parts)
                id_parts, vec_parts, held = [], [], 0

    def ids(self) -> np.ndarray:
        if self.ivf is None:
            return self._faiss.vector_to_array(self.index.id_map).astype(np.int64)  # type: ignore[attr-defined]
        lists = self.ivf.invlists
        parts = [self._faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                 for i in range(self.ivf.nlist) if lists.list_size(i)]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def save(self, folder: Path, generation: int, vectors_id: str | None) -> None:
        """Atomic: write beside, then rename; the generation file (with the generation's id) goes last.

        A failure (full disk, read-only folder) leaves the previous files as they
        were and raises a message; SQL keeps every vector, so nothing is lost.
        """
        from .errors import IndexStateError
        from .faults import file_fault
        from .safewrite import write_new

        tmp, meta_tmp = folder / (FAISS_NAME + ".tmp"), folder / (META_NAME + ".tmp")
        blocked = cache_fault(folder)
        if blocked is not None:
            raise blocked
        try:
            _write_index(self._faiss, self.index, tmp)
            os.replace(tmp, folder / FAISS_NAME)
            meta = {"generation": generation, "ntotal": self.ntotal, "dim": self.dim, "kind": self.kind}
            write_new(meta_tmp, json.dumps(meta if vectors_id is None else {**meta, "vectors_id": vectors_id}))
            os.replace(meta_tmp, folder / META_NAME)
            if self.quantised and self.exact is not None:
                self.exact.saved(vectors_id)
            if not self.quantised:
                from .faults import in_the_way
                from .rowfile import ROWS_NAME

                if in_the_way(folder / ROWS_NAME) is None:  # a folder or a pipe of that name: not ours to remove
                    try:
                        (folder / ROWS_NAME).unlink(missing_ok=True)  # left by a compressed index this one replaced
                    except OSError:
                        pass
        except (OSError, RuntimeError) as e:
            for leftover in (tmp, meta_tmp):  # ours, written just above
                leftover.unlink(missing_ok=True)
            if isinstance(e, OSError):
                raise file_fault(e, folder / FAISS_NAME,
                                 f"save the vector cache {shown(folder / FAISS_NAME)}") from None
            raise IndexStateError(
                f"cannot save the vector cache {shown(folder / FAISS_NAME)} ({str(e).strip().splitlines()[-1][:200]}); "
                f"check free space and write access; the vectors are safe in the index database and the cache is "
                f"rebuilt on next use") from None

    @classmethod
    def load(cls, folder: Path, dim: int, generation: int, vectors_id: str | None, *, mapped: bool = False,
             kind: str | None = None) -> "VectorIndex | None":
        """The saved index if it matches this generation and its id (and kind, when given), else None.

        An index made before generations had ids (vectors_id None) takes a file without one.

        ``mapped`` maps an IVF file read-only instead of reading it: pages come in as
        searches touch them, so a search process starts at once however large the file.
        """
        faiss = _faiss()

        from .faults import not_a_file

        if not_a_file(folder / META_NAME) or not_a_file(folder / FAISS_NAME):
            return None  # a folder, a pipe (reading it would wait forever), a link to nothing: rebuilt from SQL
        try:
            meta = json.loads(read_regular(folder / META_NAME))
            if meta_stale(meta, generation, vectors_id) or meta.get("dim") != dim:
                return None
            if kind is not None and meta.get("kind", "flat") != kind:
                return None
            flat = meta.get("kind", "flat") == "flat"  # a flat index is small: read it, so it stays writable
            flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mapped and not flat else 0
            if not _utf8(folder):
                flags = 0  # read through a Python file object, which cannot be memory-mapped
            index = _read_index(faiss, folder / FAISS_NAME, flags)
        except (OSError, ValueError, RuntimeError, AttributeError):  # missing or damaged: rebuilt from SQL
            return None
        if index.ntotal != meta.get("ntotal"):
            return None
        return cls(dim, index, mapped=bool(flags))

    @classmethod
    def build(cls, dim: int, ids: np.ndarray, vecs: np.ndarray, kind: str | None = None) -> "VectorIndex":
        """A fresh index over these vectors, of the given kind or the one chosen by size."""
        kind = kind or choose_kind(len(vecs))
        vi = cls(dim, new_faiss_index(dim, vecs if kind != "flat" else None, kind, len(vecs)))
        vi.add(ids, vecs)
        return vi

    @classmethod
    def rebuild(cls, store: "Store", model_id: int, dim: int, kind: str | None = None,
                write_rows: bool = True, vectors_id: str | None = None) -> "VectorIndex":
        """Rebuilt from SQL in two passes: a training sample, then the vectors chunk by chunk.

        Never holds more than one chunk of the library beside the sample, so a library larger
        than memory can be rebuilt as a quantised index. ``write_rows``: a compressed index writes its
        row file as it fills (only under the write lock; see rowfile). ``vectors_id``: the generation's id, which
        a row file this process does not write must record to be read.
        """
        n = store.count_indexed(model_id)
        kind = kind or store.get_state(KIND_STATE) or choose_kind(n)
        sample = _training_sample(store.indexed_vectors(model_id), n, training_size(n, kind)) \
            if kind != "flat" and n else None
        vi = cls(dim, new_faiss_index(dim, sample, kind, n))
        del sample
        exact = StoredVectors(store, model_id, dim, complete=write_rows, vectors_id=vectors_id)
        vi.exact = exact if write_rows else None  # while it fills: the rows are written as it goes, or not at all
        for ids, vecs in store.indexed_vectors(model_id):
            vi.add(ids, vecs)
        vi.exact = exact
        return vi


def meta_stale(meta: Any, generation: int, vectors_id: str | None) -> bool:
    """Whether vectors.json's contents describe another state of the vectors than (generation, vectors_id):
    an older one, or one of another index (its file copied here)."""
    return (not isinstance(meta, dict) or meta.get("generation") != generation
            or meta.get("vectors_id") != vectors_id)


def cache_fault(folder: Path) -> Exception | None:
    """Why the FAISS cache cannot be saved in folder, when a name it is written under is taken by something
    that is neither a regular file nor a symbolic link (those are replaced): a folder, a named pipe. Such a
    thing is not zsindex's to remove; a reader then goes without saving the cache, a writer stops with this."""
    from .errors import IndexStateError
    from .faults import in_the_way
    from .lock import LOCK_NAME

    for name in (FAISS_NAME, META_NAME, FAISS_NAME + ".tmp", META_NAME + ".tmp", LOCK_NAME):
        what = in_the_way(folder / name)
        if what is not None:
            role = "the index's write lock" if name == LOCK_NAME else "the vector cache"
            return IndexStateError(
                f"cannot save the vector cache in {shown(folder)}: {shown(folder / name)} is {what}, where zsindex "
                f"keeps {role} as a regular file. Move it aside (zsindex removes nothing it did not make) and run the "
                f"command again; the vectors are safe in the index database, and reading commands keep working "
                f"(they rebuild the cache from it each time, without saving it)")
    return None


def read_regular(path: Path) -> str:
    """The text of a small regular file, opened without waiting (a named pipe in its place raises OSError)."""
    import stat

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{shown(path)} is not a regular file")
        return f.read().decode("utf-8")


def _utf8(path: Path) -> bool:
    try:
        str(path).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _write_index(faiss: Any, index: Any, path: Path) -> None:
    """Into a new file at path, through a Python file object: FAISS would open the name itself and write
    through a link planted there (and it takes UTF-8 names only)."""
    from .safewrite import create_new

    with os.fdopen(create_new(path), "wb") as f:
        writer = faiss.PyCallbackIOWriter(f.write)
        faiss.write_index(index, writer)
        del writer  # flushes FAISS's buffer before the file closes


def _read_index(faiss: Any, path: Path, flags: int = 0) -> Any:
    if _utf8(path):
        return faiss.read_index(str(path), flags)
    with open(path, "rb") as f:
        reader = faiss.PyCallbackIOReader(f.read)
        try:
            return faiss.read_index(reader)
        finally:
            del reader


def _training_sample(chunks: Iterator[tuple[np.ndarray, np.ndarray]], n: int,
                     size: int = 200_000) -> np.ndarray:
    """A uniform random sample of at most ``size`` vectors taken from each chunk in proportion."""
    rng = np.random.default_rng(0)
    keep = min(1.0, size / max(n, 1))
    parts = [vecs[rng.random(len(vecs)) < keep] for _, vecs in chunks]
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def load_vectors(store: "Store", model_id: int, dim: int, generation: int, vectors_id: str | None,
                 writable: bool = True) -> VectorIndex | None:
    """The saved FAISS file of this generation (and the kind recorded), or None: rebuild it.

    Not ``writable``: a large file is memory-mapped read-only (a searcher's start-up). A writer (it holds
    the write lock) keeps the row file current as it adds; its rows count as complete if it finds the file
    clean, so that its save marks the file clean again.
    """
    loaded = VectorIndex.load(store.folder, dim, generation, vectors_id, mapped=not writable,
                              kind=store.get_state(KIND_STATE) or None)
    if loaded is not None:
        loaded.exact = StoredVectors(store, model_id, dim, vectors_id=vectors_id)
        loaded.exact.complete = writable and loaded.exact.rows.trusted_clean()
    return loaded
