"""The FAISS wrapper on both index kinds: exact flat, and IVF for large libraries."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from zsindex import vectors
from zsindex.vectors import VectorIndex


def _data(n: int, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.arange(100, 100 + n, dtype=np.int64), x


def test_flat_and_ivf_batches_return_every_vector(monkeypatch):
    monkeypatch.setattr(vectors, "IVF_THRESHOLD", 2000)
    for n in (500, 3000):  # flat, then IVF
        ids, x = _data(n)
        vi = VectorIndex.build(16, ids, x)
        assert (vi.ivf is not None) == (n >= 2000)
        chunks = list(vi.batches(size=256))
        # IVF lists here hold about 14 vectors each: they come gathered into chunks of at least 256
        assert all(len(b_ids) >= 256 for b_ids, _ in chunks[:-1]) and len(chunks) < n / 200
        got = {int(i): v for b_ids, b_x in chunks for i, v in zip(b_ids, b_x)}
        assert set(got) == set(ids.tolist())
        np.testing.assert_allclose(np.stack([got[i] for i in ids.tolist()]), x, atol=1e-6)


def test_ivf_filtered_search_widens_until_k_found(monkeypatch):
    monkeypatch.setattr(vectors, "IVF_THRESHOLD", 2000)
    ids, x = _data(4000, seed=1)
    vi = VectorIndex.build(16, ids, x)
    chosen = ids[::400]  # 10 ids scattered over many lists
    scores, found = vi.search(x[:1], 10, chosen)
    assert set(found[0].tolist()) == set(chosen.tolist())


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 30))
def test_flat_search_equals_numpy(seed, k):
    ids, x = _data(300, seed=seed % 7)
    vi = VectorIndex.build(16, ids, x)
    q = x[seed % 300]
    scores, found = vi.search(q[None, :], k)
    expected = np.argsort(-(x @ q), kind="stable")[:k]
    np.testing.assert_allclose(scores[0], (x @ q)[expected], atol=1e-5)
