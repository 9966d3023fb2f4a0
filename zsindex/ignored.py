"""Files found under scanned folders that are not images or videos: listed, so users see what was left out."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from . import schema as s


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def record(session: Session, run_id: int, roots: Sequence[str],
           items: Sequence[tuple[str, str, str]]) -> dict[str, int]:
    """Replace the list of ignored files under ``roots`` by ``items`` (path, type, reason); counts by type."""
    known = session.execute(select(s.IgnoredFile.id, s.IgnoredFile.path)).all()
    stale = [i for i, p in known if _under(p, roots)]
    for start in range(0, len(stale), 500):
        session.execute(delete(s.IgnoredFile).where(s.IgnoredFile.id.in_(stale[start:start + 500])))
    if items:
        session.execute(insert(s.IgnoredFile), [{"path": p, "kind": k, "reason": r, "run_id": run_id}
                                                for p, k, r in items])
    counts = dict(sorted(Counter(k for _, k, _ in items).items()))
    run = session.get(s.IngestRun, run_id)
    if run is not None:
        run.ignored = json.dumps(counts)
    return counts


def counts(session: Session) -> dict[str, int]:
    """Ignored files now listed, by type."""
    rows = session.execute(select(s.IgnoredFile.kind, func.count()).group_by(s.IgnoredFile.kind)).all()
    return {k: n for k, n in sorted(rows)}


def rows(session: Session) -> list[tuple[str, str]]:
    """(path, reason) of every ignored file, by path."""
    return [(p, r) for p, r in session.execute(
        select(s.IgnoredFile.path, s.IgnoredFile.reason).order_by(s.IgnoredFile.path))]
