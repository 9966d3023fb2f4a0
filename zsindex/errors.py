"""Exceptions raised by zsindex. The CLI maps them to exit codes:
``UsageError`` subclasses to 2 (bad input the user typed), the rest to 1."""

from __future__ import annotations


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
