"""What zsindex may remove or overwrite: only what it can show it made.

- An index folder: zsindex's own file names (``index.sqlite`` and its WAL
  files, ``vectors.faiss``, ``vectors.json``, ``vectors.rows``, ``write.lock``) are only created
  or replaced beside an ``index.sqlite`` that zsindex made; a folder holding
  such names without one is refused, and an SQLite file without zsindex's
  schema is refused by the store.
- An index folder of a database server's store (``db=URL``) holds only the
  FAISS cache, and a marker (``server-store.json``) naming the database it
  caches by that database's own id. A folder with zsindex's file names but no
  marker, or a marker of another database, or an SQLite index, is refused:
  its vectors would be taken for the database's.
- ``zsindex demo --dir D`` records every file it makes, with its SHA-256, in
  ``D/.zsindex-demo.json``; a later run replaces or removes exactly those
  files, and only while their content is what the demo wrote.
- Output files named by the user (``export -o``, ``eval --confusion``) are
  never replaced unless the user says so (``--force``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import ForeignFileError, UsageError, shown
from .filehash import sha256_file
from .lock import LOCK_NAME
from .rowfile import ROWS_NAME
from .safewrite import write_new
from .store import DB_NAME
from .vectors import FAISS_NAME, META_NAME

SERVER_MARKER = "server-store.json"
# Every name zsindex writes into an index folder (the first is the database).
INDEX_FILE_NAMES = (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm", DB_NAME + "-journal", FAISS_NAME, META_NAME,
                    FAISS_NAME + ".tmp", META_NAME + ".tmp", ROWS_NAME, LOCK_NAME, SERVER_MARKER)
DEMO_MARKER = ".zsindex-demo.json"
_MARKER_KIND = "zsindex-demo"
_SERVER_KIND = "zsindex-server-store"


def check_index_folder(folder: Path, server: bool = False) -> None:
    """Refuse to start a new index in a folder whose files of zsindex's names zsindex did not make."""
    if (folder / DB_NAME).exists() and not server:
        return  # an existing database: the store checks that it is zsindex's
    strays = [name for name in INDEX_FILE_NAMES if (folder / name).exists() or (folder / name).is_symlink()]
    if strays:
        raise ForeignFileError(
            f"{shown(folder)} holds {', '.join(strays)} but no {DB_NAME}, so zsindex cannot show it made them and will "
            f"not overwrite them; move them away, or choose another index folder (folder=)")


def claim_cache_folder(folder: Path, store: Any) -> None:
    """A server store's cache folder: this database's (by its marker), or new and marked now; else refused."""
    marker = folder / SERVER_MARKER
    ours = store.store_id()
    if marker.exists() or marker.is_symlink():
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
            theirs = data["store_id"] if data.get("kind") == _SERVER_KIND else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            theirs = None
        if theirs == ours:
            return
        what = "another database" if theirs else "a file zsindex did not make"
        raise ForeignFileError(f"{shown(folder)} holds the vector cache of {what} ({marker.name}); give this database "
                               f"its own index folder (folder=)")
    check_index_folder(folder, server=True)
    if store.read_only:
        return
    tmp = marker.with_name(marker.name + f".{os.getpid()}.tmp")
    write_new(tmp, json.dumps({"kind": _SERVER_KIND, "store_id": ours}) + "\n")
    os.replace(tmp, marker)


@contextlib.contextmanager
def new_output_file(path: Path, force: bool = False, binary: bool = False) -> Iterator[IO[Any]]:
    """A text (or binary) file to write results into, at exactly this name, used as a context manager.

    The results go to a temporary file beside it, which takes the name only when all of them are written: a
    failure half-way leaves no half file and any previous file as it was. An existing file (or a link) of
    that name is refused unless force is given; with force the name is replaced, a link itself and never
    its target."""
    from .safewrite import create_new

    check_new_output(path, force)
    tmp = path.with_name(f".{path.name}.zsindex-tmp")
    fd = create_new(tmp)
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")) as out:
            yield out
        if force:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _link_new(tmp: Path, path: Path) -> None:
    """Give tmp the name path unless something took that name meanwhile (never replacing it)."""
    try:
        os.link(tmp, path)  # fails if the name exists: no race with another writer
    except FileExistsError:
        raise _exists(path) from None
    except OSError:  # a file system without hard links: checked, then renamed
        check_new_output(path)
        os.rename(tmp, path)


def _exists(path: Path) -> ForeignFileError:
    return ForeignFileError(f"{shown(path)} exists, and zsindex never overwrites a file unasked; choose another name, "
                            f"or pass force=True to replace it")


def check_new_output(path: Path, force: bool = False) -> None:
    """For writers that open the file themselves (e.g. matplotlib): refuse an existing file unless force, and
    a name in a folder that does not exist (before any work, naming that folder)."""
    folder = path.parent
    index = index_folder_of(folder)
    if index is not None:  # even with force: its files are the index's (export -o INDEX/index.sqlite --force)
        raise UsageError(f"cannot write {shown(path)}: {shown(index)} is a zsindex index folder, whose files only "
                         f"zsindex writes; choose a name outside it")
    if not force and (path.exists() or path.is_symlink()):
        raise _exists(path)
    if not folder.is_dir():
        from .errors import path_blocker

        blocker = path_blocker(path)
        if blocker is not None:
            raise UsageError(f"cannot write {shown(path)}: {blocker}; choose another name")
        raise UsageError(f"cannot write {shown(path)}: its folder {shown(folder)} does not exist; create it first, "
                         f"or choose another name")


def index_folder_of(folder: Path) -> Path | None:
    """The index folder (one holding index.sqlite) that ``folder`` is, or one whose thumbnail cache it is in,
    however it is named (a link on the way is followed): None when it is none."""
    from .thumbcache import THUMB_DIR

    real = Path(os.path.realpath(folder))
    places = [real]
    if THUMB_DIR in real.parts:
        places += real.parents
    for place in places:
        if (place / "index.sqlite").exists() or (place / "index.sqlite").is_symlink():
            return place
    return None


class MadeFiles:
    """The files a command made under a folder, by relative path and SHA-256, kept in a marker file."""

    def __init__(self, folder: Path, marker: str = DEMO_MARKER, who: str = "zsindex demo") -> None:
        self.folder, self.who = folder, who
        self.marker = folder / marker
        self.made: dict[str, str] = {}
        if self.marker.exists() or self.marker.is_symlink():
            try:
                data = json.loads(self.marker.read_text(encoding="utf-8"))
                if data.get("kind") != _MARKER_KIND or not isinstance(data.get("files"), dict):
                    raise ValueError("not a zsindex marker")
                self.made = {str(k): str(v) for k, v in data["files"].items()}
            except (OSError, ValueError, AttributeError) as e:
                raise ForeignFileError(f"{shown(self.marker)} is not a record zsindex wrote ({e}); zsindex leaves "
                                       f"{shown(folder)} alone: choose another folder") from None

    def _rel(self, path: Path) -> str:
        return os.path.relpath(path, self.folder)

    def claim(self, path: Path) -> None:
        """Allow replacing or removing path: it must be absent, or made here and unchanged since."""
        if not (path.exists() or path.is_symlink()):
            return
        recorded = self.made.get(self._rel(path))
        if recorded is None or path.is_symlink() or not path.is_file() or sha256_file(path) != recorded:
            raise ForeignFileError(
                f"{shown(path)} exists and {self.who} did not make it{' (or it changed since)' if recorded else ''}; "
                f"it is left as it is: choose another folder, or move it away yourself")

    def recorded(self, path: Path) -> bool:
        return self._rel(path) in self.made

    def forget(self, path: Path) -> None:
        self.made.pop(self._rel(path), None)

    def record(self, path: Path) -> None:
        self.made[self._rel(path)] = sha256_file(path)

    def save(self) -> None:
        tmp = self.marker.with_name(self.marker.name + ".tmp")
        write_new(tmp, json.dumps({"kind": _MARKER_KIND, "files": dict(sorted(self.made.items()))}, indent=1))
        os.replace(tmp, self.marker)
