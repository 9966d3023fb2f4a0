"""Exceptions raised by zsindex. The CLI maps them to exit codes:
``UsageError`` subclasses to 2 (bad input the user typed), the rest to 1."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable


class ZsindexError(Exception):
    """Base class of every error zsindex raises on purpose."""


class UsageError(ZsindexError):
    """The request itself is wrong (bad labels, empty query, missing path)."""


class LabelError(UsageError):
    """A label list or label file is empty, duplicated or malformed."""


class NotFoundError(UsageError):
    """The image, label set or job asked for does not exist (or is no longer indexed)."""


class ModelError(ZsindexError):
    """A model could not be loaded."""


class ModelUnavailableError(ModelError):
    """The weights are not on this machine and cannot be downloaded."""


class ModelMismatchError(ZsindexError):
    """Vectors or queries from one model were offered to an index of another."""


class ImageError(ZsindexError):
    """One image file cannot be read or decoded."""


class TooLargeError(ImageError):
    """An image (or a video's frames) over the caller's megapixel limit: refused before its pixels are read."""

    def __init__(self, message: str, width: int, height: int) -> None:
        super().__init__(message)
        self.width, self.height = width, height


class IndexStateError(ZsindexError):
    """The index is missing, empty, locked or from a newer zsindex."""


class IndexLockedError(IndexStateError):
    """Another process is writing to the index."""


class IndexReadOnlyError(IndexStateError):
    """A command that changes the index met a folder or file it may not write."""


class IndexCorruptError(IndexStateError):
    """The index database is damaged or is not a zsindex database."""


class ForeignFileError(ZsindexError):
    """A command would remove or overwrite a file or folder it cannot show it made."""


class ClusterError(ZsindexError):
    """The Ray cluster is missing or unreachable, or one of its nodes cannot read the files or load the model."""


def plural(count: int, one: str, many: str | None = None) -> str:
    """'1 file', '2 files'; ``many`` for other forms: plural(n, "file was", "files were")."""
    return f"{count} {one if count == 1 else (many if many is not None else one + 's')}"


_STR = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
_API_CALL = re.compile(rf"Library\.([a-z_]+)\(((?:{_STR}|[^)'\"])*)\)")
_API_ARG = re.compile(rf"\s*({_STR}|[^,]+)\s*(?:,|$)")


def rewrite_api_calls(message: str, render: Callable[[str, list[tuple[str, bool]]], str | None]) -> str:
    """Each ``Library.method(args)`` a library message names, as ``render(method, [(arg, quoted), ...])``
    writes it for another front end (the CLI's command, the server's route); None leaves it as it is."""
    import ast

    def sub(match: re.Match[str]) -> str:
        args = []
        for arg in _API_ARG.findall(match.group(2)):
            arg = arg.strip()
            if arg[:1] in "'\"":
                args.append((ast.literal_eval(arg), True))
            elif arg:
                args.append((arg, False))
        out = render(match.group(1), args)
        return match.group(0) if out is None else out

    return _API_CALL.sub(sub, message)


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _one_line(name: str) -> str:
    """A name as a list in a message shows it: control characters, line breaks and bytes that are not UTF-8 in
    the escaped form (output.escape_text); a name already written with repr() comes back unchanged."""
    if not _CONTROL.search(name):
        return name
    from .output import escape_text

    return _CONTROL.sub(lambda m: escape_text(m.group()), name)


def shown(value: object) -> str:
    """A path or name as every message writes it: the escaped form of the outputs (output.escape_text; README,
    "File names"), so that a newline, a tab or a byte that is not UTF-8 in it neither splits the message nor
    reads differently there than in the results."""
    import os

    from .output import escape_text

    return escape_text(os.fsdecode(value) if isinstance(value, (bytes, os.PathLike)) else str(value))


def given(value: object) -> str:
    """A path as the value of a parameter a message tells the user to give (``folder={given(p)}``): quoted, in
    the escaped form; the command line writes it as one shell word (clikit.cli_text), the server as a word of
    `zsindex serve` (service.messages)."""
    import shlex

    text = shown(value)
    return text if shlex.quote(text) == text else "'" + text.replace("'", "\\x27") + "'"


def shell_word(value: str) -> str:
    """A value as one shell word on one line: shlex.quote, or bash's $'...' with the escaped form (output.py)
    where it holds a control character, a line break or a byte that is not UTF-8."""
    import shlex

    from .output import escape_text

    if escape_text(value.replace("\\", "")) == value.replace("\\", ""):  # nothing to escape but backslashes
        return shlex.quote(value)
    return "$'" + escape_text(value).replace("'", "\\'") + "'"


KNOWN_SHOWN = 20  # how many names a "known: ..." list in a message shows before "... and N more"


def known_list(names: Iterable[str], none: str = "none yet", limit: int = KNOWN_SHOWN, near: str | None = None) -> str:
    """The names a message offers (known label sets, labels, formats): the first ``limit`` joined by commas,
    then "... and N more", so that a long list never buries the message; ``none`` when there are none.
    With ``near`` (what the user gave), the names most like it come first, so the cut keeps them."""
    names = [_one_line(n) for n in names]
    if near is not None:
        import difflib

        close = difflib.get_close_matches(near.casefold(), [n.casefold() for n in names], n=5, cutoff=0.5)
        first = [n for c in close for n in names if n.casefold() == c][:5]
        names = list(dict.fromkeys(first + names))
    if not names:
        return none
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} … and {len(names) - limit} more"


def check_path(value: object, name: str, glob: bool = False) -> None:
    """Refuse an empty path or glob (name: the parameter, e.g. "paths"): os.path and pathlib read "" as the
    current folder, and a filter would silently filter nothing."""
    if isinstance(value, (str, bytes)) and not value.strip():
        if glob:
            raise UsageError(f"{name}= is empty; give a glob, e.g. '*/2023/*' or 'holidays/*.jpg'")
        raise UsageError(f"{name}= is empty, and an empty path is not taken to mean the current folder; "
                         f"give a path (for the current folder: '.')")


def check_paths(values: object, name: str, glob: bool = False) -> None:
    """check_path for one value or each of a list of them."""
    for value in [values] if isinstance(values, (str, bytes)) else values or ():  # type: ignore[attr-defined]
        check_path(value, name, glob)


def path_blocker(path: object) -> str | None:
    """Why a path that does not exist cannot exist: the nearest thing above it is not a folder ("F is a file,
    not a folder", "L is a symbolic link to T, which does not exist"); None when a folder above it exists
    (the path is simply not there, or gone)."""
    import os
    from pathlib import Path

    for above in Path(os.fsdecode(path)).parents:  # type: ignore[arg-type]
        if not os.path.lexists(above):
            continue
        if os.path.isdir(above):
            return None
        if os.path.islink(above) and not os.path.exists(above):
            try:
                target = os.readlink(above)
            except OSError:
                target = "?"
            return f"{shown(above)} is a symbolic link to {shown(target)}, which does not exist"
        return f"{shown(above)} is a file, not a folder"
    return None


def missing_paths(paths: Iterable[object], what: str = "file or folder", gone_hint: str = "") -> str:
    """'no such file or folder: P, Q' for paths that do not exist, saying for each one that cannot exist
    which file stands in its way; ``gone_hint`` ('; to remove ...') only when some path is simply gone."""
    import os

    names = [os.fsdecode(p) for p in paths]  # type: ignore[arg-type]
    blocked = {n: path_blocker(n) for n in names}
    parts = [f"{shown(n)} ({blocked[n]})" if blocked[n] else shown(n) for n in names]
    hint = gone_hint if any(b is None for b in blocked.values()) else ""
    return f"no such {what}: {known_list(parts)}{hint}"
