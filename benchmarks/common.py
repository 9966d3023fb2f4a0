"""What every benchmark prints with its figures: machine, commit, date."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def machine() -> dict[str, Any]:
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "processor": platform.processor() or platform.machine()}


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def peak_rss_mb() -> float:
    """Peak resident memory of this process and of its finished children, in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round((own + children) / 1024, 1)


# The "photos" data model (see PhotoLike): squared weight of each level in a vector before it is normalised.
PHOTO_LEVELS = {"shared": 0.45, "topic": 0.20, "event": 0.15, "scene": 0.13, "shot": 0.07}
PHOTO_TOPICS = 1000
PHOTO_EVENT_SIZE = 100  # photos per event, on average: a library of n photos has n / 100 events
PHOTO_BURST_MEAN = 5  # photos per scene (a burst of shots): 1 + Poisson(4)


class PhotoLike:
    """Synthetic unit vectors with the structure of a photo library's image embeddings, at several scales.

    Chosen from how real libraries and CLIP embeddings look, before any index was measured on it:

    - every vector shares one direction (CLIP image embeddings lie in a narrow cone: two unrelated
      photos have a cosine of about 0.45);
    - 1,000 topics (beaches, pets, documents, ...);
    - events (a birthday, a trip's day, a shoot): n / 100 of them, each in one topic, so a larger
      library has more events rather than larger ones;
    - scenes: bursts of 1 + Poisson(4) shots of one scene, stored consecutively, each in one event;
    - shots: the photo itself.

    Each level adds a Gaussian offset whose squared norm is ``PHOTO_LEVELS`` of the whole (shared 0.45,
    topic 0.20, event 0.15, scene 0.13, shot 0.07), so the expected cosine of two photos is 0.45 when
    unrelated, 0.65 in one topic, 0.80 in one event, 0.93 in one burst. The offsets are not isotropic:
    their variance along the i-th axis of a random rotation falls as 1/i (a power-law spectrum; the
    participation ratio, an effective dimension, is about 28 of 512), as in real embeddings, whose
    intrinsic dimension is far below their width.

    Queries (``queries``) are new photos: one shot of a new scene in an existing event, not stored.
    """

    def __init__(self, n: int, dim: int, rng: Any) -> None:
        import numpy as np

        self.dim, self.rng = dim, rng
        q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
        spectrum = 1.0 / np.arange(1, dim + 1)
        self.basis = (np.sqrt(spectrum / spectrum.sum())[:, None] * q.T).astype(np.float32)  # rows: scaled axes
        w = {k: float(np.sqrt(v)) for k, v in PHOTO_LEVELS.items()}
        shared = rng.normal(size=dim).astype(np.float32)
        shared *= w["shared"] / np.linalg.norm(shared)
        topics = shared + w["topic"] * self.offsets(PHOTO_TOPICS)
        n_events = max(1, n // PHOTO_EVENT_SIZE)
        self.events = topics[rng.integers(0, PHOTO_TOPICS, n_events)] + w["event"] * self.offsets(n_events)
        self.w = w

    def offsets(self, m: int) -> Any:
        """m Gaussian offsets with the power-law spectrum, of expected squared norm 1."""
        import numpy as np

        return self.rng.normal(size=(m, self.dim)).astype(np.float32) @ self.basis

    def chunk(self, m: int) -> Any:
        """The next m photos: whole bursts of shots of one scene (the last one cut at m)."""
        import numpy as np

        sizes = 1 + self.rng.poisson(PHOTO_BURST_MEAN - 1, size=m)
        sizes = sizes[:int(np.searchsorted(np.cumsum(sizes), m)) + 1]
        scenes = self.events[self.rng.integers(0, len(self.events), len(sizes))] + \
            self.w["scene"] * self.offsets(len(sizes))
        x = np.repeat(scenes, sizes, axis=0)[:m] + self.w["shot"] * self.offsets(m)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def queries(self, m: int) -> Any:
        """m new photos, each one shot of a new scene in an existing event."""
        import numpy as np

        x = self.events[self.rng.integers(0, len(self.events), m)] + self.w["scene"] * self.offsets(m) + \
            self.w["shot"] * self.offsets(m)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def synthetic_library(folder: Path, n: int, dim: int, rng: Any, chunk: int = 50_000,
                      db: str | None = None, data: str = "isotropic") -> tuple[Any, Any, Any]:
    """A real index whose SQL holds n synthetic vectors, as an ingest would have stored them; no FAISS file yet.

    ``data``: "isotropic", 2,000 Gaussian clusters on the unit sphere (noise 0.35 per dimension), or
    "photos", the multi-scale model of ``PhotoLike``.
    ``db``: a database server's URL for the store (else the folder's SQLite file).
    Returns (library, model row, cluster centres or the PhotoLike generator).
    """
    import numpy as np

    from tests.synthetic import store_vectors
    from zsindex.library import Library

    if data == "photos":
        centres = PhotoLike(n, dim, rng)
    else:
        centres = rng.normal(size=(2000, dim)).astype(np.float32)
    lib = Library(folder, db=db or False, create=True)
    model = lib.store.bind_model("bench/synthetic", "synthetic", None, dim)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        if data == "photos":
            x = centres.chunk(m)
        else:
            x = centres[rng.integers(0, len(centres), m)] + 0.35 * rng.normal(size=(m, dim)).astype(np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
        store_vectors(lib, model.id, x, start=start, path="/bench/{:08d}.jpg")
    return lib, model, centres


def report(name: str, figures: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    out = {"benchmark": name, "figures": figures, "machine": machine(), "commit": commit(),
           "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), **extra}
    print(json.dumps(out, indent=2))
    return out
