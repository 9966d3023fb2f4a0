"""Walking photo folders: image files with their size and mtime, excludes, symlink policy."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .images import IMAGE_SUFFIXES


@dataclass(frozen=True)
class FileEntry:
    path: str  # absolute, as the OS names it (non-UTF-8 bytes kept as surrogate escapes)
    size: int
    mtime_ns: int


@dataclass
class ScanResult:
    files: list[FileEntry]
    problems: list[tuple[str, str]]  # (path, reason) for folders or files that could not be read


def _excluded(rel: str, name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


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
    seen_dirs: set[tuple[int, int]] = set()

    def add(path: str) -> None:
        try:
            st = os.stat(path, follow_symlinks=follow_symlinks)
        except OSError as e:
            problems.append((path, f"cannot stat: {e.strerror}"))
            return
        files[path] = FileEntry(path, st.st_size, st.st_mtime_ns)
        if on_file:
            on_file(len(files))

    for root in roots:
        root_str = os.path.abspath(os.fspath(root))
        if os.path.isfile(root_str):
            add(root_str)
            continue
        for entry_path in _walk(root_str, root_str, exclude, follow_symlinks, seen_dirs, problems):
            add(entry_path)
    return ScanResult(sorted(files.values(), key=lambda f: f.path), problems)


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
            if entry.is_dir(follow_symlinks=follow):
                yield from _walk(entry.path, root, exclude, follow, seen, problems)
            elif entry.is_file(follow_symlinks=follow) and is_image_name(entry.name):
                yield entry.path
        except OSError as e:
            problems.append((entry.path, f"cannot read: {e.strerror}"))
