"""One writer per index: an advisory lock held for the length of an ingest, tag run or rebuild.

A file lock in the index folder for SQLite; a PostgreSQL session-level advisory lock when the store
is a database server, so that the rule holds across machines.
"""

from __future__ import annotations

import fcntl
import os
import stat
import zlib
from pathlib import Path
from types import TracebackType
from typing import Any

from .errors import IndexLockedError, IndexStateError, shown
from .faults import file_fault, in_the_way, not_a_file
from .safewrite import NOFOLLOW, open_in_place

LOCK_NAME = "write.lock"


class WriteLock:
    """Non-blocking exclusive flock; the OS drops it if the holder dies, even by SIGKILL."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> "WriteLock":
        what = in_the_way(self.path)
        if what is None:
            try:
                fd = open_in_place(self.path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK)  # truncated below: not a link
            except OSError as e:
                raise file_fault(e, self.path, f"change the index in {shown(self.path.parent)}") from None
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # put there since it was looked at
                os.close(fd)
                what = not_a_file(self.path) or "not a regular file"
        if what is not None:
            raise IndexStateError(
                f"cannot change the index in {shown(self.path.parent)}: {shown(self.path)} is {what}, where zsindex "
                f"keeps the index's write lock as a regular file. Move it aside (zsindex removes nothing it did not "
                f"make) and run the command again; reading commands keep working")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise IndexLockedError(
                f"another zsindex process (pid {holder}) is writing to {shown(self.path.parent)}; "
                "wait for it to finish (searches keep working meanwhile)"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)  # only for messages: a full disk may refuse it
        except OSError:
            pass
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "WriteLock":
        return self.acquire()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.release()


def writer_active(folder: Path) -> bool:
    """Whether a process holds the write lock now (a probe that takes nothing and creates no file)."""
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDONLY | NOFOLLOW | os.O_NONBLOCK)  # a link: no writer's lock file
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False  # a folder or a pipe in its place: no writer can hold it
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


class ServerLock:
    """A PostgreSQL advisory lock on its own connection; the server drops it if the holder dies.

    The folder's file lock is taken too: it guards this machine's FAISS cache file.
    """

    KEY = zlib.crc32(b"zsindex-writer")  # one writer per database

    def __init__(self, engine: Any, folder: Path) -> None:
        self.engine = engine
        self.folder = folder
        self._conn: Any = None
        self._file: WriteLock | None = None

    def acquire(self) -> "ServerLock":
        from sqlalchemy import text

        conn = self.engine.connect()
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.KEY}).scalar()
        conn.commit()
        if not got:
            holder = conn.execute(text(
                "SELECT a.client_addr, a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.objid = :k AND l.granted LIMIT 1"), {"k": self.KEY}).first()
            conn.close()
            where = f" (server pid {holder[1]}, client {holder[0] or 'local'})" if holder else ""
            raise IndexLockedError(
                f"another zsindex process{where} is writing to this database; wait for it to finish "
                "(searches keep working meanwhile)"
            )
        self._conn = conn
        self._file = WriteLock(self.folder)
        try:
            self._file.acquire()
        except BaseException:
            self.release()
            raise
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.release()
            self._file = None
        if self._conn is not None:
            from sqlalchemy import text

            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.KEY})
                self._conn.commit()
            finally:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> "ServerLock":
        return self.acquire()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.release()
