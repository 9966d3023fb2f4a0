"""Reading the keywords the user already gave their images, apart from zsindex's own tags.

Sources, per image: its XMP sidecar (IMG.JPG.xmp, else IMG.xmp), the XMP
packet embedded in the file (dc:subject, lr:hierarchicalSubject,
digiKam:TagsList) and IPTC Keywords. Entries zsindex wrote into a sidecar
(recorded by sidecars.py) and darktable's internal ``darktable|...`` entries
are not the user's and are left out. After each ingest, an image is read
again only when its content or its sidecar (path, size, mtime) changed, so a
sidecar edited in digiKam updates the image's keywords without re-embedding it.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select

from . import schema as s
from .errors import shown
from .sidecars import existing_sidecar, is_sidecar_of, recorded_entries
from .store import Store
from .xmp import MAX_SIDECAR_BYTES, XmpDoc, XmpError, keywords_of

IPTC_KEYWORDS = (2, 25)
IPTC_CHARSET = (1, 90)
UTF8_ESCAPE = b"\x1b%G"


def fold(keyword: str) -> str:
    return " ".join(keyword.casefold().split())


@dataclass
class Found:
    keywords: dict[str, str] = field(default_factory=dict)  # keyword -> source, first source wins
    errors: list[str] = field(default_factory=list)

    def add(self, words: Sequence[str], source: str) -> None:
        folded = {fold(k) for k in self.keywords}
        for word in words:
            if word and fold(word) not in folded:
                self.keywords[word] = source
                folded.add(fold(word))


def _iptc_text(value: bytes, utf8: bool) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1") if not utf8 else value.decode("utf-8", "replace")


def embedded_keywords(path: str) -> tuple[list[str], list[str], str | None]:
    """(XMP keywords, IPTC keywords, error) embedded in an image file; only its header is read."""
    from PIL import Image, IptcImagePlugin

    from .images import guarded

    try:  # only the header is read, no pixel memory is taken: no size limit, and no warning from Pillow's
        with guarded(math.inf), Image.open(path) as im:
            packet = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp") or (
                im.tag_v2.get(700) if hasattr(im, "tag_v2") else None)  # TIFF keeps it in tag 700
            iptc = IptcImagePlugin.getiptcinfo(im) or {}
    except Exception as e:  # any file Pillow cannot open has no keywords for us, and says why
        return [], [], f"cannot read embedded metadata: {e}"
    xmp_words: list[str] = []
    error = None
    if packet:
        try:
            data = packet.encode("utf-8") if isinstance(packet, str) else bytes(packet)
            xmp_words = keywords_of(XmpDoc.from_bytes(data.rstrip(b"\x00")))
        except XmpError as e:
            error = f"embedded XMP: {e}"
    raw = iptc.get(IPTC_KEYWORDS, [])
    utf8 = iptc.get(IPTC_CHARSET, b"") == UTF8_ESCAPE
    iptc_words = [_iptc_text(v, utf8).strip() for v in (raw if isinstance(raw, list) else [raw])]
    return xmp_words, [w for w in iptc_words if w], error


def sidecar_keywords(store: Store, sidecar: str) -> tuple[list[str], str | None]:
    """The user's keywords in a sidecar: all it lists less what zsindex wrote there."""
    via = ""
    if os.path.islink(sidecar):  # read through (reading changes nothing); a reason names the file it read
        via = f"(a symbolic link to {shown(os.readlink(sidecar))}) "
    try:
        fd = os.open(sidecar, os.O_RDONLY | os.O_NONBLOCK)  # a named pipe put there since is not waited on
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return [], f"{shown(sidecar)}: {via}not a regular file"
        with os.fdopen(fd, "rb") as f:
            if st.st_size > MAX_SIDECAR_BYTES:
                return [], f"{shown(sidecar)}: {via}larger than {MAX_SIDECAR_BYTES // (1024 * 1024)} MiB"
            doc = XmpDoc.from_bytes(f.read())
        return keywords_of(doc, skip=recorded_entries(store, sidecar)), None
    except OSError as e:
        return [], f"{shown(sidecar)}: {via}cannot read: {e.strerror or e}"
    except XmpError as e:
        return [], f"{shown(sidecar)}: {via}{e}"


@dataclass
class KeywordRefresh:
    images_read: int = 0
    sidecar_changes: int = 0  # images whose pixels were unchanged but whose sidecar changed
    errors: list[tuple[str, str]] = field(default_factory=list)
    unread_sidecars: list[tuple[str, str]] = field(default_factory=list)  # (sidecar, reason): keywords not read


def _signature(sha: str | None, sidecar: str | None) -> tuple[Any, ...]:
    if sidecar is None:
        return (sha, None, None, None)
    try:
        st = os.stat(sidecar)
    except OSError:
        return (sha, None, None, None)
    return (sha, sidecar, st.st_size, st.st_mtime_ns)


def _images(store: Store, roots: Sequence[str] | None,
            paths: set[str] | None) -> Iterator[tuple[int, str, str | None, Any]]:
    with store.session() as session:
        sources = {r.image_id: r for r in session.scalars(select(s.KeywordSource))}
        rows = session.execute(select(s.Image.id, s.Image.path, s.Image.sha256)
                               .where(s.Image.status == s.STATUS_INDEXED)).all()
    for image_id, path, sha in rows:
        if paths is not None and path not in paths:
            continue
        if roots is None or any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
            yield image_id, path, sha, sources.get(image_id)


def refresh(store: Store, roots: Sequence[str] | None = None, paths: set[str] | None = None) -> KeywordRefresh:
    """Re-read the keywords of every indexed image (under roots, or of paths) whose content or sidecar changed."""
    out = KeywordRefresh()
    listings: dict[str, dict[str, str]] = {}  # one listing per folder instead of stat calls per image
    for image_id, path, sha, src in _images(store, roots, paths):
        sidecar = existing_sidecar(path, listings=listings)
        sig = _signature(sha, sidecar)
        old = None if src is None else (src.image_sha256, src.sidecar_path, src.sidecar_size, src.sidecar_mtime_ns)
        if sig == old:
            continue
        same_pixels = src is not None and src.image_sha256 == sha
        if same_pixels and (src.sidecar_path is None or is_sidecar_of(src.sidecar_path, path)):
            out.sidecar_changes += 1
        _read_one(store, image_id, path, sig, same_pixels, out)
    return out


def _read_one(store: Store, image_id: int, path: str, sig: tuple[Any, ...], same_pixels: bool,
              out: KeywordRefresh) -> None:
    found = Found()
    errors: list[str] = []
    if sig[1] is not None:
        words, error = sidecar_keywords(store, sig[1])
        found.add(words, "sidecar")
        errors += [error] if error else []
        if error:
            out.unread_sidecars.append((sig[1], error.removeprefix(f"{sig[1]}: ")))
    with store.session() as session:
        if same_pixels:  # the file's own keywords did not change: keep them as read before
            kept = session.execute(select(s.Keyword.keyword, s.Keyword.source).where(
                s.Keyword.image_id == image_id, s.Keyword.source != "sidecar")).all()
            for word, source in kept:
                found.add([word], source)
    if not same_pixels:
        xmp_words, iptc_words, error = embedded_keywords(path)
        found.add(xmp_words, "xmp")
        found.add(iptc_words, "iptc")
        errors += [error] if error else []
    with store.session() as session:
        session.execute(delete(s.Keyword).where(s.Keyword.image_id == image_id))
        session.add_all(s.Keyword(image_id=image_id, keyword=k, folded=fold(k), source=src)
                        for k, src in found.keywords.items())
        session.merge(s.KeywordSource(image_id=image_id, image_sha256=sig[0], sidecar_path=sig[1],
                                      sidecar_size=sig[2], sidecar_mtime_ns=sig[3],
                                      error="; ".join(errors) or None))
    out.images_read += 1
    out.errors += [(path, e) for e in errors]


def counts(store: Store, path_glob: str | None = None) -> dict[str, int]:
    """Keyword -> number of indexed images carrying it (case-insensitive), most frequent first."""
    query = (select(func.min(s.Keyword.keyword), func.count(func.distinct(s.Keyword.image_id)))
             .join(s.Image, s.Image.id == s.Keyword.image_id).where(s.Image.status == s.STATUS_INDEXED)
             .group_by(s.Keyword.folded).order_by(func.count(func.distinct(s.Keyword.image_id)).desc(),
                                                  s.Keyword.folded))
    with store.session() as session:
        if path_glob:
            from .filters import path_clause

            query = query.where(path_clause(session, path_glob))  # read as search --path reads it
        return {k: n for k, n in session.execute(query)}


def keyword_ids_query(keyword: str) -> Any:
    """SELECT image_id of images carrying a keyword (case-insensitive): for search filters."""
    return select(s.Keyword.image_id).where(s.Keyword.folded == fold(keyword))


def image_keywords(store: Store, paths: set[str] | None = None) -> dict[str, list[str]]:
    """Path -> the user's keywords, for every indexed image that has any (or only those paths)."""
    query = (select(s.Image.path, s.Keyword.keyword).join(s.Keyword, s.Keyword.image_id == s.Image.id)
             .where(s.Image.status == s.STATUS_INDEXED).order_by(s.Image.path, s.Keyword.id))
    out: dict[str, list[str]] = {}
    with store.session() as session:
        for path, word in session.execute(query):
            if paths is None or path in paths:
                out.setdefault(path, []).append(word)
    return out


def count_sidecar_changes(store: Store, report: Any, n: int) -> None:
    """Move n images from the run's unchanged count to its changed count (their sidecars changed)."""
    n = min(n, report.unchanged)
    report.unchanged -= n
    report.changed += n
    with store.session() as session:
        run = session.get(s.IngestRun, report.run_id)
        if run is not None:
            run.unchanged, run.changed = report.unchanged, report.changed
