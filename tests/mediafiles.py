"""Real media files for tests, written by real libraries: DNG (tifffile), JPEG XL (libjxl through
imagecodecs), videos (PyAV/FFmpeg), a Google-style motion photo (JPEG + XMP + MP4)."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from zsindex import shapes


def scene(colour: str, shape: str, size: int = 256, seed: int = 0) -> np.ndarray:
    return shapes.draw([shapes.Thing(colour, shape)], size=size, rng=np.random.default_rng(seed))


def write_dng(path: Path, rgb: np.ndarray, preview: np.ndarray | None = None, orientation: int = 1,
              thumb: np.ndarray | None = None, thumb_width: int = 64, preview_jpeg: bytes | None = None) -> Path:
    """A linear DNG: an RGGB mosaic of ``rgb`` (12-bit), a small RGB thumbnail in IFD0 (of ``thumb``,
    else the preview, else the scene) and, when given, a JPEG preview of ``preview`` in a second
    SubIFD (or the JPEG bytes ``preview_jpeg`` as they are), laid out as cameras and converters write them."""
    import tifffile

    h, w = (rgb.shape[0] // 2) * 2, (rgb.shape[1] // 2) * 2
    rgb = rgb[:h, :w]
    planes = [rgb[..., i].astype(np.uint16) * 16 for i in range(3)]
    cfa = np.zeros((h, w), np.uint16)
    cfa[0::2, 0::2] = planes[0][0::2, 0::2]
    cfa[0::2, 1::2] = planes[1][0::2, 1::2]
    cfa[1::2, 0::2] = planes[1][1::2, 0::2]
    cfa[1::2, 1::2] = planes[2][1::2, 1::2]
    if preview_jpeg is not None:
        preview = np.asarray(Image.open(io.BytesIO(preview_jpeg)).convert("RGB"))
    small = thumb if thumb is not None else preview if preview is not None else rgb
    small = np.asarray(Image.fromarray(small).resize((thumb_width, max(1, thumb_width * h // w))))
    ifd0 = [(271, "s", 0, "ZsCam", True), (272, "s", 0, "Test DNG", True), (274, "H", 1, orientation, True),
            (50706, "B", 4, (1, 4, 0, 0), True), (50708, "s", 0, "ZsCam Test DNG", True)]
    raw_tags = [(33421, "H", 2, (2, 2), True), (33422, "B", 4, (0, 1, 1, 2), True), (50714, "H", 1, 0, True),
                (50717, "H", 1, 4095, True), (50721, "d", 9, (1, 0, 0, 0, 1, 0, 0, 0, 1), True)]
    with tifffile.TiffWriter(path) as tw:
        tw.write(small, photometric="rgb", subfiletype=1, subifds=2 if preview is not None else 1, extratags=ifd0)
        tw.write(cfa, photometric=32803, subfiletype=0, extratags=raw_tags)
        if preview is not None:
            jpeg = preview_jpeg
            if jpeg is None:
                buf = io.BytesIO()
                Image.fromarray(preview).save(buf, "JPEG", quality=92)
                jpeg = buf.getvalue()
            tw.write(iter([jpeg]), shape=preview.shape, dtype=np.uint8, photometric="ycbcr",
                     subfiletype=1, compression="jpeg", subsampling=(2, 2), rowsperstrip=preview.shape[0])
    return path


def write_jxl(path: Path, rgb: np.ndarray) -> Path:
    import imagecodecs

    path.write_bytes(imagecodecs.jpegxl_encode(rgb, level=90))
    return path


CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9", ".avi": "mpeg4",
          ".mpg": "mpeg1video", ".m4v": "libx264", ".3gp": "libx264"}


def write_video(path: Path, parts: list[tuple[np.ndarray, float]], fps: int = 10, gop: int | None = None) -> Path:
    """A real video: each (frame, seconds) part shown for that long, encoded by FFmpeg through PyAV."""
    import av

    h, w = parts[0][0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(CODECS[path.suffix.lower()], rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if gop:
            stream.codec_context.gop_size = gop  # a keyframe every gop frames
        if path.suffix.lower() == ".mpg":
            stream.rate = Fraction(25)
            fps = 25
        for rgb, seconds in parts:
            for _ in range(round(seconds * fps)):
                for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_motion_photo(path: Path, rgb: np.ndarray, clip: bytes) -> Path:
    """A Google-style motion photo: JPEG with GCamera/Container XMP, the MP4 appended after the JPEG."""
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description xmlns:GCamera="http://ns.google.com/photos/1.0/camera/" '
        'xmlns:Container="http://ns.google.com/photos/1.0/container/" '
        'xmlns:Item="http://ns.google.com/photos/1.0/container/item/" '
        f'GCamera:MotionPhoto="1" GCamera:MotionPhotoVersion="1" GCamera:MotionPhotoPresentationTimestampUs="0">'
        '<Container:Directory><rdf:Seq>'
        '<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="image/jpeg" Item:Semantic="Primary"/></rdf:li>'
        f'<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="video/mp4" Item:Semantic="MotionPhoto" '
        f'Item:Length="{len(clip)}"/></rdf:li>'
        '</rdf:Seq></Container:Directory></rdf:Description></rdf:RDF></x:xmpmeta>'
    )
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=92, xmp=xmp.encode())
    path.write_bytes(buf.getvalue() + clip)
    return path
