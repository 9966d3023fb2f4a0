"""One `sidecars write` or `sidecars remove` run: which sidecars, and bringing each in line.

For each sidecar the wanted keywords of the label sets in scope are compared
with the record of what zsindex wrote before (see sidecars.py) and with the
file as it is now; only zsindex's own entries of those sets are added or
taken out. A file that cannot be read as XMP, is too large or lies in a
read-only folder is skipped with the reason and left untouched.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from . import schema as s
from .safewrite import NOFOLLOW
from .sidecars import (
    DECLINED,
    WRITTEN,
    Entry,
    Record,
    SidecarReport,
    atomic_write,
    existing_sidecar,
    keyword_entries,
    load_record,
    read_only_reason,
    records_with_sets,
    save_record,
    sha256,
    sidecar_key,
    sidecar_names,
    temp_name,
)
from .store import Store
from .xmp import MAX_SIDECAR_BYTES, XmpDoc, XmpError

Progress = Callable[[str, int, int], None]


@dataclass
class Target:
    """One sidecar file and what zsindex wants in it (images sharing a base name share one)."""

    path: str
    images: list[str]
    wanted: set[Entry] = field(default_factory=set)


def plan_targets(store: Store, scope: list[str], wanted: dict[str, set[Entry]], naming: str,
                 path_glob: str | None) -> list[Target]:
    """Group images into sidecars: an existing file of either naming, else the one recorded, else a new one."""
    from .filters import path_matcher

    with store.session() as session:
        recorded = records_with_sets(session, scope)
        known = {sidecar_key(p): p for p in session.scalars(select(s.Sidecar.path))}
        chosen = path_matcher(session, path_glob) if path_glob is not None else (lambda _path: True)
    images = dict.fromkeys(wanted)
    for _side, image in recorded:
        if chosen(image):
            images.setdefault(image, None)
    targets: dict[str, Target] = {}
    listings: dict[str, dict[str, str]] = {}
    for image in images:
        names = sidecar_names(image, naming)
        path = existing_sidecar(image, naming, listings) or next(
            (known[sidecar_key(p)] for p in names if sidecar_key(p) in known), names[0])
        target = targets.setdefault(path, Target(path, []))
        target.images.append(image)
        target.wanted |= wanted.get(image, set())
    for side, image in recorded:  # zsindex's entries in a sidecar no longer chosen (the other naming) go
        if side not in targets and chosen(image):
            targets[side] = Target(side, [image])
    return sorted(targets.values(), key=lambda t: t.path)


def _read(path: str) -> tuple[bytes | None, str | None]:
    """The file's bytes (None when absent), or a reason it cannot be used."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | NOFOLLOW)  # a named pipe is not waited on
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            what = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file (a named pipe, a device)"
            return None, f"{what}, not a sidecar file, left untouched"
        with os.fdopen(fd, "rb") as f:
            if st.st_size > MAX_SIDECAR_BYTES:
                return None, f"larger than {MAX_SIDECAR_BYTES // (1024 * 1024)} MiB, left untouched"
            return f.read(), None
    except FileNotFoundError:
        return None, None
    except OSError as e:
        return None, f"cannot read: {e.strerror or e}"


def _reconcile(doc: XmpDoc, rec: Record, scope: set[str], wanted: set[Entry], edited: bool) -> tuple[list, list]:
    """Edit doc and rec.entries in place; returns the (property, value) pairs added and removed."""
    present = {prop: set(doc.items(prop)) for prop in {e[1] for e in list(rec.entries) + list(wanted)}}
    if edited:  # the user changed the file since: an entry of ours that is gone was taken out by hand
        for key, state in list(rec.entries.items()):
            if key[0] in scope and state == WRITTEN and key[2] not in present.get(key[1], ()):
                rec.entries[key] = DECLINED
    ours = {(k[1], k[2]) for k, st in rec.entries.items() if st == WRITTEN}
    added: list[tuple[str, str]] = []
    for key in sorted(wanted - set(rec.entries)):
        pair = (key[1], key[2])
        if key[2] in present[key[1]]:
            if pair in ours:  # another of zsindex's sets put it there: shared
                rec.entries[key] = WRITTEN
            continue  # otherwise it is the user's keyword of the same name: not ours to record
        doc.add(*pair)
        present[key[1]].add(key[2])
        ours.add(pair)
        rec.entries[key] = WRITTEN
        added.append(pair)
    removed: list[tuple[str, str]] = []
    for key in sorted(k for k in rec.entries if k[0] in scope and k not in wanted):
        state = rec.entries.pop(key)
        pair = (key[1], key[2])
        still_ours = any((k[1], k[2]) == pair and st == WRITTEN for k, st in rec.entries.items())
        if state == WRITTEN and not still_ours and doc.remove(*pair):
            removed.append(pair)
    return added, removed


def _detail(target: Target, action: str, reason: str | None = None, added: Iterable = (),
            removed: Iterable = ()) -> dict[str, Any]:
    return {"sidecar": target.path, "images": target.images, "action": action, "reason": reason,
            "added": [list(p) for p in added], "removed": [list(p) for p in removed]}


def sync_one(store: Store, target: Target, scope: set[str], dry_run: bool) -> dict[str, Any]:
    """Bring one sidecar in line with what zsindex wants in it; never raises for a bad file."""
    tmp = temp_name(target.path)
    if not dry_run and os.path.lexists(tmp):
        os.unlink(tmp)  # left by a run that was killed mid-write; the sidecar itself is whole
    if os.path.islink(target.path):  # never read as the sidecar, whatever it points to: writes never go through it
        return _detail(target, "skipped", f"{read_only_reason(target.path, True)}, left untouched")
    data, problem = _read(target.path)
    if problem:
        return _detail(target, "skipped", problem)
    current = None if data is None else sha256(data)
    try:
        doc = XmpDoc() if data is None else XmpDoc.from_bytes(data)
    except XmpError as e:
        return _detail(target, "skipped", f"unparseable sidecar left untouched: {e}")
    with store.session() as session:
        rec = load_record(session, target.path, target.images[0], current, resolve=not dry_run)
    if data is None and rec.known:  # the user deleted the sidecar: start afresh
        rec.entries, rec.created = {}, True
    rec.created = rec.created or data is None
    before = dict(rec.entries)
    edited = rec.known and rec.sha256 != current
    try:
        added, removed = _reconcile(doc, rec, scope, target.wanted, edited)
    except XmpError as e:  # e.g. a dc:subject that is a single text, not a list
        return _detail(target, "skipped", f"cannot edit, left untouched: {e}")
    if not added and not removed:
        if rec.entries != before and not dry_run:
            with store.session() as session:
                save_record(session, rec)
        return _detail(target, "unchanged")
    delete = rec.created and doc.is_empty()
    action = "deleted" if delete else "created" if data is None else "updated"
    if data is None and delete:
        return _detail(target, "unchanged")
    reason = read_only_reason(target.path, data is not None)
    if reason:
        return _detail(target, "skipped", reason + ", left untouched")
    if not dry_run:
        _commit(store, rec, target.path, None if delete else doc.to_bytes())
    return _detail(target, action, None, added, removed)


def _commit(store: Store, rec: Record, path: str, new: bytes | None) -> None:
    """Record as pending, replace (or delete) the file, then make the record current."""
    rec.sha256 = None if new is None else sha256(new)
    with store.session() as session:
        save_record(session, rec, pending=True)
    if new is None:
        os.unlink(path)
        rec.entries = {}
    else:
        atomic_write(path, new)
    with store.session() as session:
        save_record(session, rec)


def run_sync(store: Store, scope: list[str], wanted: dict[str, set[Entry]], naming: str, path_glob: str | None,
             dry_run: bool, progress: Progress | None = None) -> SidecarReport:
    started = time.perf_counter()
    report = SidecarReport(dry_run=dry_run)
    targets = plan_targets(store, scope, wanted, naming, path_glob)
    progress = progress or (lambda _stage, _done, _total: None)
    for n, target in enumerate(targets, start=1):
        try:
            detail = sync_one(store, target, set(scope), dry_run)
        except OSError as e:  # a file system problem with this one sidecar never stops the run
            detail = _detail(target, "skipped", f"cannot write: {e.strerror or e}")
        report.count(detail)
        progress("sidecars", n, len(targets))
    report.seconds = time.perf_counter() - started
    return report


def wanted_entries(store: Store, set_name: str, set_id: int, prefix: str | None, min_score: float | None,
                   path_glob: str | None) -> dict[str, set[Entry]]:
    """Image path -> the sidecar entries its current tags in this set call for."""
    query = (select(s.Image.path, s.LabelRow.name)
             .join(s.Tag, s.Tag.image_id == s.Image.id).join(s.LabelRow, s.LabelRow.id == s.Tag.label_id)
             .where(s.LabelRow.set_id == set_id, s.Image.status == s.STATUS_INDEXED))
    if min_score is not None:
        query = query.where(s.Tag.score >= min_score)
    out: dict[str, set[Entry]] = {}
    with store.session() as session:
        if path_glob:
            from .filters import path_clause

            query = query.where(path_clause(session, path_glob))  # read as search --path reads it
        for path, label in session.execute(query):
            out.setdefault(path, set()).update(keyword_entries(set_name, label, prefix))
    return out
