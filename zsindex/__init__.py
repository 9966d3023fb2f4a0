"""zsindex: semantic search and zero-shot labelling of image collections.

The public API, re-exported lazily so that ``import zsindex`` stays light:

    import zsindex
    lib = zsindex.open("./photos-index", model="demo")
"""

from __future__ import annotations

from typing import Any

from .errors import (
    ClusterError,
    ImageError,
    IndexLockedError,
    IndexStateError,
    LabelError,
    ModelError,
    ModelMismatchError,
    ModelUnavailableError,
    NotFoundError,
    UsageError,
    ZsindexError,
)

__version__ = "0.1.0"

_LAZY = {
    "open": ("library", "open"),
    "Library": ("library", "Library"),
    "classify": ("library", "classify"),
    "similarity": ("library", "similarity"),
    "load_embedder": ("embedder", "load_embedder"),
    "Label": ("labels", "Label"),
    "LabelSet": ("labels", "LabelSet"),
}

__all__ = [
    "ClusterError", "ImageError", "IndexLockedError", "IndexStateError", "LabelError", "ModelError",
    "ModelMismatchError", "ModelUnavailableError", "NotFoundError", "UsageError", "ZsindexError", "__version__", *_LAZY,
]


def __dir__() -> list[str]:
    """The lazy names too, so that dir(zsindex) and completion show zsindex.open and friends."""
    return sorted(set(globals()) | set(_LAZY))


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'zsindex' has no attribute {name!r}")
