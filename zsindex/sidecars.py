"""Writing zsindex's tags into XMP sidecars, reversibly.

Tagging decides; this part only copies the decisions into the files photo
programs read, and records in SQL exactly which keywords it added to which
sidecar (a keyword that was already there is the user's and is never
recorded), with the file's hash after each write. A later run compares that
record with the file: zsindex's stale keywords go, a keyword the user took out
by hand is not put back, everything else in the file is left as it was.

Crash safety: the next record is stored as ``pending`` before the file is
replaced (temporary file in the same folder, fsync, rename, fsync of the
folder) and made current after. A run that finds a pending record keeps it if
the file's hash is the pending one (the rename happened) and drops it if not.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import schema as s
from .errors import UsageError
from .safewrite import create_new
from .store import Store, now
from .xmp import HIERARCHICAL, SUBJECT, TAGSLIST

NAMINGS = ("ext", "base")
WRITTEN, DECLINED = "written", "declined"
Entry = tuple[str, str, str]  # (label set, property, value)
REPORT_KEYS = ("created", "updated", "unchanged", "deleted", "skipped")


@dataclass
class SidecarReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: int = 0
    dry_run: bool = False
    seconds: float = 0.0
    sidecars: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None  # what the caller should be told (a set with no tags yet)

    @property
    def skipped_files(self) -> list[tuple[str, str]]:
        return [(d["sidecar"], d["reason"]) for d in self.sidecars if d["action"] == "skipped"]

    def count(self, detail: dict[str, Any]) -> None:
        setattr(self, detail["action"], getattr(self, detail["action"]) + 1)
        self.sidecars.append(detail)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in REPORT_KEYS}
        out.update(dry_run=self.dry_run, seconds=round(self.seconds, 3), sidecars=self.sidecars)
        if self.note:
            out["note"] = self.note
        return out


# -- names --------------------------------------------------------------------------------------------
def sidecar_names(image_path: str, naming: str = "ext") -> list[str]:
    """The two namings of an image's sidecar, the preferred first: IMG.JPG.xmp or IMG.xmp."""
    if naming not in NAMINGS:
        raise UsageError(f"naming= must be one of {', '.join(NAMINGS)}, not {naming!r}")
    ext, base = image_path + ".xmp", os.path.splitext(image_path)[0] + ".xmp"
    return [ext, base] if naming == "ext" else [base, ext]


def sidecar_key(path: str) -> tuple[str, str]:
    """What names one sidecar whatever the case of its file name (IMG.JPG.XMP is IMG.jpg's sidecar, as photo
    programs on Windows and macOS see it); the folder is compared as it is."""
    return os.path.dirname(path), os.path.basename(path).casefold()


def is_sidecar_of(sidecar: str, image_path: str) -> bool:
    return sidecar_key(sidecar) in {sidecar_key(p) for p in sidecar_names(image_path)}


def existing_sidecar(image_path: str, naming: str = "ext",
                     listings: dict[str, dict[str, str]] | None = None) -> str | None:
    """The image's sidecar on disk, in either naming (the preferred first), its name matched without regard to
    case (an exact match first). ``listings`` keeps one listing per folder for a caller that looks up many."""
    folder = os.path.dirname(image_path)
    listings = {} if listings is None else listings
    if folder not in listings:
        found: dict[str, str] = {}
        try:
            for name in sorted(os.listdir(folder or ".")):
                if name[-4:].lower() == ".xmp":
                    found.setdefault(name, name)
                    found.setdefault(name.casefold(), name)
        except OSError:
            pass
        listings[folder] = found
    names = listings[folder]
    for candidate in sidecar_names(image_path, naming):
        base = os.path.basename(candidate)
        hit = names.get(base) or names.get(base.casefold())
        if hit is not None and os.path.isfile(os.path.join(folder, hit)):
            return os.path.join(folder, hit)
    return None


def follow_move(session: Session, old_image: str, new_image: str) -> int:
    """An image moved or renamed (ingest found its content under a new path): the records of its sidecars
    follow it where the sidecar moved with it, unchanged since zsindex wrote it (its hash is the one recorded),
    so that zsindex's keywords there stay zsindex's, never the user's, and `remove` still takes them out. A
    sidecar left behind, or changed on the way, keeps its record. Returns how many records moved."""
    moved = 0
    for rec in session.scalars(select(s.Sidecar).where(s.Sidecar.image_path == old_image)).all():
        new_side = existing_sidecar(new_image)
        if os.path.lexists(rec.path) and (new_side is None or os.path.realpath(rec.path) != new_side):
            continue  # left behind (still at its old name, and not the new sidecar by another name: a link)
        if new_side is None or rec.sha256 is None or session.scalar(
                select(s.Sidecar.id).where(s.Sidecar.path == new_side)) is not None:
            continue
        try:
            with open(new_side, "rb") as f:
                same = sha256(f.read()) == rec.sha256
        except OSError:
            continue
        if same:
            rec.path, rec.image_path = new_side, new_image
            moved += 1
    return moved


def keyword_entries(set_name: str, label: str, prefix: str | None) -> list[Entry]:
    """What one tag becomes: a flat keyword, a Lightroom path and a digiKam path. The prefix is a path of its
    own: ``a|b`` or ``a/b`` is two levels in both programs (in set and label names, each program's separator
    is written as the other's, so that a name stays one level)."""
    levels = [p.strip() for p in prefix.replace("/", "|").split("|")] if prefix else []
    parts = [p for p in levels if p] + [set_name, label]
    return [(set_name, SUBJECT, label),
            (set_name, HIERARCHICAL, "|".join(p.replace("|", "/") for p in parts)),
            (set_name, TAGSLIST, "/".join(p.replace("/", "|") for p in parts))]


# -- files --------------------------------------------------------------------------------------------
def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def temp_name(path: str) -> str:
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.zsindex-tmp")


def atomic_write(path: str, data: bytes) -> None:
    """Temporary file in the same folder, fsync, rename over the target, fsync the folder."""
    tmp = temp_name(path)
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    fd = create_new(tmp, mode)  # a stale temp file, or a link planted at its name, is removed: never written through
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    _fsync_folder(path)


def _fsync_folder(path: str) -> None:
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_only_reason(path: str, exists: bool) -> str | None:
    """Why a sidecar may not be written: the folder (or the file) is read-only, or it is a symbolic link.

    Mode bits are checked as well as access(), so a folder the user made
    read-only is respected even by a process running as root. A sidecar is
    replaced by a new file (written beside it, then renamed over it), which
    would turn a link into a plain file and leave its target without the
    tags: a link is the user's arrangement, left as it is.
    """
    if os.path.islink(path):
        return "symbolic link (zsindex would replace the link with a file)"
    folder = os.path.dirname(path) or "."
    st = os.stat(folder)
    if not os.access(folder, os.W_OK) or not st.st_mode & 0o222:
        return "read-only folder"
    if exists and (not os.access(path, os.W_OK) or not os.stat(path).st_mode & 0o222):
        return "read-only sidecar"
    return None


# -- records ------------------------------------------------------------------------------------------
def _load_entries(text: str | None) -> dict[Entry, str]:
    return {(e[0], e[1], e[2]): e[3] for e in json.loads(text or "[]")}


def _dump_entries(entries: dict[Entry, str]) -> str:
    return json.dumps([[*k, v] for k, v in sorted(entries.items())], ensure_ascii=False)


@dataclass
class Record:
    """The SQL row of one sidecar, with pending work resolved against the file on disk."""

    path: str
    image_path: str
    created: bool = False
    sha256: str | None = None
    entries: dict[Entry, str] = field(default_factory=dict)
    known: bool = False  # a row exists in SQL


def load_record(session: Session, path: str, image_path: str, current_hash: str | None, resolve: bool) -> Record:
    row = session.scalar(select(s.Sidecar).where(s.Sidecar.path == path))
    if row is None:
        return Record(path, image_path)
    rec = Record(path, row.image_path, row.created, row.sha256, _load_entries(row.entries), known=True)
    if row.pending:
        pending = json.loads(row.pending)
        if pending["sha256"] == current_hash:  # the interrupted write did reach the disk
            rec.created, rec.sha256 = pending["created"], pending["sha256"]
            rec.entries = _load_entries(json.dumps(pending["entries"]))
        if resolve:  # a dry run resolves it the same way, but only here, so it reports what a real run does
            row.pending = None
            save_record(session, rec)
    return rec


def save_record(session: Session, rec: Record, pending: bool = False) -> None:
    row = session.scalar(select(s.Sidecar).where(s.Sidecar.path == rec.path))
    if not rec.entries and not pending:
        if row is not None:
            session.delete(row)
        return
    if row is None:
        row = s.Sidecar(path=rec.path, image_path=rec.image_path, created=rec.created, entries="[]")
        session.add(row)
    payload = {"created": rec.created, "sha256": rec.sha256,
               "entries": [[*k, v] for k, v in sorted(rec.entries.items())]}
    if pending:
        row.pending = json.dumps(payload, ensure_ascii=False)
    else:
        row.created, row.sha256, row.entries, row.pending = rec.created, rec.sha256, _dump_entries(rec.entries), None
        row.image_path = rec.image_path
    row.updated_at = now()


def recorded_entries(store: Store, path: str) -> set[tuple[str, str]]:
    """(property, value) pairs zsindex wrote into a sidecar and that are still its own."""
    with store.session() as session:
        row = session.scalar(select(s.Sidecar).where(s.Sidecar.path == path))
    if row is None:
        return set()
    return {(p, v) for (_set, p, v), state in _load_entries(row.entries).items() if state == WRITTEN}


def records_with_sets(session: Session, sets: Iterable[str] | None) -> list[tuple[str, str]]:
    """(sidecar path, image path) of every recorded sidecar holding entries of these sets (None: any)."""
    wanted = None if sets is None else set(sets)
    out = []
    for row in session.scalars(select(s.Sidecar)):
        if wanted is None or _sets_of(row) & wanted:
            out.append((row.path, row.image_path))
    return out


def _sets_of(row: s.Sidecar) -> set[str]:
    names = {e[0] for e in _load_entries(row.entries)}
    if row.pending:
        names |= {e[0] for e in json.loads(row.pending)["entries"]}
    return names


def recorded_sets(session: Session) -> set[str]:
    """Every label set with entries (or pending entries) in some sidecar."""
    out: set[str] = set()
    for row in session.scalars(select(s.Sidecar)):
        out |= _sets_of(row)
    return out
