"""Files zsindex creates or rewrites: never written through a symbolic link it did not make.

A temporary file (``vectors.faiss.tmp``, ``.IMG.xmp.zsindex-tmp``, a marker's
``.tmp``) is made new: whatever has its name (a temp file left by a killed run,
a link planted there) is removed first, and the file is created with
``O_CREAT | O_EXCL | O_NOFOLLOW``, so the open fails rather than follow a link
that appears in between. A file rewritten in place (the row file, the lock
file) is opened with ``O_NOFOLLOW``; a link in its place is removed and a
regular file made instead (``open_in_place``). Renaming a temp file over a
link replaces the link itself, never its target.
"""

from __future__ import annotations

import os
from pathlib import Path

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def create_new(path: str | os.PathLike[str], mode: int = 0o644) -> int:
    """A descriptor for writing a new, empty regular file at path; a file or link of that name is removed first."""
    try:
        os.unlink(path)  # a link itself, never its target
    except FileNotFoundError:
        pass
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | CLOEXEC, mode)


def write_new(path: str | os.PathLike[str], data: bytes | str, mode: int = 0o644) -> None:
    """Write data (str as UTF-8) into a new file at path (see create_new)."""
    with os.fdopen(create_new(path, mode), "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


def open_in_place(path: str | os.PathLike[str], flags: int, mode: int = 0o644) -> int:
    """Open a file zsindex keeps and rewrites in place, never through a link.

    With ``O_CREAT`` in flags, a symbolic link in its place is removed and a new regular file made (its
    content was never zsindex's to trust); without, a link raises ``OSError`` as a missing file would.
    """
    try:
        return os.open(path, flags | NOFOLLOW | CLOEXEC, mode)
    except OSError:
        if not (flags & os.O_CREAT and is_link(path)):
            raise
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    try:
        return os.open(path, flags | os.O_EXCL | NOFOLLOW | CLOEXEC, mode)
    except FileExistsError:  # another process made it in between: theirs is a regular file, or refused again
        return os.open(path, (flags & ~os.O_CREAT) | NOFOLLOW | CLOEXEC, mode)


def is_link(path: str | os.PathLike[str]) -> bool:
    return Path(path).is_symlink()
