"""What a user types in a filter, resolved to what the index stores: formats, cameras, paths.

The index keeps Pillow's format names (a camera JPEG with a second image is
"MPO"), the make and model exactly as the camera wrote them ("NIKON
CORPORATION", "ILCE-6400") and absolute paths. Users write "jpeg", "Nikon
D750" and "2023/*.jpg"; these functions bridge the two.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, false, func, or_, select, tuple_
from sqlalchemy.orm import Session

from . import schema as s
from .errors import UsageError

# User-facing format names -> the format names Pillow (and its plugins) report.
FORMAT_NAMES: dict[str, tuple[str, ...]] = {
    "jpeg": ("JPEG", "MPO"), "jpg": ("JPEG", "MPO"), "jpe": ("JPEG", "MPO"), "jfif": ("JPEG", "MPO"),
    "mpo": ("MPO",), "png": ("PNG",), "apng": ("PNG",), "gif": ("GIF",), "webp": ("WEBP",),
    "tif": ("TIFF",), "tiff": ("TIFF",), "heic": ("HEIF",), "heif": ("HEIF",), "hif": ("HEIF",),
    "avif": ("AVIF",), "bmp": ("BMP", "DIB"), "dib": ("DIB", "BMP"), "ico": ("ICO",),
    "jp2": ("JPEG2000",), "j2k": ("JPEG2000",), "jpx": ("JPEG2000",), "jpeg2000": ("JPEG2000",),
    "ppm": ("PPM",), "pgm": ("PPM",), "pbm": ("PPM",), "pnm": ("PPM",), "tga": ("TGA",), "pcx": ("PCX",),
    "psd": ("PSD",), "qoi": ("QOI",),
}
_GLOB_CHARS = re.compile(r"[*?\[]")


def format_clause(session: Session, wanted: str) -> ColumnElement[bool]:
    """Images of the format a user names: aliases and case as users write them, else the stored name."""
    key = wanted.strip().lower().lstrip(".")
    names = FORMAT_NAMES.get(key)
    if names is None:
        stored = {f for f in session.scalars(select(s.Image.format).distinct()) if f}
        names = tuple(f for f in stored if f.lower() == key)
        if not names:
            known = ", ".join(sorted(set(FORMAT_NAMES) | {f.lower() for f in stored}))
            raise UsageError(f"unknown format {wanted!r} for format=; known: {known}")
    return func.upper(s.Image.format).in_(names)


def _squash(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", text.lower())


def _camera_text(make: str, model: str) -> str:
    """make and model, squashed, plus the names users give some models (Sony's ILCE-6400 is the a6400)."""
    text = _squash(f"{make} {model}")
    sony = re.fullmatch(r"ilce-?(\w+)", model.strip().lower())
    if sony:
        text += "a" + _squash(sony.group(1)) + "alpha" + _squash(sony.group(1))
    return text


def camera_matches(make: str | None, model: str | None, wanted: str) -> bool:
    """Every word of wanted appears in make + model, ignoring case, spaces and punctuation."""
    words = [_squash(w) for w in wanted.split()]
    text = _camera_text(make or "", model or "")
    return any(words) and all(w in text for w in words if w)


def camera_clause(session: Session, wanted: str) -> ColumnElement[bool]:
    make, model = func.coalesce(s.Image.camera_make, ""), func.coalesce(s.Image.camera_model, "")
    pairs = [(a, b) for a, b in session.execute(select(make, model).distinct())
             if (a or b) and camera_matches(a, b, wanted)]
    return tuple_(make, model).in_(pairs) if pairs else false()


def _escape_glob(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _anchored(anchor: str, pattern: str) -> str:
    rel = os.path.normpath(pattern)
    base = anchor
    while rel == ".." or rel.startswith(".." + os.sep):
        base, rel = os.path.dirname(base), rel[3:]
    prefix = _escape_glob(base.rstrip(os.sep))
    return prefix + os.sep + ("*" if rel in ("", ".") else rel)


def ingest_roots(session: Session) -> set[str]:
    roots: set[str] = set()
    for raw in session.scalars(select(s.IngestRun.roots).distinct()):
        try:
            roots.update(r for r in json.loads(raw) if isinstance(r, str))
        except ValueError:
            continue
    return roots


def path_globs(pattern: str, anchors: Iterable[str]) -> list[str]:
    """The full-path globs a user's --path means.

    An absolute pattern (or one starting with a wildcard) is matched as it is;
    a relative one against the current folder and against every ingested
    root; one without a slash also against file names anywhere. A pattern with
    no wildcard names a file or a folder: everything under it matches too.
    """
    pattern = os.path.expanduser(pattern.strip())
    if not pattern:
        raise UsageError("path= needs a glob, e.g. '*/2023/*' or 'holidays/*.jpg'")
    if pattern.startswith((os.sep, "*", "?", "[")):
        globs = [pattern]
    else:
        globs = [_anchored(a, pattern) for a in sorted(set(anchors))]
        if os.sep not in pattern.rstrip(os.sep):
            globs.append("*" + os.sep + pattern)
    if not _GLOB_CHARS.search(pattern):
        globs += [g.rstrip(os.sep) + os.sep + "*" for g in globs]
    return list(dict.fromkeys(globs))


def path_clause(session: Session, pattern: str) -> ColumnElement[bool]:
    globs = path_globs(pattern, {os.getcwd(), *ingest_roots(session)})
    column: Any = s.Image.path
    return or_(*(column.op("GLOB")(g) for g in globs))
