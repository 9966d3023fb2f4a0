"""Walking photo folders: image files with their size and mtime, excludes, symlink policy.

Files whose extension does not say what they are are sniffed (their first
bytes read): images among them are kept, the rest are listed as ignored with
their type, so a report can say what was left out and why. The clip of a
Live Photo (a .mov or .mp4 beside a still of the same name) is listed as
ignored too: the still stands for both.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import shown
from .images import IMAGE_SUFFIXES
from .media import content_type, kind_of_name, sniff

# Kinds of file that ingest reads; the others found by sniffing are reported as ignored.
INDEXED_KINDS = frozenset({"image", "raw", "video"})
_LIVE_STILLS = frozenset({".heic", ".heif", ".jpg", ".jpeg"})
_LIVE_CLIPS = frozenset({".mov", ".mp4"})


@dataclass(frozen=True)
class FileEntry:
    path: str  # absolute, as the OS names it (non-UTF-8 bytes kept as surrogate escapes)
    size: int
    mtime_ns: int
    kind: str = "image"  # image, raw or video


@dataclass
class ScanResult:
    files: list[FileEntry]
    problems: list[tuple[str, str]]  # (path, reason) for folders or files that could not be read
    ignored: list[tuple[str, str, str]] = field(default_factory=list)  # (path, type, reason): not media


def index_names(path: str | os.PathLike[str]) -> list[str]:
    """The names an index may have for a path a user gives: its real path (see real_name), then the path as
    given, made absolute (the name an index from before real paths kept)."""
    given = os.path.abspath(os.fspath(path))
    return list(dict.fromkeys([os.path.realpath(given), given]))


def real_name(path: str, root: str | None = None, root_real: str | None = None) -> str:
    """The name the index keeps a file by: its real path (symbolic links resolved), so that one file is
    indexed once however it is reached (a link to its folder, a link on the way to it, ``/tmp`` and
    ``/private/tmp``, a followed link inside). ``root``/``root_real``: a folder the path lies in with no link
    below it (a walk that does not follow links) and that folder's real path, which spares a lookup per file."""
    if root is not None and root_real is not None and (path == root or path.startswith(root.rstrip(os.sep) + os.sep)):
        return root_real.rstrip(os.sep) + path[len(root.rstrip(os.sep)):] if path != root else root_real
    return os.path.realpath(path)


def file_kind(path: str) -> tuple[str | None, str]:
    """(kind, what): kind is image, raw or video, or None for other files; what says what those hold."""
    kind = kind_of_name(os.path.basename(path))
    if kind is not None:
        return kind, kind
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as e:
        return None, f"unreadable ({e.strerror})"
    found = sniff(head)
    return found, found or content_type(head)


def _excluded(rel: str, name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def _type_key(path: str) -> str:
    return os.path.splitext(path)[1].lower() or "no extension"


def scan(
    roots: Sequence[Path],
    exclude: Sequence[str] = (),
    follow_symlinks: bool = False,
    on_file: Callable[[int], None] | None = None,
) -> ScanResult:
    """Every image file under roots (a root may itself be a file).

    Symlinks are skipped unless ``follow_symlinks``; then each real directory
    is entered once (by device and inode), so link loops end.
    """
    files: dict[str, FileEntry] = {}
    problems: list[tuple[str, str]] = []
    ignored: dict[str, tuple[str, str, str]] = {}
    seen_dirs: set[tuple[int, int]] = set()

    def add(path: str, named: bool) -> None:
        kind, what = file_kind(path)
        if kind not in INDEXED_KINDS and not (named and kind is None):
            # A file named on the command line is tried even when it does not look like an image,
            # so that its reason is recorded as before.
            why = f"{what}: not indexed" if kind else f"not an image or video ({what})"
            ignored[path] = (path, _type_key(path), f"ignored: {why}")
            return
        try:
            st = os.stat(path, follow_symlinks=follow_symlinks)
        except OSError as e:
            problems.append((path, f"cannot stat: {e.strerror}"))
            return
        files[path] = FileEntry(path, st.st_size, st.st_mtime_ns, kind or "image")
        if on_file:
            on_file(len(files))

    for root in roots:
        root_str = os.path.abspath(os.fspath(root))
        if os.path.isfile(root_str):
            add(root_str, True)
            continue
        for entry_path in _walk(root_str, root_str, exclude, follow_symlinks, seen_dirs, problems):
            add(entry_path, False)
    _pair_live_photos(files, ignored)
    _drop_sidecars(files, ignored)
    return ScanResult(sorted(files.values(), key=lambda f: f.path), problems,
                      sorted(ignored.values()))


def _pair_live_photos(files: dict[str, FileEntry], ignored: dict[str, tuple[str, str, str]]) -> None:
    """A .mov/.mp4 beside a HEIC/JPEG of the same name is the clip of a Live Photo: the still stands for it."""
    def key(path: str) -> tuple[str, str]:
        return os.path.dirname(path), os.path.basename(os.path.splitext(path)[0]).casefold()

    stills = {key(p): p for p in files if os.path.splitext(p)[1].lower() in _LIVE_STILLS}
    for path in [p for p in (*files, *ignored) if os.path.splitext(p)[1].lower() in _LIVE_CLIPS]:
        still = stills.get(key(path))
        if still is not None:
            files.pop(path, None)
            ignored[path] = (path, "live photo clip", f"ignored: Live Photo clip of {os.path.basename(still)}")


def _drop_sidecars(files: dict[str, FileEntry], ignored: dict[str, tuple[str, str, str]]) -> None:
    """An XMP sidecar beside its image (IMG.JPG.xmp or IMG.xmp, in any case) is part of that image: its keywords
    are read with it, so it is no ignored file. A sidecar with no image of its name is still listed."""
    names: set[tuple[str, str]] = set()
    for path in files:
        folder, name = os.path.split(path)
        names |= {(folder, name.casefold()), (folder, os.path.splitext(name)[0].casefold())}
    for path in [p for p in ignored if p[-4:].lower() == ".xmp"]:
        folder, name = os.path.split(path)
        if (folder, name[:-4].casefold()) in names:
            del ignored[path]


def _walk(
    folder: str,
    root: str,
    exclude: Sequence[str],
    follow: bool,
    seen: set[tuple[int, int]],
    problems: list[tuple[str, str]],
) -> Iterator[str]:
    try:
        st = os.stat(folder)
        key = (st.st_dev, st.st_ino)
        if key in seen:
            return
        seen.add(key)
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as e:
        problems.append((folder, f"cannot read folder: {e.strerror}"))
        return
    for entry in entries:
        rel = os.path.relpath(entry.path, root)
        if _excluded(rel, entry.name, exclude):
            continue
        try:
            if entry.is_symlink() and not follow:
                continue
            if entry.is_symlink() and not os.path.exists(entry.path):  # followed, it leads nowhere: say so
                problems.append((entry.path, f"a symbolic link to nothing ({shown(os.readlink(entry.path))})"))
                continue
            if entry.is_dir(follow_symlinks=follow):
                yield from _walk(entry.path, root, exclude, follow, seen, problems)
            elif entry.is_file(follow_symlinks=follow):
                yield entry.path
        except OSError as e:
            problems.append((entry.path, f"cannot read: {e.strerror}"))
