"""The FAISS vector index: a rebuildable cache of the vectors held in SQL.

Inner product over unit vectors (= cosine); FAISS ids are SQL image ids. Up to
``IVF_THRESHOLD`` vectors the index is exact (``IndexIDMap2`` over a flat
index). Larger libraries are rebuilt as an inverted-file index (IVF, about
4·sqrt(N) lists, ``NPROBE`` lists searched), which is approximate but scans a
small fraction of the vectors; a filtered search widens nprobe until it has k
results. The file is saved atomically next to a small JSON file that records
the SQL generation it matches; a missing or stale file is rebuilt.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .store import Store

FAISS_NAME = "vectors.faiss"
META_NAME = "vectors.json"
IVF_THRESHOLD = 200_000
NPROBE = 32


def _faiss() -> Any:
    """faiss, imported on first use (it is heavy) and typed loosely: its SWIG stubs do not match it."""
    import faiss

    return faiss


def new_faiss_index(dim: int, training: np.ndarray | None = None) -> Any:
    """Exact flat index, or a trained IVF index when given enough training vectors."""
    faiss = _faiss()

    if training is None or len(training) < IVF_THRESHOLD:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    nlist = int(4 * math.sqrt(len(training)))
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(0)
    sample = training[rng.choice(len(training), size=min(len(training), 64 * nlist), replace=False)]
    ivf.train(np.ascontiguousarray(sample))
    ivf.nprobe = NPROBE
    return ivf


class VectorIndex:
    def __init__(self, dim: int, index: Any = None) -> None:
        faiss = _faiss()

        self.dim = dim
        self._faiss = faiss
        self.index = index if index is not None else new_faiss_index(dim)
        self.ivf = faiss.try_extract_index_ivf(self.index) if not isinstance(self.index, faiss.IndexIDMap2) else None

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)  # type: ignore[attr-defined]

    def add(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        """Add new ids; callers remove an id first to replace it (a flat remove is O(N), so only when needed)."""
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32),  # type: ignore[attr-defined]
                                    np.asarray(ids, dtype=np.int64))

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
        """Every (ids, vectors) held, in chunks, straight from FAISS memory (no SQL, no decoding)."""
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

    def save(self, folder: Path, generation: int) -> None:
        """Atomic: write beside, then rename; the generation file goes last."""
        tmp = folder / (FAISS_NAME + ".tmp")
        self._faiss.write_index(self.index, str(tmp))
        os.replace(tmp, folder / FAISS_NAME)
        meta_tmp = folder / (META_NAME + ".tmp")
        meta_tmp.write_text(json.dumps({"generation": generation, "ntotal": self.ntotal, "dim": self.dim}))
        os.replace(meta_tmp, folder / META_NAME)

    @classmethod
    def load(cls, folder: Path, dim: int, generation: int) -> "VectorIndex | None":
        """The saved index if it matches this generation, else None (missing, stale or broken)."""
        faiss = _faiss()

        try:
            meta = json.loads((folder / META_NAME).read_text())
            if meta.get("generation") != generation or meta.get("dim") != dim:
                return None
            index = faiss.read_index(str(folder / FAISS_NAME))
        except (OSError, ValueError, RuntimeError):
            return None
        if index.ntotal != meta.get("ntotal"):
            return None
        return cls(dim, index)

    @classmethod
    def build(cls, dim: int, ids: np.ndarray, vecs: np.ndarray) -> "VectorIndex":
        """A fresh index over these vectors: exact below IVF_THRESHOLD, IVF above."""
        vi = cls(dim, new_faiss_index(dim, vecs if len(vecs) >= IVF_THRESHOLD else None))
        if len(ids):
            vi.index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), ids)  # type: ignore[attr-defined]
        return vi

    @classmethod
    def rebuild(cls, store: "Store", model_id: int, dim: int) -> "VectorIndex":
        chunks = list(store.indexed_vectors(model_id))
        if not chunks:
            return cls(dim)
        return cls.build(dim, np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks]))


def open_vectors(store: "Store", model_id: int, dim: int, generation: int) -> tuple[VectorIndex, bool]:
    """Load the FAISS cache of this generation, else rebuild it from SQL. Returns (index, rebuilt)."""
    loaded = VectorIndex.load(store.folder, dim, generation)
    if loaded is not None:
        return loaded, False
    return VectorIndex.rebuild(store, model_id, dim), True
