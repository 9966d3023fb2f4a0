"""The exact vectors of a compressed index, in a file ordered by id: one random read per candidate.

A product-quantised FAISS index holds codes, and a search ranks its candidates
again by their exact vectors. In SQL each of those is a descent of two B-trees
into a file that, at millions of vectors, no longer stays in the page cache
(SQLite takes about 4.4 KB per vector: 22 GB at 5M), and the reads come one
after another. This file holds the same float32 vectors at offset
``id × 4·dim``: a candidate is one read inside one page, and a search hands
the kernel all of its reads at once (``posix_fadvise(WILLNEED)``) before it
waits for the first, so the disk serves them side by side.

It is a cache beside the FAISS file, written only by a process that holds the
index's write lock: whole when it rebuilds the index, row by row as an ingest
adds vectors, always after SQL has committed them (a rebuild without the lock
could put back a vector older than the one a writer just stored). Row 0 (no
image has id 0) holds a header: *dirty* from a writer's first write until the
FAISS file it writes is saved, then *clean* with the id of the generation of
vectors it holds (``store.VECTORS_ID``, as ``vectors.json`` records it).
Readers trust the file when it is clean with the id of the current
generation, or dirty while a writer holds the lock (that writer keeps it
current); dirty with no writer means a writer died half-way, and clean with
another id means the file belongs to another state of the vectors (one of
another index, copied here): every row is then read from SQL until the next
rebuild, and a writer's first row empties the file first. Within a trusted file, whatever it
cannot vouch for is read from SQL too: an id it has no row for (a hole, a short
file, a video frame: those ids lie far above any image id), and a row whose
length is not 1 (never written, or caught half-written). A write that fails
removes the file. A row file that is a symbolic link is not zsindex's: it is never read
(its rows come from SQL) nor written through; a writer replaces the link with a regular file of its own.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np

from .hits import FRAME_ID_BASE
from .safewrite import NOFOLLOW, open_in_place

ROWS_NAME = "vectors.rows"
NORM_TOLERANCE = 1e-3  # stored vectors are unit vectors; a row that is not one was never (fully) written
MAGIC = b"zsindex-rows-v1\0"
CLEAN, DIRTY = b"clean\0\0\0", b"dirty\0\0\0"
ID_BYTES = 32  # the generation's id (32 hex digits), zero bytes for none; a file made before ids has zeros there
HEADER_BYTES = len(MAGIC) + len(CLEAN) + ID_BYTES
_FADVISE = hasattr(os, "posix_fadvise")


class RowFile:
    def __init__(self, folder: Path, dim: int, vectors_id: str | None = None) -> None:
        self.folder = Path(folder)
        self.vectors_id = vectors_id  # the generation whose vectors a clean file must say it holds
        self.path = self.folder / ROWS_NAME
        self.dim = dim
        self.row_bytes = 4 * dim
        self.usable = self.row_bytes >= HEADER_BYTES  # row 0 must hold the header
        self._fd: int | None = None
        self._distrusted = False  # a write failed and the file could not be removed: this process reads SQL
        self._dirty = False  # this process marked it dirty and has not marked it clean since

    def _reader(self) -> int | None:
        if self._distrusted or not self.usable:
            return None
        if self._fd is None:
            try:
                fd = os.open(self.path, os.O_RDONLY | NOFOLLOW | os.O_NONBLOCK)  # a link in its place is not ours
            except OSError:
                return None
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a folder, a pipe (reading it would wait): not ours
                os.close(fd)
                return None
            self._fd = fd
            if _FADVISE:  # candidates are scattered: no read-ahead around each one
                os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_RANDOM)
        return self._fd

    def _header(self) -> tuple[str | None, str | None]:
        """(state, generation id) of the file: "clean", "dirty", or None (no file, not one of ours,
        unreadable); the id None when it records none."""
        fd = self._reader()
        if fd is None:
            return None, None
        try:
            header = os.pread(fd, HEADER_BYTES, 0)
        except OSError:
            return None, None
        if header[:len(MAGIC)] != MAGIC:
            return None, None
        state = {CLEAN: "clean", DIRTY: "dirty"}.get(header[len(MAGIC):len(MAGIC) + len(CLEAN)])
        recorded = header[len(MAGIC) + len(CLEAN):].rstrip(b"\0")
        return state, recorded.decode("ascii", "replace") or None

    def state(self) -> str | None:
        """"clean", "dirty", or None (no file, not one of ours, unreadable)."""
        return self._header()[0]

    def trusted_clean(self) -> bool:
        """Clean, and holding the vectors of this generation (not those of another index's file copied here)."""
        return self._header() == ("clean", self.vectors_id)

    def trusted(self) -> bool:
        state = self.state()
        if state == "dirty" and not self._dirty:
            from .lock import writer_active

            return writer_active(self.folder)  # being kept current by a writer; with none, one died half-way
        return state == "dirty" or self.trusted_clean()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()

    def read(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, found) for these ids; rows not found are zero and read from SQL by the caller."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        if not self.trusted():
            return out, np.zeros(len(ids), dtype=bool)
        fd = self._reader()
        assert fd is not None  # trusted() opened it
        usable = np.flatnonzero((ids > 0) & (ids < FRAME_ID_BASE))
        offsets = [int(i) * self.row_bytes for i in ids[usable]]
        if _FADVISE and len(offsets) > 1:  # queue every read before waiting for any
            for offset in offsets:
                os.posix_fadvise(fd, offset, self.row_bytes, os.POSIX_FADV_WILLNEED)
        try:
            for row, offset in zip(usable, offsets):
                data = os.pread(fd, self.row_bytes, offset)
                if len(data) == self.row_bytes:
                    out[row] = np.frombuffer(data, dtype=np.float32)
        except OSError:  # not a readable file after all (a folder in its place, a disk error): SQL has them all
            out[:] = 0
        with np.errstate(over="ignore", invalid="ignore"):  # a damaged row may hold anything, inf and NaN too
            found = np.abs(np.linalg.norm(out, axis=1) - 1.0) < NORM_TOLERANCE
        return out, found

    def write(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        """Write these rows (ids already committed in SQL; the caller holds the write lock), marking the file
        dirty first; runs of consecutive ids go in one write each."""
        if not self.usable or self._distrusted:
            return
        ids = np.asarray(ids, dtype=np.int64)
        keep = (ids > 0) & (ids < FRAME_ID_BASE)
        if not keep.any():
            return
        order = np.argsort(ids[keep], kind="stable")
        ids, vecs = ids[keep][order], np.ascontiguousarray(np.asarray(vecs, dtype=np.float32)[keep][order])
        breaks = np.flatnonzero(np.diff(ids) != 1) + 1
        try:
            # a link there is replaced, not written through; a pipe is not waited on
            fd = open_in_place(self.path, os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK)
        except OSError:
            self._distrust()  # a read-only folder, a folder of that name, say: searches read SQL
            return
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            self._distrust()
            return
        try:
            if not self._dirty:
                if not self.trusted_clean():  # rows of another state (another index's, say): none may be read
                    os.ftruncate(fd, 0)
                self._write_header(fd, DIRTY, self.vectors_id)
                self._dirty = True
            for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(ids)]):
                data = vecs[start:stop].tobytes()
                if os.pwrite(fd, data, int(ids[start]) * self.row_bytes) != len(data):
                    raise OSError("short write")
        except OSError:
            self._distrust()
        finally:
            os.close(fd)

    def mark_clean(self, vectors_id: str | None) -> None:
        """Every row is current for the vectors of generation vectors_id (the FAISS file that goes with them
        is saved): readers may trust the file. Also when this process wrote no row (a generation that only
        removed vectors): the header then names the new generation."""
        if self._distrusted or not (self._dirty or self.trusted_clean()):
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | NOFOLLOW | os.O_NONBLOCK)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise IsADirectoryError(self.path)
        except OSError:
            if self.path.is_symlink():  # put in its place since this process wrote it: no row of ours is there
                self._distrust()
            return
        try:
            self._write_header(fd, CLEAN, vectors_id)
            self._dirty = False
            self.vectors_id = vectors_id
        except OSError:
            self._distrust()
        finally:
            os.close(fd)

    @staticmethod
    def _write_header(fd: int, state: bytes, vectors_id: str | None) -> None:
        recorded = (vectors_id or "").encode("ascii")[:ID_BYTES].ljust(ID_BYTES, b"\0")
        if os.pwrite(fd, MAGIC + state + recorded, 0) != HEADER_BYTES:
            raise OSError("short write")

    def _distrust(self) -> None:
        """A row that could not be written may hold an older vector than SQL's: no one may read the file.

        It is removed (other processes then read SQL) and this process neither reads nor writes it again
        (so too when it cannot even be removed); the next rebuild writes it anew."""
        self.close()
        self._distrusted = True
        from .faults import in_the_way

        if in_the_way(self.path) is not None:
            return  # a folder or a pipe of that name: never ours to remove, and never read as rows
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass
