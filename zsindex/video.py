"""Video decoding for ingest: a few frames per video, evenly spaced, through PyAV (FFmpeg in its wheel).

Frames are taken at the middles of equal spans of the video: ``FRAMES_PER_MINUTE``
a minute, at least ``MIN_FRAMES`` (a short clip still shows what changes in it)
and at most ``MAX_FRAMES`` (a long film costs the same as a five-minute one).
A clip up to ``EXACT_SECONDS`` long is decoded in one forward pass and each
sample is the first frame at or after its time. A longer video is sampled at
keyframes: for each time, seek to the keyframe before it and decode only that
one (FFmpeg skips the other frames), so the cost grows with the number of
samples, not with the length or the keyframe spacing; a sample's time is then
that of its keyframe, which is at most one keyframe interval early. Samples
that land on the same frame count once.

Guards, each recorded as the file's error: no video stream, a frame larger
than ``--max-megapixels``, a video longer than ``MAX_HOURS``, and more than
``MAX_DECODED`` frames decoded in all (a clip with an absurd frame rate, a
file whose seeking does not work). A frame that cannot be decoded fails the
whole video: it is indexed from all its samples or not at all.

The display rotation of phone videos is applied. The file is hashed while it
is streamed from disk in blocks, never read whole into memory.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ImageError, TooLargeError
from .filehash import sha256_file

if TYPE_CHECKING:
    from PIL import Image

FRAMES_PER_MINUTE = 6
MIN_FRAMES = 4
MAX_FRAMES = 32
MAX_HOURS = 12.0
EXACT_SECONDS = 60.0  # up to this long, one forward pass and exact sample times; longer: keyframes
MAX_DECODED = 10_000  # frames decoded in all for one video (a 60 s clip at 120 fps is 7,200)


@dataclass
class DecodedVideo:
    sha256: str
    width: int  # as displayed, after rotation
    height: int
    format: str
    duration: float
    frames: list[tuple[int, float, "Image.Image"]] = field(default_factory=list)  # (position, seconds, image)
    meta: dict[str, Any] = field(default_factory=dict)


def sample_times(duration: float) -> list[float]:
    """Where frames are taken: the middles of n equal spans (n from the length, see the module doc)."""
    if duration <= 0:
        return [0.0]
    n = min(MAX_FRAMES, max(MIN_FRAMES, math.ceil(duration / 60 * FRAMES_PER_MINUTE)))
    return [duration * (i + 0.5) / n for i in range(n)]



def _format_name(path: str, container: Any) -> str:
    ext = os.path.splitext(path)[1].lstrip(".").upper()
    return ext if ext else str(container.format.name).split(",")[0].upper()


def _picture(frame: Any, target: int | None, rotation: int) -> "Image.Image":
    """The frame as an upright RGB image, scaled by FFmpeg to about twice the model's input size."""
    width, height = frame.width, frame.height
    if target and min(width, height) > 2 * target:
        scale = 2 * target / min(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    im = frame.to_image(width=width, height=height)
    return im.rotate(rotation, expand=True) if rotation else im


def _duration(container: Any, stream: Any) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return 0.0


@contextlib.contextmanager
def _decoding() -> Iterator[None]:
    """Every failure of reading or decoding a video, as an ImageError with the reason."""
    import av

    try:
        yield
    except ImageError:
        raise
    except av.FFmpegError as e:
        raise ImageError(f"cannot decode video: {e}".strip()[:300]) from None
    except OSError as e:
        raise ImageError(f"cannot read: {e.strerror or e}") from None
    except (ValueError, RuntimeError, MemoryError, AttributeError, TypeError) as e:
        raise ImageError(f"cannot decode video: {e}".strip()[:300]) from None


def _video_stream(container: Any, max_megapixels: float) -> tuple[Any, int, int]:
    """(the first video stream, its frame width and height), under the decompression bomb guard."""
    if not container.streams.video:
        raise ImageError("no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise ImageError("cannot decode video: no decoder for its video stream (damaged or unsupported)")
    width, height = stream.codec_context.width, stream.codec_context.height
    if not width or not height:
        raise ImageError("video stream without a frame size")
    if width * height > max_megapixels * 1_000_000:
        raise TooLargeError(f"decompression bomb guard: {width}x{height} video frames are over the "
                            f"{max_megapixels:g} MP limit (max_megapixels=MP)", width, height)
    return stream, width, height


def read_video(path: str, target: int | None = 224, max_megapixels: float = 180.0) -> DecodedVideo:
    """Hash a video and decode its sample frames; every failure is an ImageError with the reason."""
    import av

    with _decoding():
        if os.path.getsize(path) == 0:
            raise ImageError("empty file (0 bytes)")
        digest = sha256_file(path)  # streamed from disk, never read whole
        with av.open(path, metadata_errors="ignore") as container:
            stream, width, height = _video_stream(container, max_megapixels)
            duration = _duration(container, stream)
            if duration > MAX_HOURS * 3600:
                raise ImageError(f"video guard: {duration / 3600:.1f} hours is over the {MAX_HOURS:g}-hour limit")
            frames, rotation = _sample(container, stream, duration, target)
            if rotation % 180:
                width, height = height, width  # shown turned by a quarter, as phones record portrait video
            out = DecodedVideo(digest, width, height, _format_name(path, container), duration, frames,
                               {"media_kind": "video", "duration": round(duration, 3)})
    if not out.frames:
        raise ImageError("cannot decode video: no frame could be decoded")
    return out


def _sample(container: Any, stream: Any, duration: float,
            target: int | None) -> tuple[list[tuple[int, float, Any]], int]:
    """The sampled frames (see the module doc), each frame once; and the video's display rotation
    (counter-clockwise degrees)."""
    out: list[tuple[int, float, Any]] = []
    decoded, last, rotation = 0, -1.0, 0
    # Times count from the stream's first timestamp, which MPEG files put at about half a second.
    start = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
    times = sample_times(duration)
    keyframes = duration > EXACT_SECONDS and bool(stream.time_base)
    if keyframes:
        stream.codec_context.skip_frame = "NONKEY"
    frames = None if keyframes else container.decode(stream)
    for t in times:
        if keyframes:
            container.seek(int((start + t) / stream.time_base), stream=stream, backward=True)
            frames = container.decode(stream)
        for frame in frames:  # type: ignore[union-attr]
            decoded += 1
            if decoded > MAX_DECODED:
                raise ImageError(f"video guard: more than {MAX_DECODED} frames decoded for {len(times)} samples")
            when = float(frame.time) - start if frame.time is not None else t
            if not keyframes and when + 1e-6 < t:
                continue
            if when > last + 1e-6:  # a sample that lands on the frame of the one before adds nothing
                rotation = rotation or int(frame.rotation)
                out.append((len(out), max(when, 0.0), _picture(frame, target, rotation)))
                last = when
            break
    return out, rotation


def read_frame(path: str, seconds: float, target: int | None = None, max_megapixels: float = 180.0) -> "Image.Image":
    """The frame ingest sampled at ``seconds`` (counted, as ingest counts, from the stream's first timestamp),
    upright: seek to the keyframe at or before it and decode forward to the first frame at or after it (a
    keyframe-sampled time is its keyframe's). For thumbnails; every failure is an ImageError."""
    import av

    with _decoding(), av.open(path, metadata_errors="ignore") as container:
        stream, _, _ = _video_stream(container, max_megapixels)
        start = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
        if seconds > 0 and stream.time_base:
            container.seek(int((start + seconds) / stream.time_base), stream=stream, backward=True)
        last = None
        for decoded, frame in enumerate(container.decode(stream), start=1):
            if decoded > MAX_DECODED:
                raise ImageError(f"video guard: more than {MAX_DECODED} frames decoded for one frame")
            last = frame
            when = float(frame.time) - start if frame.time is not None else seconds
            if when + 1e-3 >= seconds:
                break
        if last is None:
            raise ImageError("cannot decode video: no frame could be decoded")
        return _picture(last, target, int(last.rotation))
