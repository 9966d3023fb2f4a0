"""Uploaded images: copied to a private temporary file, checked with the ingest decoder first.

The body was already capped in bytes by the guard (413); here the megapixel
limit is applied from the image header by the same decoder ingest uses, so an
oversized or undecodable upload is a 422 before any model work.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..images import decode_bytes


def safe_name(filename: str | None) -> str:
    """The uploaded file's own name without any folder part, for echoing back."""
    name = os.path.basename((filename or "").replace("\\", "/")).strip()
    return "".join(ch for ch in name if ch.isprintable())[:200] or "upload"


@contextlib.contextmanager
def saved_upload(upload: Any, max_megapixels: float) -> Iterator[Path]:
    """A checked copy of the upload on disk, removed afterwards."""
    if upload is None:
        raise UsageError("no file uploaded: send the image as the multipart field 'file'")
    with tempfile.TemporaryDirectory(prefix="zsindex-upload-") as folder:
        path = Path(folder) / "upload"
        with open(path, "wb") as out:
            shutil.copyfileobj(upload.file, out, 1 << 20)
        data = path.read_bytes()
        decode_bytes(data, target=64, max_megapixels=max_megapixels)  # ImageError -> 422
        yield path
