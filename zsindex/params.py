"""One checking layer for the parameters of the public API (``Library``'s methods, ``zsindex.open``,
``classify``, ``similarity``): a wrong type or a value the command line would refuse is a UsageError
naming the parameter, never a TypeError or AttributeError from deep inside, nor a silently wrong result.

Two parts:

- :func:`checked_api` (a class decorator) and :func:`checked` (for a function) check every parameter
  whose annotation is a plain scalar (``str``, ``int``, ``float``, ``bool``, ``Path``, :data:`Glob`,
  ``None`` joined with ``|``): its type, that a number is finite, and its range in :data:`RANGES` (the one
  definition the CLI's options and the HTTP API's fields are made from too). A ``Path`` accepts str, any
  PathLike and bytes (decoded with ``os.fsdecode``).
- :func:`path_list` and :func:`text_list` read a parameter that takes a list of paths, globs or texts:
  one str (or PathLike) is one item, never iterated per character; each item is checked.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, TypeVar

import numpy as np

from .errors import UsageError, check_path

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T", bound=type)



@dataclass(frozen=True)
class Range:
    """The values a numeric parameter may take (None: no bound on that side); ``why`` says what the bounds
    are, for the message."""

    low: float | None = None
    high: float | None = None
    why: str = ""

    def problem(self, value: float) -> str | None:
        note = f" ({self.why})" if self.why else ""
        if self.low is not None and value < self.low:
            return f"must be at least {self.low:g}{note}, not {value:g}"
        if self.high is not None and value > self.high:
            return f"must be at most {self.high:g}{note}, not {value:g}"
        return None


_COSINE = "a cosine similarity lies between -1 and 1"
# The one definition of every numeric parameter's range: the Python API checks it here, the command line's
# options are made from it (clikit.ranged), and the HTTP API's fields too (field_bounds). Keyed by parameter
# name; "method.name" for a parameter that means something else in that one method.
RANGES: dict[str, Range] = {
    "top_k": Range(1), "k": Range(1), "offset": Range(0), "limit": Range(1), "image_id": Range(1), "size": Range(1),
    "not_weight": Range(0, 10, "the weight of the not_= texts against the query, from 0 to 10"),
    "min_score": Range(-1, 1, _COSINE), "threshold": Range(-1, 1, _COSINE),
    # a tag's score, not a cosine
    "sidecars_write.min_score": Range(0, 1, "a tag's score lies between 0 and 1"),
    "batch_size": Range(1), "workers": Range(0), "max_megapixels": Range(0.1),
    "at": Range(0, None, "seconds into a video"),
    # the server's settings (create_app; zsindex serve's options)
    "max_upload_bytes": Range(1), "max_upload_megapixels": Range(0.01), "compute_threads": Range(0),
    "ingest_workers": Range(0), "watch_quiet_seconds": Range(0),
}


def range_of(name: str, method: str | None = None) -> Range | None:
    """The range of parameter ``name`` (of ``method``, where it has one of its own there)."""
    return RANGES.get(f"{method}.{name}") or RANGES.get(name)


class Bounds(TypedDict, total=False):
    ge: float
    le: float


def field_bounds(name: str, method: str | None = None, cap: float | None = None) -> Bounds:
    """The range of a parameter as pydantic's ge=/le= (the HTTP API's fields); ``cap``: a lower upper bound
    of the server's own (how much one request may ask for)."""
    found = range_of(name, method) or Range()
    high = found.high if cap is None else cap if found.high is None else min(found.high, cap)
    bounds = Bounds()
    if found.low is not None:
        bounds["ge"] = found.low
    if high is not None:
        bounds["le"] = high
    return bounds


# Text parameters where "" would silently stand for something else (the default model, 'no prefix', the recorded
# kind, ...): an empty or blank text is refused, as the command line refuses it for every text option.
NON_EMPTY: frozenset[str] = frozenset({"model", "pretrained", "device", "runtime", "precision", "db", "ray_address",
                                       "kind", "naming", "prefix", "mode", "token"})

Glob = str  # an annotation: a path glob (str, PathLike or bytes accepted; given back as str)
_SCALARS = {"str", "int", "float", "bool", "Path", "Glob", "None"}
_WORDS = {"str": "text", "int": "a whole number", "float": "a number", "bool": "True or False", "Path": "a path",
          "Glob": "a glob"}


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def one_path(value: Any, name: str, glob: bool = False) -> str | Path:
    """A single path (or glob) parameter: str, PathLike, or bytes (decoded); "" refused (see check_path)."""
    if isinstance(value, bytes):
        value = os.fsdecode(value)
    elif isinstance(value, os.PathLike) and not isinstance(value, Path):
        value = os.fspath(value)
        if isinstance(value, bytes):
            value = os.fsdecode(value)
    if not isinstance(value, (str, Path)):
        what = "a glob" if glob else "a path"
        raise UsageError(f"{name}= takes {what} (text or a Path), not {_show(value)}")
    check_path(value, name, glob)
    return os.fspath(value) if glob else value


def _items(value: Any, name: str, what: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, bytes, os.PathLike)):
        return [value]
    if isinstance(value, Mapping) or not isinstance(value, Iterable):
        raise UsageError(f"{name}= takes {what} or a list of them, not {_show(value)}")
    return list(value)


def path_list(value: Any, name: str, glob: bool = False) -> list[str | Path]:
    """A parameter taking paths (or globs): None, one path, or a list of them, each checked."""
    return [one_path(v, name, glob) for v in _items(value, name, "a glob" if glob else "a path")]


def text_list(value: Any, name: str) -> list[str]:
    """A parameter taking texts: None, one str, or a list of str (bytes are refused: no encoding is guessed)."""
    out = _items(value, name, "a text")
    for item in out:
        if not isinstance(item, str):
            raise UsageError(f"{name}= takes a text or a list of texts, not {_show(item)}")
    return out


def int_list(value: Any, name: str, minimum: int = 1) -> list[int]:
    """A parameter taking whole numbers (image ids): one, or a list of them."""
    if value is None:
        raise UsageError(f"{name}= takes a whole number or a list of them, not None")
    items = [value] if isinstance(value, (int, np.integer)) else _items(value, name, "a whole number")
    for item in items:
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, np.integer)):
            raise UsageError(f"{name}= takes whole numbers, not {_show(item)}")
        if item < minimum:
            raise UsageError(f"{name}= must be at least {minimum}, not {item}")
    return [int(i) for i in items]


def number_list(value: Any, name: str) -> list[float] | None:
    """A parameter taking numbers (cut-offs): None, or a list of finite numbers."""
    if value is None:
        return None
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise UsageError(f"{name}= takes a list of numbers, not {_show(value)}")
    return [check_scalar(v, name, frozenset({"float"})) for v in value]


def check_scalar(value: Any, name: str, kinds: frozenset[str], method: str | None = None) -> Any:
    """value checked against an annotation's kinds ({"str", "None"}, ...) and, a number, against its range
    (of ``method``'s parameter ``name``); returns it (a Path kind: decoded)."""
    if value is None and "None" in kinds:
        return value
    if isinstance(value, (bool, np.bool_)):
        if "bool" in kinds:
            return bool(value)
    elif "int" in kinds and isinstance(value, (int, np.integer)):
        return _in_range(int(value), name, method)
    elif "float" in kinds and isinstance(value, (int, float, np.integer, np.floating)):
        if not math.isfinite(value):
            raise UsageError(f"{name}= must be a finite number, not {value!r}")
        return _in_range(float(value), name, method)
    elif "str" in kinds and isinstance(value, str):
        if name in NON_EMPTY and not value.strip():
            raise UsageError(f"{name}= is empty; an empty text is never taken as the default or as 'none': give a "
                             f"value, or leave {name}= out")
        return value
    elif "Glob" in kinds and isinstance(value, (str, bytes, os.PathLike)):
        return one_path(value, name, glob=True)
    elif "Path" in kinds and isinstance(value, (str, bytes, os.PathLike)):
        path = one_path(value, name)
        return path if "str" in kinds else Path(path)
    wanted = [_WORDS[k] for k in ("Glob", "Path", "str", "float", "int", "bool") if k in kinds]
    if "Path" in kinds and "str" in kinds:
        wanted.remove("text")
        wanted[0] += " (text or a Path)"
    if "float" in kinds and "int" in kinds:
        wanted.remove("a whole number")
    raise UsageError(f"{name}= takes {' or '.join(wanted)}, not {_show(value)}")


def _in_range(value: float, name: str, method: str | None = None) -> Any:
    found = range_of(name, method)
    problem = found.problem(value) if found is not None else None
    if problem:
        raise UsageError(f"{name}= {problem}")
    return value


def _kinds(annotation: Any) -> frozenset[str] | None:
    """The scalar kinds of an annotation written as a string ("float | None"); None when it is not plain."""
    if not isinstance(annotation, str):
        return None
    parts = {p.strip().strip('"') for p in annotation.split("|")}
    return frozenset(parts) if parts <= _SCALARS and parts - {"None"} else None


def checked(func: F) -> F:
    """Check func's plain-scalar parameters (see the module doc) on every call."""
    sig = inspect.signature(func)
    plan = {name: kinds for name, p in sig.parameters.items() if (kinds := _kinds(p.annotation)) is not None}
    if not plan:
        return func

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as e:  # a missing or unknown argument: named, as a UsageError
            raise UsageError(f"{func.__name__}(): {e}") from None
        for name, kinds in plan.items():
            if name in bound.arguments:
                bound.arguments[name] = check_scalar(bound.arguments[name], name, kinds, func.__name__)
        return func(*bound.args, **bound.kwargs)

    wrapper.__signature__ = sig  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def checked_api(cls: T) -> T:
    """Wrap every public method of cls, its mixins' included, and __init__, with :func:`checked`."""
    members: dict[str, Any] = {}
    for klass in reversed(cls.__mro__[:-1]):  # a method a later class overrides: the override
        members.update(vars(klass))
    for name, member in members.items():
        if (name == "__init__" or not name.startswith("_")) and inspect.isfunction(member):
            setattr(cls, name, checked(member))
    return cls
