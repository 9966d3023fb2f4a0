"""Search over the vector index: query composition, SQL filters, exact filtered top-k, paging."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import schema as s
from .errors import UsageError, check_path
from .hits import Hit, compose, top_k  # noqa: F401 - the search API, importable from here


@dataclass(frozen=True)
class Filters:
    """Metadata filters; None means 'any'. Dates compare EXIF date taken, else file time."""

    path: str | None = None  # glob: absolute, or relative to the current folder or an ingested root
    after: datetime | None = None
    before: datetime | None = None
    camera: str | None = None  # a whole camera name, a brand or a glob (see filters.camera_matches)
    format: str | None = None
    tag: str | None = None  # a label the image is tagged with: LABEL (any set) or SET:LABEL
    tag_set: str | None = None  # the label set of tag
    keyword: str | None = None  # a keyword the user gave the image (sidecar, embedded XMP, IPTC)

    def __post_init__(self) -> None:
        """Each filter checked as the CLI checks it: dates as ISO text, date or datetime; the rest text."""
        for name in ("after", "before"):
            object.__setattr__(self, name, as_datetime(getattr(self, name), name))
        for name in ("path", "camera", "format", "tag", "tag_set", "keyword"):
            value = getattr(self, name)
            if name == "path" and isinstance(value, os.PathLike):
                value = os.fspath(value)
                object.__setattr__(self, name, value)
            if value is not None and not isinstance(value, str):
                raise UsageError(f"{name}= takes text, not {type(value).__name__} {value!r}")
            if name != "path" and value is not None and not value.strip():  # never "no filter" by accident
                raise UsageError(f"{name}= is empty; give a value, or leave the filter out to keep every image")
        check_path(self.path, "path", glob=True)

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.path, self.after, self.before, self.camera, self.format, self.tag,
                                                  self.keyword))


FILTER_NAMES = tuple(f.name for f in fields(Filters))


def make_filters(filters: "Filters | None", filter_args: dict[str, Any]) -> Filters:
    """The filters of a library call: a Filters, or keyword arguments naming them (an unknown name is refused)."""
    if filters is not None:
        if not isinstance(filters, Filters):
            raise UsageError(f"filters= takes a zsindex.search.Filters, not {type(filters).__name__}")
        if filter_args:
            raise UsageError(f"give filters= or {', '.join(f'{k}=' for k in filter_args)}, not both")
        return filters
    unknown = [k for k in filter_args if k not in FILTER_NAMES]
    if unknown:
        raise UsageError(f"unknown filter {', '.join(f'{k}=' for k in unknown)}; the filters are "
                         f"{', '.join(f'{k}=' for k in FILTER_NAMES)}")
    return Filters(**filter_args)


def check_int(value: Any, name: str, minimum: int) -> int:
    """An integer parameter (k=, offset=): an int (not a bool) of at least minimum."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise UsageError(f"{name}= takes a whole number, not {type(value).__name__} {value!r}")
    if value < minimum:
        raise UsageError(f"{name}= must be at least {minimum}, not {value}")
    return int(value)


def check_number(value: Any, name: str) -> float | None:
    """A real-number parameter (min_score=, not_weight=, threshold=): int or float, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or value != value:
        raise UsageError(f"{name}= takes a number, not {type(value).__name__} {value!r}")
    return float(value)


def as_datetime(value: Any, name: str) -> datetime | None:
    """after=/before= as the CLI takes them (ISO text: 2024-06-30, 2024-06-30T18:00), or a date or datetime."""
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        return parse_date(value, name)
    raise UsageError(f"{name}= takes a date like 2024-06-30 (text, date or datetime), not {type(value).__name__} "
                     f"{value!r}")


def parse_date(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{name}= takes a date like 2024-06-30 or 2024-06-30T18:00, not {text!r}") from None


def _taken() -> Any:
    return func.coalesce(s.Image.taken_at, func.datetime(s.Image.mtime_ns / 1_000_000_000, "unixepoch"))


def filter_ids(session: Session, filters: Filters) -> np.ndarray:
    """Ids of indexed images that pass the filters, read as a user means them (see filters.py)."""
    return np.fromiter(session.scalars(filter_query(session, filters)), dtype=np.int64)


def filter_query(session: Session, filters: Filters) -> Any:
    """SELECT of the ids of indexed images that pass the filters: for counts over them, as a subquery."""
    from .filters import camera_clause, format_clause, path_clause

    query = select(s.Image.id).where(s.Image.status == s.STATUS_INDEXED)
    if filters.path is not None:
        query = query.where(path_clause(session, filters.path))
    if filters.after:
        query = query.where(_taken() >= filters.after.strftime("%Y-%m-%d %H:%M:%S"))
    if filters.before:
        query = query.where(_taken() < filters.before.strftime("%Y-%m-%d %H:%M:%S"))
    if filters.camera:
        query = query.where(camera_clause(session, filters.camera))
    if filters.format:
        query = query.where(format_clause(session, filters.format))
    if filters.tag:
        from .tagging import tagged_ids_query

        query = query.where(s.Image.id.in_(tagged_ids_query(session, filters.tag, filters.tag_set)))
    if filters.keyword:
        from .keywords import keyword_ids_query

        query = query.where(s.Image.id.in_(keyword_ids_query(filters.keyword)))
    return query


def hits_for(session: Session, pairs: list[tuple[int, float]]) -> list[Hit]:
    if not pairs:
        return []
    rows = {r.id: r for r in session.execute(
        select(s.Image.id, s.Image.path, s.Image.taken_at, s.Image.camera_make, s.Image.camera_model,
               s.Image.format).where(s.Image.id.in_([i for i, _ in pairs]))
    )}
    out = []
    for i, score in pairs:
        r = rows.get(i)
        if r is not None:
            camera = " ".join(x for x in (r.camera_make, r.camera_model) if x) or None
            out.append(Hit(i, r.path, score, r.taken_at, camera, r.format, os.path.exists(r.path)))
    return out

