"""Read-side queries for browsing an index: one image, facets, images of a label, label-set overviews.

These serve the HTTP service (and any Python caller) through the library facade;
they only read, except ``put_set``, which creates or replaces a label set.
Paths are shown relative to the ingest root that holds them, so that a client
never needs (or learns) where the library lives on the server.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from . import schema as s
from .errors import NotFoundError, known_list
from .labels import Label, check_templates
from .store import now
from .tagging import add_set, edit_set, get_set, set_exists, set_names, set_templates


def recorded_roots(session: Session) -> list[str]:
    """Every root an ingest run was given, most recent first, without repeats."""
    out: dict[str, None] = {}
    query = select(s.IngestRun.roots).group_by(s.IngestRun.roots).order_by(func.max(s.IngestRun.id).desc())
    for raw in session.scalars(query):
        try:
            for root in json.loads(raw):
                out.setdefault(str(root), None)
        except (TypeError, ValueError):
            continue
    return list(out)


def relative_path(path: str, roots: Sequence[str]) -> str:
    """The path below the deepest root holding it (a root that is a file gives its name)."""
    best = ""
    for root in roots:
        base = root.rstrip(os.sep)
        if (path == root or path.startswith(base + os.sep)) and len(base) > len(best):
            best = base
    if not best or path == best:
        return os.path.basename(path)
    return path[len(best) + 1:]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _camera(make: str | None, model: str | None) -> str | None:
    return " ".join(x for x in (make, model) if x) or None


def describe(session: Session, ids: Sequence[int], roots: Sequence[str]) -> dict[int, dict[str, Any]]:
    """Metadata of indexed images by id (ids not indexed are left out)."""
    out: dict[int, dict[str, Any]] = {}
    wanted = list(dict.fromkeys(int(i) for i in ids))
    for start in range(0, len(wanted), 500):
        rows = session.execute(select(s.Image).where(s.Image.id.in_(wanted[start:start + 500]),
                                                     s.Image.status == s.STATUS_INDEXED)).scalars()
        for r in rows:
            out[r.id] = {"id": r.id, "path": relative_path(r.path, roots), "width": r.width, "height": r.height,
                         "taken": _iso(r.taken_at), "format": r.format,
                         "camera": _camera(r.camera_make, r.camera_model), "size": r.size}
    return out


def indexed_image(session: Session, image_id: int) -> s.Image:
    row = session.get(s.Image, image_id)
    if row is None or row.status != s.STATUS_INDEXED:
        raise NotFoundError(f"no indexed image with id {image_id}")
    return row


def image_tags(session: Session, image_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(s.LabelSetRow.name, s.LabelRow.name, s.Tag.score)
        .join(s.LabelRow, s.LabelRow.id == s.Tag.label_id).join(s.LabelSetRow, s.LabelSetRow.id == s.LabelRow.set_id)
        .where(s.Tag.image_id == image_id).order_by(s.Tag.score.desc(), s.LabelRow.name))
    return [{"set": a, "label": b, "score": round(float(c), 6)} for a, b, c in rows]


def _indexed_ids() -> Any:
    return select(s.Image.id).where(s.Image.status == s.STATUS_INDEXED)


def facets(session: Session) -> dict[str, list[dict[str, Any]]]:
    """Counts over indexed images: tags per (set, label), cameras, formats; biggest first."""
    tag_rows = session.execute(
        select(s.LabelSetRow.name, s.LabelRow.name, func.count(s.Tag.id))
        .join(s.LabelRow, s.LabelRow.id == s.Tag.label_id).join(s.LabelSetRow, s.LabelSetRow.id == s.LabelRow.set_id)
        .where(s.Tag.image_id.in_(_indexed_ids()))
        # Every selected column grouped by: PostgreSQL refuses a column of a joined table otherwise.
        .group_by(s.LabelSetRow.id, s.LabelSetRow.name, s.LabelRow.id, s.LabelRow.name)
        .order_by(func.count(s.Tag.id).desc(), s.LabelSetRow.name, s.LabelRow.name))
    camera = func.trim(func.coalesce(s.Image.camera_make, "") + " " + func.coalesce(s.Image.camera_model, ""))
    cam_rows = session.execute(
        select(camera, func.count()).where(s.Image.status == s.STATUS_INDEXED, camera != "")
        .group_by(camera).order_by(func.count().desc(), camera))
    fmt_rows = session.execute(
        select(s.Image.format, func.count()).where(s.Image.status == s.STATUS_INDEXED, s.Image.format.is_not(None))
        .group_by(s.Image.format).order_by(func.count().desc(), s.Image.format))
    return {"tags": [{"set": a, "label": b, "count": n} for a, b, n in tag_rows],
            "cameras": [{"value": v, "count": n} for v, n in cam_rows],
            "formats": [{"value": v, "count": n} for v, n in fmt_rows]}


def require_set(session: Session, name: str) -> tuple[s.LabelSetRow, list[s.LabelRow]]:
    if not set_exists(session, name):
        known = known_list(map(repr, set_names(session)), near=repr(name))
        raise NotFoundError(f"no label set named {name!r} (known: {known})")
    return get_set(session, name)


def label_images(session: Session, name: str, label: str | None, k: int, offset: int) -> list[tuple[int, float]]:
    """(image id, tag score) of indexed images tagged by the set (or one of its labels), best first."""
    row, labels = require_set(session, name)
    label_ids = [r.id for r in labels if label is None or r.name.casefold() == label.casefold()]
    if label is not None and not label_ids:
        raise NotFoundError(f"label set {name!r} has no label {label!r}")
    best = func.max(s.Tag.score)
    query = (select(s.Tag.image_id, best).where(s.Tag.label_id.in_(label_ids), s.Tag.image_id.in_(_indexed_ids()))
             .group_by(s.Tag.image_id).order_by(best.desc(), s.Tag.image_id).offset(offset).limit(k))
    return [(int(i), float(sc)) for i, sc in session.execute(query)]


def set_overview(session: Session, row: s.LabelSetRow, labels: list[s.LabelRow]) -> dict[str, Any]:
    tagged = session.scalar(select(func.count(distinct(s.Tag.image_id))).where(
        s.Tag.label_id.in_([r.id for r in labels]), s.Tag.image_id.in_(_indexed_ids())))
    return {"name": row.name, "version": row.version, "labels": [r.name for r in labels],
            "templates": list(set_templates(row)), "auto": bool(row.auto), "tagged": int(tagged or 0)}


def overviews(session: Session) -> list[dict[str, Any]]:
    names = list(session.scalars(select(s.LabelSetRow.name).order_by(s.LabelSetRow.name)))
    return [set_overview(session, *get_set(session, n)) for n in names]


def put_set(session: Session, name: str, labels: Sequence[Label], templates: Sequence[str] | None,
            auto: bool | None) -> bool:
    """Create the set, or make an existing one hold exactly these labels; True when created.

    Labels kept keep their tags; only a real change bumps the version.
    """
    created = not set_exists(session, name)
    if created:
        row = add_set(session, name, labels, templates or ())
    else:
        row, current = get_set(session, name)
        wanted = {lab.name.casefold() for lab in labels}
        have = {r.name.casefold() for r in current}
        add = [lab for lab in labels if lab.name.casefold() not in have]
        drop = [r.name for r in current if r.name.casefold() not in wanted]
        if add or drop:
            row = edit_set(session, name, add, drop)
        if templates is not None:
            stored = json.dumps(list(check_templates(templates))) if templates else None
            if stored != row.templates:
                row.templates = stored
                row.version += 1
                row.updated_at = now()
    if auto is not None:
        row.auto = bool(auto)
    return created


def set_auto(session: Session, name: str, auto: bool) -> None:
    row, _ = require_set(session, name)
    row.auto = bool(auto)


def auto_sets(session: Session) -> list[str]:
    return list(session.scalars(select(s.LabelSetRow.name).where(s.LabelSetRow.auto.is_(True))
                                .order_by(s.LabelSetRow.name)))


def set_mode(session: Session, name: str) -> str:
    """The mode the set's current tags were made in ('single' when it has none)."""
    _, labels = require_set(session, name)
    mode = session.scalar(select(s.Tag.mode).where(s.Tag.label_id.in_([r.id for r in labels])).limit(1))
    return mode or "single"


def runs(session: Session, limit: int = 10) -> list[dict[str, Any]]:
    rows = session.scalars(select(s.IngestRun).order_by(s.IngestRun.id.desc()).limit(limit))
    return [{"id": r.id, "status": r.status, "started_at": _iso(r.started_at), "finished_at": _iso(r.finished_at),
             **{k: getattr(r, k) for k in ("added", "unchanged", "changed", "moved", "deleted", "skipped")}}
            for r in rows]
