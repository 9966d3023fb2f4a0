"""Thumbnails of indexed images, made with the ingest decoder and cached on disk by content hash.

The cache lives in the index folder (``thumbnails/ab/<sha256>-<size>.jpg``;
a video's, made from one of the frames ingest sampled, ``<sha256>@<ms>-<size>.jpg``
with the frame's time in milliseconds): a file's content hash names its
thumbnails, so a moved file keeps them and a changed file gets new ones. The decoder is the one ingest uses (bomb guard,
EXIF orientation, reduced-size JPEG decoding), so a thumbnail shows what the
model saw, upright.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .config import DEFAULT_MAX_MEGAPIXELS
from .errors import NotFoundError, UsageError
from .images import decode_bytes

if TYPE_CHECKING:
    from PIL import Image

SIZES = (128, 256, 512, 1024)
THUMB_DIR = "thumbnails"
QUALITY = 85


def check_size(size: int) -> int:
    if size not in SIZES:
        raise UsageError(f"thumbnail size must be one of {', '.join(map(str, SIZES))}, not {size}")
    return size


def cache_path(folder: Path, sha256: str, size: int) -> Path:
    return folder / THUMB_DIR / sha256[:2] / f"{sha256}-{size}.jpg"


def video_name(sha256: str, seconds: float) -> str:
    """What names the thumbnails of a video's frame in the cache (the content hash and the frame's time)."""
    return f"{sha256}@{round(seconds * 1000)}"


def make_thumbnail(folder: Path, source: str, sha256: str, size: int,
                   max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> bytes:
    """The JPEG thumbnail of this content at this size: from the cache, or made now and cached. An index
    folder that cannot take it (read-only, full) still gets its thumbnail, just not cached. Raises ImageError."""
    target = cache_path(folder, sha256, check_size(size))
    try:
        return target.read_bytes()
    except OSError:
        pass
    try:
        data = Path(source).read_bytes()
    except OSError:
        raise NotFoundError("the image file can no longer be read; run Library.ingest(PATH) again") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise NotFoundError("the image file changed since it was indexed; run Library.ingest(PATH) again")
    decoded = decode_bytes(data, target=size, max_megapixels=max_megapixels)
    image = decoded.image
    assert image is not None  # pixels are always decoded here
    return _save(target, image, size)


def make_video_thumbnail(folder: Path, source: str, sha256: str, seconds: float, size: int,
                         max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> bytes:
    """The JPEG thumbnail of a video's frame at ``seconds`` (one ingest sampled): cached as make_thumbnail's.
    The file is hashed as ingest hashes it, streamed, never read whole. Raises ImageError."""
    from .filehash import sha256_file
    from .video import read_frame

    target = cache_path(folder, video_name(sha256, seconds), check_size(size))
    try:
        return target.read_bytes()
    except OSError:
        pass
    try:
        digest = sha256_file(source)
    except OSError:
        raise NotFoundError("the video file can no longer be read; run Library.ingest(PATH) again") from None
    if digest != sha256:
        raise NotFoundError("the video file changed since it was indexed; run Library.ingest(PATH) again")
    image = read_frame(source, seconds, target=size, max_megapixels=max_megapixels).convert("RGB")
    return _save(target, image, size)


def _save(target: Path, image: "Image.Image", size: int) -> bytes:
    from PIL import Image

    image.thumbnail((size, size), Image.Resampling.BICUBIC, reducing_gap=2.0)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=QUALITY, optimize=False)
    jpeg = out.getvalue()
    _cache(target, jpeg)
    return jpeg


def _cache(target: Path, jpeg: bytes) -> None:
    """Keep a thumbnail, atomically (a reader sees the whole file or none); where the folder cannot take it, go
    without: the cache only saves time."""
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(jpeg)
        os.replace(tmp, target)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
