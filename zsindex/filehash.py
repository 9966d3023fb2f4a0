"""Content hashes of large local files (checkpoints), remembered while the file is unchanged.

Hashing a 600 MB checkpoint takes seconds; doing it on every query made a
repeated query with a checkpoint file slower than the model itself. The hash
is kept in a small JSON file under the zsindex home, keyed by the file's real
path, and reused while its size, mtime, ctime and inode are all the same
(ctime cannot be set back by tools that preserve mtime, so a rewritten file is
always hashed again). stdlib only.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from . import config

CACHE_NAME = "file-hashes.json"
MAX_ENTRIES = 200


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file, streamed in 1 MiB blocks (never read whole into memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _cache_path() -> Path:
    return config.home() / "cache" / CACHE_NAME


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _read(path: Path) -> dict[str, dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write(path: Path, entries: dict[str, dict]) -> None:
    """Atomic replace; a cache that cannot be written only costs a re-hash next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".hashes-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(entries, f)
        os.replace(tmp, path)
    except OSError:
        pass


def cached_sha256(path: Path) -> str:
    """sha256 of a file, from the cache when the file is unchanged since it was last hashed."""
    real = os.path.realpath(path)
    stamp = _stamp(os.stat(real))
    cache = _cache_path()
    entries = _read(cache)
    hit = entries.get(real)
    if isinstance(hit, dict) and hit.get("stamp") == stamp and isinstance(hit.get("sha256"), str):
        return str(hit["sha256"])
    digest = sha256_file(Path(real))
    if _stamp(os.stat(real)) != stamp:  # changed while being read: do not remember it
        return digest
    entries = _read(cache)  # another process may have added entries meanwhile
    entries.pop(real, None)
    entries[real] = {"stamp": stamp, "sha256": digest}
    while len(entries) > MAX_ENTRIES:
        entries.pop(next(iter(entries)))
    _write(cache, entries)
    return digest
