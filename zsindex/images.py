"""Safe image decoding: one read, EXIF orientation, bomb guard, reduced-size JPEG decode.

Every failure becomes an ``ImageError`` with a short reason, so that callers
can record it and carry on. Pillow and numpy only (no torch), so it runs in
worker processes cheaply.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from .config import DEFAULT_MAX_MEGAPIXELS
from .errors import ImageError
from .media import JXL_SUFFIXES, RAW_SUFFIXES, check_megapixels, is_motion_photo, special_decoder

IMAGE_SUFFIXES = frozenset(
    (".jpg .jpeg .jpe .jfif .mpo .png .apng .webp .gif .tif .tiff .bmp .dib .heic .heif .hif .avif "
     ".ico .jp2 .j2k .ppm .pgm .pbm .pnm .tga .pcx .psd .qoi").split()
)
# Still images zsindex reads, including those decoded outside Pillow (see media.py).
STILL_SUFFIXES = IMAGE_SUFFIXES | RAW_SUFFIXES | JXL_SUFFIXES
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_TAG_DATETIME, _TAG_MAKE, _TAG_MODEL, _TAG_ORIENTATION = 306, 271, 272, 274
_TAG_DATETIME_ORIGINAL = 36867
_plugins_ready = False
_setup_lock = threading.Lock()
_guarding = threading.local()  # .max_megapixels: the limit of the decode running in this thread, if any


def _setup() -> None:
    """Register the HEIF opener and zsindex's bomb guard once (decoding runs in several threads).

    Pillow checks an image's size against its process-wide ``Image.MAX_IMAGE_PIXELS``
    in ``Image.open`` and again in several plugins (a TIFF's tile, a GIF's frame,
    an MPO's next image), warning with a ``DecompressionBombWarning`` or raising
    with its own message. zsindex decodes with the caller's ``max_megapixels``
    instead, without changing that setting or the warning filters, which belong
    to whoever imported zsindex, and without a temporary change of either, which
    threads would see: Pillow's check is wrapped once, and while a zsindex decode
    runs in a thread (see :func:`guarded`), the check in that thread is
    zsindex's own. Everywhere else Pillow's check runs as it was.
    """
    global _plugins_ready
    with _setup_lock:
        if _plugins_ready:
            return
        try:  # HEIC/HEIF come from pillow-heif; AVIF is native in Pillow 11.3+
            from pillow_heif import register_heif_opener

            register_heif_opener()
        except ImportError:  # pragma: no cover - pillow-heif is a dependency, but stay usable without it
            pass
        pillows = getattr(Image, "_decompression_bomb_check", None)  # Image.open and plugins look it up per call
        if pillows is not None:  # (a Pillow without it: its own guard and message stand)

            def bomb_check(size: tuple[int, int], *args: Any, **kwargs: Any) -> None:
                limit = getattr(_guarding, "max_megapixels", None)
                if limit is None:  # any other thread, or outside a zsindex decode: Pillow's check, as it was
                    pillows(size, *args, **kwargs)
                else:
                    check_megapixels(size[0], size[1], limit)

            Image._decompression_bomb_check = bomb_check
        _plugins_ready = True


@contextmanager
def guarded(max_megapixels: float) -> Iterator[None]:
    """Within it, in this thread, Pillow's size checks are zsindex's guard with this limit."""
    _setup()
    before = getattr(_guarding, "max_megapixels", None)
    _guarding.max_megapixels = max_megapixels
    try:
        yield
    finally:
        _guarding.max_megapixels = before


@dataclass
class Decoded:
    """A decoded image ready for a model, plus what was learnt about the file."""

    image: Image.Image | None  # None when only the header was read
    sha256: str
    width: int  # as displayed, after EXIF orientation
    height: int
    format: str
    meta: dict[str, Any] = field(default_factory=dict)


def _exif_meta(im: Image.Image) -> dict[str, Any]:
    """Date, camera and orientation from EXIF; call it after load(), so only metadata errors are dropped."""
    try:
        return _read_exif(im.getexif())
    except Exception:  # noqa: BLE001 - broken EXIF blocks are common; they must not lose the image
        return {}


def _read_exif(exif: Image.Exif) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if not exif:
        return meta
    sub = exif.get_ifd(_EXIF_IFD) if _EXIF_IFD in exif else {}
    raw_date = sub.get(_TAG_DATETIME_ORIGINAL) or exif.get(_TAG_DATETIME)
    if isinstance(raw_date, str):
        try:
            meta["taken_at"] = datetime.strptime(raw_date.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
        except ValueError:
            pass
    for key, tag in (("camera_make", _TAG_MAKE), ("camera_model", _TAG_MODEL)):
        value = exif.get(tag)
        if isinstance(value, str) and value.strip("\x00 "):
            meta[key] = value.strip("\x00 ")
    orientation = exif.get(_TAG_ORIENTATION)
    if isinstance(orientation, int) and 1 <= orientation <= 8:
        meta["orientation"] = orientation
    meta.update(_gps(exif))
    return meta


def _gps(exif: Image.Exif) -> dict[str, float]:
    try:
        gps = exif.get_ifd(_GPS_IFD)
        lat, lon = gps.get(2), gps.get(4)
        if not lat or not lon:
            return {}

        def degrees(v: Any) -> float:
            return float(v[0]) + float(v[1]) / 60 + float(v[2]) / 3600

        la, lo = degrees(lat), degrees(lon)
        if gps.get(1) == "S":
            la = -la
        if gps.get(3) == "W":
            lo = -lo
        if not (-90 <= la <= 90 and -180 <= lo <= 180):
            return {}
        return {"gps_lat": round(la, 7), "gps_lon": round(lo, 7)}
    except Exception:  # malformed GPS blocks: drop GPS, keep the image
        return {}


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.uint32)
        peak = 65535 if im.mode.startswith("I;16") else max(int(arr.max()), 1)
        im = Image.fromarray((arr * 255 // peak).astype(np.uint8), "L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, im).convert("RGB")
    return im.convert("RGB") if im.mode != "RGB" else im


_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
              7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def decode_bytes(
    data: bytes,
    target: int | None = 224,
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
    header_only_for: frozenset[str] = frozenset(),
    suffix: str = "",
) -> Decoded:
    """Decode image bytes; target is the short side the model needs (None: full size).

    An image is returned only when all its pixels were decoded: every error on
    the way (header, pixel data, conversion) becomes an ``ImageError``. Only
    EXIF metadata may be broken without losing the image, and it is read after
    the pixels, since reading it can itself trigger the decode (PNG keeps EXIF
    after the pixel data), whose error would otherwise be lost with the metadata.

    When the content hash is in ``header_only_for`` (content that already has
    a vector, so it was fully decoded once) only the header and EXIF are read,
    and ``image`` is None. ``suffix`` (the file name's extension) picks the RAW
    decoder for RAW formats that cannot be told from their content (see media.py).
    """
    _setup()
    if not data:
        raise ImageError("empty file (0 bytes)")
    digest = hashlib.sha256(data).hexdigest()
    pixels = digest not in header_only_for
    special = special_decoder(data, suffix)
    try:
        with guarded(max_megapixels):  # RAW previews and EXIF are read by Pillow too
            if special is not None:
                decoder, name = special
                return decoder(data, digest, target, max_megapixels, pixels, name)
            return _decode_pillow(data, digest, target, max_megapixels, pixels)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image Pillow can identify") from None
    except Exception as e:  # noqa: BLE001 - any failure to decode is this file's error, never the run's
        raise ImageError(f"cannot decode: {e or type(e).__name__}".strip()[:300]) from None


def _decode_pillow(data: bytes, digest: str, target: int | None, max_megapixels: float, pixels: bool) -> Decoded:
    """decode_bytes for what Pillow opens; run within guarded(), so Pillow's size checks are zsindex's."""
    im: Image.Image = Image.open(io.BytesIO(data))
    fmt = im.format or "unknown"
    width, height = im.size
    check_megapixels(width, height, max_megapixels)
    if pixels:
        if target and fmt in ("JPEG", "MPO"):
            # JPEG can decode at 1/2, 1/4 or 1/8 scale for free; draft keeps both sides >= target.
            im.draft("RGB", (target, target))
        im.load()
    meta = _exif_meta(im)
    if fmt in ("JPEG", "MPO", "HEIF") and is_motion_photo(data):
        meta["media_kind"] = "motion"  # the still is indexed; the clip inside is not a second result
    if meta.get("orientation", 1) >= 5:
        width, height = height, width
    if not pixels:
        return Decoded(None, digest, width, height, fmt, meta)
    if meta.get("orientation", 1) in _TRANSPOSE:
        im = im.transpose(_TRANSPOSE[meta["orientation"]])
    im = _to_rgb(im)
    if target:
        short = min(im.size)
        factor = short // (2 * target)
        if factor >= 2:
            im = im.reduce(factor)  # cheap box reduction; the model's own resize finishes the job
    return Decoded(im, digest, width, height, fmt, meta)


def load_pixels(path: Path, target: int | None = 224, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> Image.Image:
    """Just the decoded RGB image of a file (ImageError if it cannot be read)."""
    image = read_image(path, target, max_megapixels).image
    assert image is not None  # only header_only_for skips pixels
    return image


def read_image(path: Path, target: int | None = 224, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> Decoded:
    """Read a file once and decode it; unreadable files become ImageError."""
    try:
        if path.is_dir():
            raise ImageError("is a directory")
        data = path.read_bytes()
    except ImageError:
        raise
    except OSError as e:
        from .errors import path_blocker

        blocker = path_blocker(path) if isinstance(e, (FileNotFoundError, NotADirectoryError)) else None
        raise ImageError(f"cannot read: {e.strerror or e}" + (f" ({blocker})" if blocker else "")) from None
    return decode_bytes(data, target, max_megapixels, suffix=path.suffix)
