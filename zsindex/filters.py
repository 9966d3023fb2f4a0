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
from .errors import UsageError, known_list

# User-facing format names -> the format names Pillow (and its plugins) report.
FORMAT_NAMES: dict[str, tuple[str, ...]] = {
    "jpeg": ("JPEG", "MPO"), "jpg": ("JPEG", "MPO"), "jpe": ("JPEG", "MPO"), "jfif": ("JPEG", "MPO"),
    "mpo": ("MPO",), "png": ("PNG",), "gif": ("GIF",), "webp": ("WEBP",),
    "tif": ("TIFF",), "tiff": ("TIFF",), "heic": ("HEIF",), "heif": ("HEIF",), "hif": ("HEIF",),
    "avif": ("AVIF",), "bmp": ("BMP", "DIB"), "dib": ("DIB", "BMP"), "ico": ("ICO",),
    "jp2": ("JPEG2000",), "j2k": ("JPEG2000",), "jpx": ("JPEG2000",), "jpeg2000": ("JPEG2000",),
    "ppm": ("PPM",), "pnm": ("PPM",), "tga": ("TGA",), "pcx": ("PCX",),
    "psd": ("PSD",), "qoi": ("QOI",),
}
# Names of a kind of file that the index cannot tell from others of its format: Pillow, and so the index, names
# an animated PNG "PNG" as a still one, and every Netpbm file "PPM". Matching the whole format would answer
# `apng` with every PNG, so these are refused, with the name that does find them.
UNTOLD_FORMATS: dict[str, str] = {
    "apng": "an animated PNG is recorded as PNG, like a still one, so the index cannot tell the two apart; "
            "format='png' finds every PNG, animated or not",
    "pgm": "every Netpbm file (PPM, PGM, PBM) is recorded as PPM, so the index cannot tell greymaps apart; "
           "format='pnm' (or 'ppm') finds every Netpbm file",
    "pbm": "every Netpbm file (PPM, PGM, PBM) is recorded as PPM, so the index cannot tell bitmaps apart; "
           "format='pnm' (or 'ppm') finds every Netpbm file",
}


def _indexable_format_names() -> dict[str, tuple[str, ...]]:
    """Every format zsindex can index, by the names users write, -> the names the index stores for it.

    Pillow's formats above; RAW files stored under their extension ("CR2"; "RAW" when only the content
    said so), with ``raw`` for all of them; JPEG XL as "JXL"; videos under their extension ("MP4").
    """
    from .media import JXL_SUFFIXES, RAW_SUFFIXES, VIDEO_SUFFIXES

    names = dict(FORMAT_NAMES)
    raws = sorted(x.lstrip(".").upper() for x in RAW_SUFFIXES)
    names.update({r.lower(): (r,) for r in raws})
    names["raw"] = (*raws, "RAW")
    names.update({x.lstrip("."): ("JXL",) for x in JXL_SUFFIXES})
    names.update({x.lstrip("."): (x.lstrip(".").upper(),) for x in VIDEO_SUFFIXES})
    for group in (("mpg", "mpeg"), ("m2ts", "mts"), ("3gp", "3g2")):
        for name in group:
            names[name] = tuple(g.upper() for g in group)
    return names


KNOWN_FORMATS = _indexable_format_names()
_GLOB_CHARS = re.compile(r"[*?\[]")


def format_clause(session: Session, wanted: str) -> ColumnElement[bool]:
    """Images of the format a user names: any format zsindex indexes, with aliases and in any case, else a
    name the index stores."""
    key = wanted.strip().lower().lstrip(".")
    names = KNOWN_FORMATS.get(key)
    if names is None:  # a format zsindex can index is known even when the index holds none (0 hits)
        stored = {f for f in session.scalars(select(s.Image.format).distinct()) if f}
        names = tuple(f for f in stored if f.lower() == key)
        if not names:
            known = known_list(sorted(set(KNOWN_FORMATS) | {f.lower() for f in stored}), near=key)
            if key in UNTOLD_FORMATS:
                raise UsageError(f"format={wanted!r} is not a format the index can filter by: "
                                 f"{UNTOLD_FORMATS[key]}; known: {known}")
            raise UsageError(f"unknown format {wanted!r} for format=; known: {known}")
    return func.upper(s.Image.format).in_(names)


def _squash(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", text.casefold())


def camera_names(make: str, model: str) -> set[str]:
    """The whole names (squashed) a camera answers to in --camera: make + model as shown, the model alone,
    the brand (the make's first word) + model, and the names users give some models (Sony's ILCE-6400 is
    the a6400). The make alone, or its first word, is the brand: it matches every model of that make."""
    make, model = make.strip(), model.strip()
    brand = make.split()[0] if make.split() else ""
    names = {f"{make} {model}", model, f"{brand} {model}", make, brand}
    sony = re.fullmatch(r"ilce-?(\w+)", model.lower())
    if sony:
        for alias in (f"a{sony.group(1)}", f"alpha {sony.group(1)}"):
            names |= {alias, f"{brand} {alias}", f"{make} {alias}"}
    return {_squash(n) for n in names} - {""}


def camera_matches(make: str | None, model: str | None, wanted: str) -> bool:
    """wanted is the camera's whole name (make + model, the model alone or the brand alone), ignoring case,
    spaces and punctuation; a glob (``*``, ``?``, ``[``) is matched, ignoring case, against "make model"
    and the model. "Canon PowerShot S40" is not the S400, "iPhone 6" not the "iPhone 6 Plus"."""
    import fnmatch

    make, model = make or "", model or ""
    if not (make or model):
        return False
    if _GLOB_CHARS.search(wanted):
        pattern = wanted.strip().casefold()
        shown = " ".join(x for x in (make.strip(), model.strip()) if x).casefold()
        return any(fnmatch.fnmatchcase(text, pattern) for text in (shown, model.strip().casefold()))
    key = _squash(wanted)
    return bool(key) and key in camera_names(make, model)


def _words(text: str) -> list[str]:
    return re.findall(r"[0-9a-z]+", text.casefold())


def camera_in_family(make: str | None, model: str | None, wanted: str) -> bool:
    """Every word of wanted is a whole word of "make model", in any order: "iPhone" is every iPhone, "EOS" every
    EOS, and "Canon IXUS 430" the "Canon" / "Canon DIGITAL IXUS 430" (words the user left out are no matter)."""
    words, name = _words(wanted), set(_words(f"{make or ''} {model or ''}"))
    return bool(words) and all(word in name for word in words)


def camera_clause(session: Session, wanted: str) -> ColumnElement[bool]:
    """The cameras wanted names: those whose whole name it is (camera_matches); when the index holds none,
    those whose names hold all its words (camera_in_family). So "iPhone 6" is that phone alone where the index
    has one, "iPhone" is every iPhone, and "Canon IXUS 430" finds the Canon DIGITAL IXUS 430. One function for
    every way in: search --camera, tag's filters, the server's /api/search camera= and its web page."""
    make, model = func.coalesce(s.Image.camera_make, ""), func.coalesce(s.Image.camera_model, "")
    cameras = [(a, b) for a, b in session.execute(select(make, model).distinct()) if a or b]
    pairs = [(a, b) for a, b in cameras if camera_matches(a, b, wanted)]
    if not pairs and not _GLOB_CHARS.search(wanted):
        pairs = [(a, b) for a, b in cameras if camera_in_family(a, b, wanted)]
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
    no wildcard names a file or a folder: everything under it matches too. A
    pattern with glob characters also matches as written, for names that hold
    them (a folder called ``a[1]``).
    """
    pattern = os.path.expanduser(pattern.strip())
    if not pattern:
        raise UsageError("path= needs a glob, e.g. '*/2023/*' or 'holidays/*.jpg'")
    anchors = sorted(set(anchors))
    globs = _globs(pattern, anchors, literal=False)
    if _GLOB_CHARS.search(pattern) and not pattern.startswith(("*", "?", "[")):
        globs += _globs(pattern, anchors, literal=True)
    # The index names files by their real paths: a folder named through a symbolic link means its real one
    globs += [real for g in globs if (real := _through_links(g)) is not None]
    return list(dict.fromkeys(globs))


def _through_links(glob: str) -> str | None:
    """The glob with its leading folders (up to the first wildcard) written as their real path, when they
    exist and a symbolic link is on their way; else None."""
    parts = glob.split(os.sep)
    fixed = 0
    while fixed < len(parts) and not _GLOB_CHARS.search(parts[fixed]):
        fixed += 1
    prefix = os.sep.join(parts[:fixed])
    if not prefix.startswith(os.sep) or not os.path.exists(prefix):
        return None
    real = os.path.realpath(prefix)
    if real == prefix.rstrip(os.sep) or real == prefix:
        return None
    return os.sep.join([_escape_glob(real), *parts[fixed:]])


def _globs(pattern: str, anchors: list[str], literal: bool) -> list[str]:
    text = _escape_glob(pattern) if literal else pattern
    if pattern.startswith((os.sep, "*", "?", "[")):
        globs = [text]
    else:
        globs = [_anchored(a, text) for a in anchors]
        if os.sep not in pattern.rstrip(os.sep):
            globs.append("*" + os.sep + text)
    if literal or not _GLOB_CHARS.search(pattern):  # a name: everything under it too
        globs += [g.rstrip(os.sep) + os.sep + "*" for g in globs]
    return globs


def path_clause(session: Session, pattern: str) -> ColumnElement[bool]:
    """The --path filter of every command (search, tag, sidecars write, keywords) as SQL."""
    globs = path_globs(pattern, {os.getcwd(), *ingest_roots(session)})
    column: Any = s.Image.path
    return or_(*(column.op("GLOB")(g) for g in globs))


def path_matcher(session: Session, pattern: str) -> Any:
    """The same --path filter for paths in Python: path -> bool."""
    import fnmatch

    globs = path_globs(pattern, {os.getcwd(), *ingest_roots(session)})
    return lambda path: any(fnmatch.fnmatchcase(path, g) for g in globs)


def count_path_matches(session: Session, pattern: str) -> int:
    """How many indexed images a --path pattern matches (0: the command warns)."""
    return session.scalar(select(func.count(s.Image.id)).where(
        s.Image.status == s.STATUS_INDEXED, path_clause(session, pattern))) or 0
