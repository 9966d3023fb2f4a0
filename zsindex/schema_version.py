"""Where the migrations are and which revision is their head, without importing Alembic or SQLAlchemy.

Alembic and Mako cost a noticeable share of a query's start-up, and an index
already at head needs neither; the quick read path of a repeated query
(quickread.py) needs not even SQLAlchemy.
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import IndexStateError

_REVISION_LINE = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*['\"]?([^'\"\s]+)['\"]?", re.M)


def migrations_dir() -> Path:
    """Inside the wheel: zsindex/migrations; in a checkout: the top-level migrations/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "migrations", here.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise IndexStateError("zsindex is installed without its migrations folder; reinstall it")


def script_head() -> str | None:
    """The head revision, read from the migration files; None when they do not show exactly one head."""
    revisions: set[str] = set()
    parents: set[str] = set()
    try:
        for path in (migrations_dir() / "versions").glob("*.py"):
            found: dict[str, str] = {m[1]: m[2] for m in _REVISION_LINE.finditer(path.read_text(encoding="utf-8"))}
            if "revision" in found:
                revisions.add(found["revision"])
                parents.add(found.get("down_revision", "None"))
    except (OSError, IndexStateError):
        return None
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None
