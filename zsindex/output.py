"""Everything a command prints as results: one decorator, one encoding of file names, three formats.

How to use it in a command (every command that prints results does this)::

    @cli.command()
    @output_options                      # adds --json / --table / --csv; the command receives fmt
    def mycommand(..., fmt: str) -> None:
        emit_rows(rows, ["path", "score"], fmt)     # many flat rows
        emit_record({"added": 3, ...}, fmt)         # one result object
        emit_json(objects)                          # nested objects; use only when fmt == "json"

``fmt`` is "json", "table" or "csv". With no flag it is "table" when stdout is
a terminal and "json" (JSON lines: one object a line) otherwise. Results go to
stdout; messages go to stderr through :func:`warn`; progress bars are drawn
only when stderr is a terminal (see clikit.ProgressBar).

File names are bytes; Python hands names that are not UTF-8 over as ``str``
with surrogate escapes. This module is the one place where such strings
become text, so every format stays valid for any name the file system allows:

- **CSV, table and --paths-only** write every text value in the *escaped
  form*: a backslash becomes ``\\\\``, newline, tab and carriage return become
  ``\\n``, ``\\t``, ``\\r``, other control characters and each byte that is not
  valid UTF-8 become ``\\xHH``, and C1 controls, unpaired surrogates and the
  Unicode line separators become ``\\uHHHH``. Everything else is written as it
  is. :func:`unescape_text` reverses it exactly (``os.fsencode`` of its result
  gives the original bytes).
- **JSON** writes valid names exactly (JSON's own escapes carry newlines and
  control characters). A string that is not valid UTF-8 is written in the
  escaped form, and the object gains a sibling ``<key>_bytes`` field holding
  the exact bytes in base64 (so ``path`` comes with ``path_bytes``); a list
  holding such a name gains a ``<key>_bytes`` list with the bytes of each of
  its names, in order. Non-finite floats become null.
- **--print0** (:func:`emit_paths` with ``null=True``) writes the exact bytes,
  each name followed by a NUL byte, for ``xargs -0``.
"""

from __future__ import annotations

import base64
import csv
import functools
import io
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import PurePath
from typing import IO, Any

import click

FORMATS = ("json", "table", "csv")

# Characters that the escaped form rewrites: backslash, C0/DEL/C1 controls, surrogates, line separators.
_SPECIAL = re.compile("[\\\\\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")
_NAMED = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_ESCAPE = re.compile(r"\\(\\|n|t|r|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4})")


def output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add --json / --table / --csv to a click command; it receives ``fmt`` ("json", "table" or "csv")."""

    @click.option("--json", "fmt", flag_value="json", help="JSON lines, one object a line (default when piped).")
    @click.option("--table", "fmt", flag_value="table", help="An aligned table (default on a terminal).")
    @click.option("--csv", "fmt", flag_value="csv", help="CSV with a header row.")
    @functools.wraps(func)
    def wrapper(*args: Any, fmt: str | None = None, **kwargs: Any) -> Any:
        return func(*args, fmt=fmt or default_format(), **kwargs)

    wrapper.__zsindex_output__ = True  # type: ignore[attr-defined]  # tests find commands by this mark
    return wrapper


def default_format() -> str:
    return "table" if sys.stdout.isatty() else "json"


# -- the encoding of names ------------------------------------------------------------------------
def _escape_char(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not valid UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x80:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def escape_text(value: str) -> str:
    """The escaped form of a text value (see the module docstring); plain names come back unchanged."""
    return _SPECIAL.sub(_escape_char, value)


def _unescape_char(match: re.Match[str]) -> str:
    token = match.group(1)
    if token in ("\\", "n", "t", "r"):
        return {"\\": "\\", "n": "\n", "t": "\t", "r": "\r"}[token]
    code = int(token[1:], 16)
    if token[0] == "x" and code >= 0x80:
        return chr(0xDC00 + code)  # back to the surrogate escape of that byte
    return chr(code)


def unescape_text(value: str) -> str:
    """Reverse :func:`escape_text`; ``os.fsencode(unescape_text(s))`` gives a name's exact bytes."""
    return _ESCAPE.sub(_unescape_char, value)


def shown(value: Any) -> str:
    """A path or name as it appears in a message: the escaped form, on one line."""
    return escape_text(os.fspath(value) if isinstance(value, PurePath) else str(value))


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")


def one_line(message: str) -> str:
    """A message as one line: what a name written without :func:`shown` left in it (a control character, a line
    break, a byte that is not UTF-8) in the escaped form; the last guard of every message the command line
    prints (clikit.cli_text), so that no message is ever split across lines."""
    return _CONTROL.sub(lambda m: escape_text(m.group()), message)


def is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _raw_bytes(value: str) -> bytes:
    try:
        return os.fsencode(value)
    except UnicodeEncodeError:  # an unpaired surrogate that did not come from a file name
        return value.encode("utf-8", "surrogatepass")


def _b64(name: str) -> str:
    return base64.b64encode(_raw_bytes(name)).decode("ascii")


def _needs_bytes(item: Any) -> bool:
    """Whether jsonable gives this value a ``<key>_bytes`` sibling: a name, or a list holding one, not UTF-8."""
    items = item if isinstance(item, (list, tuple)) else [item]
    return any(isinstance(v, (str, PurePath)) and not is_utf8(os.fspath(v)) for v in items)


def jsonable(value: Any) -> Any:
    """A value ready for json.dumps: names that are not UTF-8 escaped (+ ``<key>_bytes``), NaN/inf as null."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            key = escape_text(str(key))
            if f"{key}_bytes" in value and _needs_bytes(item):
                # Keys are fixed names, never user text (see emit_rows); a sibling must never overwrite one.
                raise ValueError(f"output key {key!r} would overwrite the key {key + '_bytes'!r}")
            if isinstance(item, PurePath):
                item = os.fspath(item)
            if isinstance(item, str) and not is_utf8(item):
                out[key] = escape_text(item)
                out[f"{key}_bytes"] = _b64(item)
            elif isinstance(item, (list, tuple)) and any(isinstance(v, (str, PurePath)) and not is_utf8(os.fspath(v))
                                                         for v in item):
                out[key] = jsonable(item)  # a list of names (the images of a sidecar): every one's bytes, in order
                out[f"{key}_bytes"] = [_b64(os.fspath(v)) if isinstance(v, (str, PurePath)) else None for v in item]
            else:
                out[key] = jsonable(item)
        return out
    if isinstance(value, str):
        return value if is_utf8(value) else escape_text(value)
    if isinstance(value, PurePath):
        return jsonable(os.fspath(value))
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (bool, int, float)):
        value = value.item()  # numpy scalars
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return jsonable(str(value))


def json_line(obj: Any) -> str:
    return json.dumps(jsonable(obj), ensure_ascii=False, allow_nan=False)


# -- writers --------------------------------------------------------------------------------------
def _table_cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else ""
    return "" if value is None else shown(value)


def _csv_cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # as JSON writes them
    if isinstance(value, float):
        return repr(round(value, 6)) if math.isfinite(value) else ""
    return "" if value is None else shown(value)


def emit_json(objects: Iterable[Any], file: IO[str] | None = None) -> None:
    """JSON lines: one object a line."""
    for obj in objects:
        click.echo(json_line(obj), file=file)


def emit_rows(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], fmt: str, file: IO[str] | None = None) -> None:
    """Flat rows as JSON lines (every key of each row, the columns first and in their order), CSV (the columns,
    with a header) or a table (the columns).

    Columns are fixed names chosen by the command, never user text (a label, a query, a class name): user text
    goes in a value, so that no text can take the place of a column, in any format."""
    if len(set(columns)) != len(columns):
        raise ValueError(f"duplicate output columns: {list(columns)}")
    if fmt == "json":
        emit_json(({**{c: row[c] for c in columns if c in row}, **row} for row in rows), file)
        return
    rows = list(rows)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_cell(row.get(c)) for c in columns])
        click.echo(buffer.getvalue(), file=file, nl=False)
        return
    cells = [[_table_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip(), file=file)
    click.echo("  ".join("-" * w for w in widths), file=file)
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip(), file=file)


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys: {"images": {"indexed": 3}} -> {"images.indexed": 3}."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            out[name] = ", ".join(str(v) for v in value)
        elif isinstance(value, Mapping):
            out[name] = None
        else:
            out[name] = value
    return out


def emit_record(record: Mapping[str, Any], fmt: str, file: IO[str] | None = None) -> None:
    """One result object: a JSON line, a one-row CSV (dotted keys for nested values), or a key/value table."""
    if fmt == "json":
        emit_json([record], file)
        return
    flat = flatten(record)
    if fmt == "csv":
        emit_rows([flat], list(flat), "csv", file)
    else:
        emit_rows([{"key": k, "value": v} for k, v in flat.items()], ["key", "value"], "table", file)


def emit_paths(paths: Iterable[str], null: bool = False) -> None:
    """One path a line in the escaped form, or (null=True) the exact bytes of each path ending in NUL."""
    if null:
        sys.stdout.flush()
        stream = sys.stdout.buffer
        for p in paths:
            stream.write(_raw_bytes(os.fspath(p)) + b"\0")
        stream.flush()
        return
    for p in paths:
        click.echo(shown(p))


STDERR_ERRORS = "zsindex-escaped"


def _escaped_error(exc: UnicodeError) -> tuple[str, int]:
    """Codec error handler: characters stderr's encoding cannot write, in the escaped form of names (a byte
    of a file name that is not UTF-8 as ``\\xHH``, other characters as ``\\uHHHH``)."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc

    def one(ch: str) -> str:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            return f"\\x{code - 0xDC00:02x}"
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"

    return "".join(one(ch) for ch in exc.object[exc.start:exc.end]), exc.end


def escape_unwritable_on_stderr() -> None:
    """Messages name files: a name's bytes that are not UTF-8 appear on stderr as ``\\xHH``, the form the
    outputs use, instead of Python's ``\\udcHH``. Called once by the command line's entry point."""
    import codecs

    try:
        codecs.lookup_error(STDERR_ERRORS)
    except LookupError:
        codecs.register_error(STDERR_ERRORS, _escaped_error)
    reconfigure = getattr(sys.stderr, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors=STDERR_ERRORS)


def warn(message: str) -> None:
    """A message for the user, on stderr; ``name=`` option references become this command's flags."""
    from .clikit import cli_text

    click.echo(cli_text(message), err=True)
