"""Formats beyond Pillow's own: camera RAW (rawpy/LibRaw), JPEG XL (imagecodecs/libjxl), content sniffing.

``decode_bytes`` in images.py hands a file here first (``special_decoder``);
these decoders return the same ``Decoded`` record and raise ``ImageError``
for anything they cannot read in full, never a partial image.

RAW: the embedded preview (the camera's own JPEG or bitmap rendering) is used
when its short side is at least the model's input size, since that is fast
and is what photo managers show; otherwise LibRaw demosaics at half size.
A broken preview falls back to the demosaic, which reads every raw pixel;
when that fails too the file is an error.

JPEG XL: libjxl through imagecodecs (BSD-licensed, ships libjxl in its wheel).
libjxl applies the codestream's orientation itself, so EXIF orientation is
not applied a second time. The size is read from the codestream header before
decoding, so the megapixel guard acts before any pixel memory is taken.

rawpy and imagecodecs are imported on first use only.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import ImageError, TooLargeError

if TYPE_CHECKING:
    from PIL import Image

    from .images import Decoded

# What LibRaw reads (its list of supported cameras covers these containers). Names only: .raw and
# .data are too generic, Blackmagic and RED (.braw, .r3d) are not LibRaw formats.
RAW_SUFFIXES = frozenset(
    (".3fr .ari .arw .bay .cap .cr2 .cr3 .crw .dcr .dcs .dng .drf .eip .erf .fff .gpr .iiq .k25 .kdc .mdc .mef "
     ".mos .mrw .nef .nrw .orf .ori .pef .ptx .pxn .raf .rwl .rw2 .rwz .sr2 .srf .srw .sti .x3f").split()
)
JXL_SUFFIXES = frozenset({".jxl"})
VIDEO_SUFFIXES = frozenset(".mp4 .mov .m4v .mkv .avi .webm .3gp .3g2 .mpg .mpeg .m2ts .mts .wmv .ogv".split())

_JXL_CODESTREAM = b"\xff\x0a"
_JXL_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"


# -- sniffing -----------------------------------------------------------------------------------------
def _ftyp_kind(head: bytes) -> str | None:
    if head[4:8] != b"ftyp":
        return None
    brands = head[8:12] + head[16:40]
    if head[8:12] == b"crx ":
        return "raw"  # Canon CR3
    if any(b in brands for b in (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis", b"hevc", b"heim")):
        return "image"
    return "video"  # isom, mp41, mp42, qt, M4V, 3gp4, ...


_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "image"), (0, b"\x89PNG\r\n\x1a\n", "image"), (0, b"GIF87a", "image"),
    (0, b"GIF89a", "image"), (0, b"BM", "image"), (0, b"8BPS", "image"), (0, b"qoif", "image"),
    (0, b"\x00\x00\x00\x0cjP  ", "image"), (0, b"\xff\x4f\xff\x51", "image"), (0, _JXL_CONTAINER, "image"),
    (0, _JXL_CODESTREAM, "image"), (0, b"FUJIFILMCCD-RAW", "raw"), (6, b"HEAPCCDR", "raw"),
    (0, b"IIU\x00", "raw"), (0, b"IIRO", "raw"), (0, b"IIRS", "raw"), (0, b"MMOR", "raw"),
    (0, b"\x1a\x45\xdf\xa3", "video"), (0, b"\x00\x00\x01\xba", "video"), (0, b"\x00\x00\x01\xb3", "video"),
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "video"),
)


def sniff(head: bytes) -> str | None:
    """'image', 'raw' or 'video' from a file's first 64 bytes; None for anything else."""
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "raw" if head[8:10] == b"CR" else "image"  # Canon CR2 is a TIFF with 'CR' after the header
    if head[:4] == b"RIFF":
        return {b"WEBP": "image", b"AVI ": "video"}.get(head[8:12])
    kind = _ftyp_kind(head)
    if kind:
        return kind
    for offset, magic, found in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return found
    return None


def content_type(head: bytes) -> str:
    """A short name for what a file that is not an image holds, for the ignored-files report."""
    for magic, name in ((b"%PDF", "pdf"), (b"PK\x03\x04", "zip"), (b"\x1f\x8b", "gzip"), (b"<?xpacket", "xmp"),
                        (b"<x:xmpmeta", "xmp"), (b"SQLite format 3", "sqlite"), (b"\x7fELF", "executable")):
        if head.startswith(magic):
            return name
    if not head:
        return "empty"
    try:
        head.decode("utf-8")
        return "text" if b"\x00" not in head else "binary"
    except UnicodeDecodeError:
        return "binary"


def kind_of_name(name: str) -> str | None:
    """'image', 'raw', 'jxl' or 'video' from a file name's extension; None when the name does not say."""
    from .images import IMAGE_SUFFIXES

    ext = os.path.splitext(name)[1].lower()
    if ext in IMAGE_SUFFIXES:
        return "image"
    if ext in RAW_SUFFIXES:
        return "raw"
    if ext in JXL_SUFFIXES:
        return "image"
    if ext in VIDEO_SUFFIXES:
        return "video"
    return None


def is_motion_photo(data: bytes) -> bool:
    """A still with a video inside: Google's motion photo (XMP GCamera tags) or Samsung's trailer."""
    head = data[:131072]  # XMP sits in an APP1 segment near the start
    if b"GCamera:MotionPhoto" in head or b"GCamera:MicroVideo" in head:
        return True
    return b"MotionPhoto_Data" in data


# -- dispatch --------------------------------------------------------------------------------------------
Decoder = Callable[[bytes, str, "int | None", float, bool, str], "Decoded"]


def special_decoder(data: bytes, suffix: str) -> tuple[Decoder, str] | None:
    """(decoder, format name) for data that Pillow does not read itself, by content, then by extension."""
    if data.startswith(_JXL_CODESTREAM) or data.startswith(_JXL_CONTAINER):
        return decode_jxl, "JXL"
    suffix = suffix.lower()
    if suffix in RAW_SUFFIXES:
        head = data[:64]
        if sniff(head) == "image" and head[:4] not in (b"II*\x00", b"MM\x00*"):
            return None  # a JPEG (PNG, ...) named like a RAW file: read as what it is, as any misnamed image
        return decode_raw, suffix.lstrip(".").upper()
    if sniff(data[:64]) == "raw":
        return decode_raw, "RAW"
    return None


def _finish(im: "Image.Image", target: int | None) -> "Image.Image":
    from .images import _to_rgb

    im = _to_rgb(im)
    if target:
        factor = min(im.size) // (2 * target)
        if factor >= 2:
            im = im.reduce(factor)
    return im


def check_megapixels(width: int, height: int, max_megapixels: float) -> None:
    """zsindex's decompression-bomb guard: ImageError when width x height is over the caller's limit."""
    if width * height > max_megapixels * 1_000_000:
        raise TooLargeError(
            f"decompression bomb guard: {width}x{height} is {width * height / 1e6:.0f} MP, "
            f"over the {max_megapixels:g} MP limit (max_megapixels=MP)", width, height
        )


# -- RAW ---------------------------------------------------------------------------------------------
# LibRaw's flip (0, 3, 5, 6) as the EXIF orientation it stands for.
_FLIP_TO_ORIENTATION = {0: 1, 3: 3, 5: 8, 6: 6}


def _raw_exif(data: bytes) -> dict[str, Any]:
    """Date, camera and GPS from the RAW's own TIFF header when Pillow can read it (most RAWs are TIFFs)."""
    from PIL import Image

    from .images import _exif_meta

    try:
        # No warnings.catch_warnings() here: decoding runs in several threads, and that context manager
        # swaps the process-wide filter list, so threads would restore each other's lists (see ingest.py).
        return _exif_meta(Image.open(io.BytesIO(data)))
    except Exception:  # CR3, RAF, CRW...: not TIFF; their preview may carry EXIF instead
        return {}


def _preview(raw: Any, target: int | None, flip: int) -> "tuple[Image.Image, dict[str, Any]] | None":
    """The embedded preview, upright, if there is one at least the model's size that decodes in full."""
    import rawpy
    from PIL import Image, ImageOps

    from .images import _exif_meta

    try:
        thumb = raw.extract_thumb()
    except rawpy.LibRawError:
        return None  # none, of a kind LibRaw cannot hand over, or unreadable: the demosaic reads the raw data
    im: Image.Image
    try:
        if thumb.format == rawpy.ThumbFormat.JPEG:
            im = Image.open(io.BytesIO(thumb.data))
            if target and min(im.size) < target:
                return None
            if target:
                im.draft("RGB", (target, target))
            meta = _exif_meta(im)
            im.load()
        else:
            im, meta = Image.fromarray(thumb.data), {}
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError):
        return None  # broken preview: fall back to the demosaic, which reads every raw pixel
    if target and min(im.size) < target:
        return None
    if meta.get("orientation", 1) != 1:
        im = ImageOps.exif_transpose(im) or im
    else:
        im = _apply_flip(im, flip)
    return im, meta


def _apply_flip(im: "Image.Image", flip: int) -> "Image.Image":
    from PIL import Image

    op = {3: Image.Transpose.ROTATE_180, 5: Image.Transpose.ROTATE_90, 6: Image.Transpose.ROTATE_270}.get(flip)
    return im.transpose(op) if op is not None else im


def decode_raw(data: bytes, digest: str, target: int | None, max_megapixels: float, pixels: bool,
               fmt: str = "") -> "Decoded":
    """A camera RAW file: embedded preview if large enough, else LibRaw's half-size demosaic."""
    import rawpy
    from PIL import Image

    from .images import Decoded

    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            sizes = raw.sizes
            flip = sizes.flip if sizes.flip in _FLIP_TO_ORIENTATION else 0
            width, height = (sizes.height, sizes.width) if flip in (5, 6) else (sizes.width, sizes.height)
            check_megapixels(sizes.raw_width, sizes.raw_height, max_megapixels)
            meta = _raw_exif(data)
            meta["orientation"] = _FLIP_TO_ORIENTATION[flip]
            meta["media_kind"] = "raw"
            fmt = fmt or "RAW"
            if not pixels:
                return Decoded(None, digest, width, height, fmt, meta)
            found = _preview(raw, target, flip)
            if found is not None:
                im, preview_meta = found
                meta = {**{k: v for k, v in preview_meta.items() if k != "orientation"}, **meta}
            else:
                rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
                im = Image.fromarray(rgb)
    except ImageError:
        raise
    except rawpy.LibRawError as e:
        raise ImageError(f"cannot decode RAW: {type(e).__name__}: {e}".strip()[:300]) from None
    except (OSError, ValueError, RuntimeError, MemoryError) as e:
        raise ImageError(f"cannot decode RAW: {e}".strip()[:300]) from None
    return Decoded(_finish(im, target), digest, width, height, fmt, meta)


# -- JPEG XL ------------------------------------------------------------------------------------------
class _Bits:
    """LSB-first bit reader, as the JPEG XL codestream is written."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def u(self, n: int) -> int:
        value = 0
        for i in range(n):
            byte = self.data[(self.pos + i) >> 3]  # IndexError on a short header: the caller reports it
            value |= ((byte >> ((self.pos + i) & 7)) & 1) << i
        self.pos += n
        return value

    def u32(self) -> int:
        return 1 + self.u((9, 13, 18, 30)[self.u(2)])


_RATIOS = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}


def _jxl_boxes(data: bytes) -> dict[bytes, bytes]:
    """The boxes of a JPEG XL container (partial codestream boxes joined in order)."""
    boxes: dict[bytes, bytes] = {}
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        start = pos + 8
        if size == 1:
            size, start = struct.unpack(">Q", data[pos + 8:pos + 16])[0], pos + 16
        end = len(data) if size == 0 else pos + size
        if end < start:
            break
        body = data[start:end]
        if kind == b"jxlp":
            boxes[b"jxlc"] = boxes.get(b"jxlc", b"") + body[4:]
        else:
            boxes.setdefault(kind, body)
        pos = end
    return boxes


def jxl_size(codestream: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG XL codestream's SizeHeader."""
    bits = _Bits(codestream[2:])
    small = bits.u(1)
    height = (bits.u(5) + 1) * 8 if small else bits.u32()
    ratio = bits.u(3)
    if ratio:
        num, den = _RATIOS[ratio]
        return height * num // den, height
    width = (bits.u(5) + 1) * 8 if small else bits.u32()
    return width, height


def decode_jxl(data: bytes, digest: str, target: int | None, max_megapixels: float, pixels: bool,
               fmt: str = "") -> "Decoded":
    import numpy as np
    from PIL import Image

    from .images import Decoded, _exif_meta

    boxes = _jxl_boxes(data) if data.startswith(_JXL_CONTAINER) else {b"jxlc": data}
    try:
        width, height = jxl_size(boxes.get(b"jxlc", b""))
    except IndexError:
        raise ImageError("cannot decode JPEG XL: truncated header") from None
    check_megapixels(width, height, max_megapixels)
    meta: dict[str, Any] = {}
    if b"Exif" in boxes and len(boxes[b"Exif"]) > 4:
        holder = Image.new("L", (1, 1))
        holder.info["exif"] = b"Exif\x00\x00" + boxes[b"Exif"][4:]  # the box starts with a 4-byte offset
        meta = {k: v for k, v in _exif_meta(holder).items() if k != "orientation"}  # libjxl already turned it
    if not pixels:
        return Decoded(None, digest, width, height, "JXL", meta)
    import imagecodecs

    try:
        arr = imagecodecs.jpegxl_decode(data, index=0)  # the first frame of an animation
    except Exception as e:  # libjxl reports damage as JpegxlError or RuntimeError: the file is an error either way
        raise ImageError(f"cannot decode JPEG XL: {e}".strip()[:300]) from None
    if arr.dtype != np.uint8:  # 16-bit or float samples
        peak = 1.0 if arr.dtype.kind == "f" else float(np.iinfo(arr.dtype).max)
        arr = (np.clip(arr / peak, 0, 1) * 255 + 0.5).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] in (1, 2):
        arr = arr[..., 0]
    im = Image.fromarray(np.ascontiguousarray(arr))
    return Decoded(_finish(im, target), digest, im.width, im.height, "JXL", meta)
