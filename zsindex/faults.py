"""Faults of the index folder's environment, turned into errors that name the file and what to do.

A read-only folder, a damaged or foreign ``index.sqlite``, a lock held by
another process, a full disk: none of these is a bug of zsindex, and none
should reach a user as a traceback. The store and the vector cache call
``database_fault`` / ``file_fault`` at their boundaries.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

from .errors import (
    IndexCorruptError,
    IndexLockedError,
    IndexReadOnlyError,
    IndexStateError,
    ZsindexError,
    plural,
    shell_word,
    shown,
)

_READ_ONLY_HINT = ("reading commands (status, search, errors, tags, export) still work on it; to change the "
                   "index make the folder writable (chmod -R u+w {folder}) or copy it somewhere writable")
# No chmod can make a file system mounted read-only (a read-only bind mount, a CD, a snapshot) writable.
_READ_ONLY_MOUNT_HINT = ("the file system holding it is mounted read-only, so no change of permissions can help. "
                         "Reading commands (status, search, errors, tags, export) still work on it; to change the "
                         "index remount that file system read-write, or copy the folder {folder} somewhere writable")


_MOVE_ASIDE = ("Move it aside and run Library.ingest(PATH) again to build a new index there (or restore it from a "
               "backup), or choose another index folder (folder=)")


def empty_database_error(path: Path) -> IndexCorruptError:
    """An index.sqlite without zsindex's schema and without any table: never an index being made (a new
    database is linked into place only once its schema is complete, see store.create_database), so an
    index folder whose database was emptied or cut short. Nothing is written to it."""
    try:
        empty = path.stat().st_size == 0
    except OSError:
        empty = False
    what = "it is empty (0 bytes)" if empty else "it is an SQLite database without any table"
    return IndexCorruptError(f"{shown(path)} is not a zsindex database: {what}, so the index that was there is damaged "
                             f"(emptied or cut short). " + _MOVE_ASIDE)


def damaged_vectors_error(where: str, bad: int, sizes: list[int], dim: int, server: bool = False) -> IndexCorruptError:
    """A stored vector blob whose length is not the model's dimension: the database was damaged (or edited)
    since it was written. Such a vector cannot be read as one, and guessing would give wrong results."""
    lengths = ", ".join(str(n) for n in sorted(set(sizes))[:5])
    fix = ("Restore the database from a backup, or ingest into a new one" if server else
           _MOVE_ASIDE + "; a copy made before a schema upgrade (index.sqlite.schema-NNNN.bak) is such a backup")
    return IndexCorruptError(
        f"{where} is damaged: {plural(bad, 'stored image vector has', 'stored image vectors have')} the wrong "
        f"length ({lengths} bytes, not {4 * dim}: {dim} float32 values), so no search, tagging or rebuild "
        f"can read the index's vectors. {fix}")


def read_only_error(folder: Path, what: str) -> IndexReadOnlyError:
    hint = _READ_ONLY_MOUNT_HINT if read_only_mount(folder) else _READ_ONLY_HINT
    return IndexReadOnlyError(f"cannot {what}: the index folder {shown(folder)} is read-only; "
                              + hint.format(folder=shell_word(str(folder))))


def read_only_mount(folder: Path) -> bool:
    """Whether folder (or, when it does not exist yet, the nearest folder above it) is on a file system
    mounted read-only (EROFS on every write, whatever the permissions say)."""
    for place in (folder, *Path(os.path.abspath(folder)).parents):
        try:
            return bool(os.statvfs(place).f_flag & os.ST_RDONLY)
        except FileNotFoundError:
            continue
        except OSError:
            return False
    return False


def database_fault(exc: BaseException, path: Path, server: str | None = None) -> ZsindexError:
    """The error to raise for a failure on the index database: the SQLite file at path, or, when ``server``
    is given (the URL of a database server, without its password), that server's database."""
    message = str(getattr(exc, "orig", None) or exc).strip()
    if server is not None:
        # The server's own words, first line only (the rest repeats the SQL); the folder holds no database.
        first = message.splitlines()[0] if message else type(exc).__name__
        return IndexStateError(f"database error on {server}: {first}")
    low = message.lower()
    folder = path.parent
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return IndexCorruptError(
            f"{shown(path)} is not a readable zsindex database ({message}): it is damaged or another program's file. "
            + _MOVE_ASIDE)
    if "readonly" in low or "read-only" in low:
        return read_only_error(folder, f"write to {shown(path)}")
    if "locked" in low or "busy" in low:
        return IndexLockedError(f"{shown(path)} is locked by another process (waited 30 s); try again when it has "
                                f"finished (see Library.status())")
    if "full" in low or ("i/o" in low and _disk_full(folder)):
        return IndexStateError(f"no space left on the disk holding {shown(path)} ({message}); free some space and run "
                               f"the command again (work committed before the failure is kept)")
    if "unable to open" in low and _unreadable_wal(path):
        who = ("once its file system, mounted read-only, is mounted read-write again" if read_only_mount(folder)
               else "as a user who may write the folder")
        return IndexReadOnlyError(
            f"cannot read {shown(path)}: its last writer did not close it ({shown(path.name)}-wal holds changes "
            f"not yet in {shown(path.name)}), and reading those needs SQLite to create {shown(path.name)}-shm, which "
            f"the read-only folder {shown(folder)} does not allow. Open it once {who} "
            f"(Library.status() will do: it folds the changes in), or copy the folder somewhere writable")
    if "unable to open" in low:
        return IndexStateError(f"cannot open {shown(path)} ({message}); check that {shown(folder)} exists and that "
                               f"you may read it (and write it, for commands that change the index)")
    if "i/o" in low:
        return IndexStateError(f"disk I/O error on {shown(path)} ({message}); check the disk (space, file size limits, "
                               f"a removed drive) and run the command again")
    return IndexStateError(f"database error on {shown(path)}: {message}")


def _unreadable_wal(path: Path) -> bool:
    """A -wal file beside the database, no -shm, and a folder this process may not write: SQLite cannot
    read such a database (opening it as immutable would skip the changes in the -wal file, or read a
    half-done checkpoint)."""
    wal, shm = (path.with_name(path.name + x) for x in ("-wal", "-shm"))
    return wal.exists() and wal.stat().st_size > 0 and not shm.exists() and not folder_writable(path.parent)


def _disk_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def file_fault(exc: OSError, path: Path, what: str) -> ZsindexError:
    """The error to raise when a file of the index folder cannot be read or written."""
    folder = path.parent
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return read_only_error(folder, what)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return IndexStateError(f"cannot {what}: no space left for {shown(path)} ({exc.strerror}); free some space and "
                               f"run the command again")
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return IndexStateError(f"cannot {what}: {shown(folder)} is not a folder; give a folder as folder=")
    return IndexStateError(f"cannot {what}: {shown(path)}: {exc.strerror or exc}")


def check_folder_readable(folder: Path) -> None:
    """Refuse an index folder this process may not read (list and enter), or one below a folder it may not
    enter, with a message naming it and what to do; a folder that does not exist (yet) passes."""
    try:
        st = os.stat(folder)
    except PermissionError:
        blocker = next((p for p in reversed(folder.absolute().parents) if not os.access(p, os.X_OK)), folder.parent)
        raise IndexStateError(f"cannot read the index folder {shown(folder)}: this user may not enter {shown(blocker)} "
                              f"(permission denied); make it readable (chmod u+rx {shell_word(str(blocker))}), or "
                              f"run the command as a user who may read it") from None
    except OSError:
        return  # no such folder (yet), or a file on its path: the caller says so
    if stat.S_ISDIR(st.st_mode) and not os.access(folder, os.R_OK | os.X_OK):
        raise IndexStateError(f"cannot read the index folder {shown(folder)} (permission denied); make it readable "
                              f"(chmod u+rx {shell_word(str(folder))}), or run the command as a user who may read it")


def folder_writable(folder: Path, files: tuple[Path, ...] = ()) -> bool:
    """Whether this process may create and change files in folder (and change those given that exist)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    return all(os.access(f, os.W_OK) for f in files if f.exists())


def not_a_file(path: Path) -> str | None:
    """What stands at path when it is not a regular file (a symbolic link followed): "a folder", "a named pipe
    (FIFO)", "a symbolic link to X, which does not exist", ...; None when nothing is there, or a regular file."""
    try:
        st = os.stat(path)
    except OSError as e:
        if not os.path.islink(path):
            return None  # nothing there (or a folder above it that cannot be entered: others say so)
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        if isinstance(e, FileNotFoundError):
            return f"a symbolic link to {shown(target)}, which does not exist"
        return f"a symbolic link to {shown(target)}, which cannot be followed ({e.strerror})"
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return None
    what = ("a folder" if stat.S_ISDIR(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode) else
            "a socket" if stat.S_ISSOCK(mode) else
            "a device file" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
    if os.path.islink(path):
        try:
            what = f"a symbolic link to {what} ({shown(os.readlink(path))})"
        except OSError:
            what = f"a symbolic link to {what}"
        return what
    return what


def in_the_way(path: Path) -> str | None:
    """``not_a_file`` for a file zsindex replaces by renaming over it: a symbolic link there is replaced
    (never its target), so only something that is neither a link nor a regular file stands in the way."""
    return None if os.path.islink(path) else not_a_file(path)


DB_FILE_ROLES = {"": "the index database", "-wal": "the write-ahead log of the index database",
                 "-shm": "the shared index of the database's write-ahead log",
                 "-journal": "the rollback journal of the index database"}


def check_database_files(folder: Path, db_name: str = "index.sqlite") -> None:
    """Refuse an index folder whose database, or one of the files SQLite keeps beside it, is not a regular
    file (a folder, a named pipe, a symbolic link to nothing), naming the file and what to do: SQLite
    could not open it, or would say only "unable to open" or "disk I/O error"."""
    db = folder / db_name
    what = not_a_file(db)
    if what is not None:
        if "does not exist" in what or "cannot be followed" in what:
            raise IndexCorruptError(f"{shown(db)} is {what}, so the index database cannot be read. If the database is "
                                    f"elsewhere (a drive not mounted), make it reachable again; else m"
                                    + _MOVE_ASIDE[1:])
        raise IndexCorruptError(f"{shown(db)} is {what}, not the index database (a regular file). " + _MOVE_ASIDE)
    for suffix, role in DB_FILE_ROLES.items():
        path = folder / (db_name + suffix)
        what = not_a_file(path) if suffix else None
        if what is not None:
            raise IndexStateError(
                f"{shown(path)} is {what}, but SQLite keeps {role} ({shown(db)}) there as a regular file, so the index "
                f"cannot be opened. Move it aside (zsindex removes nothing it did not make) and run the command again")
