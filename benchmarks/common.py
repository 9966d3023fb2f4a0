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


def synthetic_library(folder: Path, n: int, dim: int, rng: Any, chunk: int = 50_000,
                      db: str | None = None) -> tuple[Any, Any, Any]:
    """A real index whose SQL holds n synthetic vectors, clustered like real embeddings (2,000 Gaussian
    clusters on the unit sphere), as an ingest would have stored them; no FAISS file yet.

    ``db``: a database server's URL for the store (else the folder's SQLite file).
    Returns (library, model row, cluster centres).
    """
    import numpy as np

    from tests.synthetic import store_vectors
    from zsindex.library import Library

    centres = rng.normal(size=(2000, dim)).astype(np.float32)
    lib = Library(folder, db=db or False)
    model = lib.store.bind_model("bench/synthetic", "synthetic", None, dim)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        x = centres[rng.integers(0, len(centres), m)] + 0.35 * rng.normal(size=(m, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        store_vectors(lib, model.id, x, start=start, path="/bench/{:08d}.jpg")
    return lib, model, centres


def report(name: str, figures: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    out = {"benchmark": name, "figures": figures, "machine": machine(), "commit": commit(),
           "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), **extra}
    print(json.dumps(out, indent=2))
    return out
