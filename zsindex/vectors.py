"""The FAISS vector index: a rebuildable cache of the vectors held in SQL.

Inner product over unit vectors (= cosine), ids are SQL image ids
(``IndexIDMap2``). The file is saved atomically next to a small JSON file that
records the SQL generation it matches; a missing or stale file is rebuilt.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

if TYPE_CHECKING:
    from .store import Store

FAISS_NAME = "vectors.faiss"
META_NAME = "vectors.json"


class VectorIndex:
    def __init__(self, dim: int, index: object | None = None) -> None:
        import faiss

        self.dim = dim
        self._faiss = faiss
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)  # type: ignore[attr-defined]

    def add(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        if len(ids):
            self.remove(ids)  # re-adding an id replaces it rather than duplicating it
            self.index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32),  # type: ignore[attr-defined]
                                    np.asarray(ids, dtype=np.int64))

    def remove(self, ids: Iterable[int]) -> None:
        arr = np.fromiter(ids, dtype=np.int64)
        if len(arr):
            self.index.remove_ids(arr)  # type: ignore[attr-defined]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of shape (Q, k); missing results have id -1."""
        k = max(1, min(k, self.ntotal)) if self.ntotal else 1
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)  # type: ignore[attr-defined]

    def ids(self) -> np.ndarray:
        return self._faiss.vector_to_array(self.index.id_map).astype(np.int64)  # type: ignore[attr-defined]

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
        import faiss

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
    def rebuild(cls, store: "Store", model_id: int, dim: int) -> "VectorIndex":
        vi = cls(dim)
        for ids, vecs in store.indexed_vectors(model_id):
            vi.index.add_with_ids(np.ascontiguousarray(vecs), ids)  # type: ignore[attr-defined]
        return vi


def open_vectors(store: "Store", model_id: int, dim: int, save: bool) -> tuple[VectorIndex, bool]:
    """Load the FAISS cache, rebuilding it from SQL when missing or stale. Returns (index, rebuilt)."""
    generation = store.generation()
    loaded = VectorIndex.load(store.folder, dim, generation)
    if loaded is not None:
        return loaded, False
    rebuilt = VectorIndex.rebuild(store, model_id, dim)
    if save:
        rebuilt.save(store.folder, generation)
    return rebuilt, True
