"""Result formatting for the CLI: JSON lines, a table, or CSV, chosen by one shared decorator.

Data goes to stdout; the table is the default only when stdout is a terminal.
"""

from __future__ import annotations

import csv
import functools
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import click


def output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add --json / --table / --csv; the command receives ``fmt``."""

    @click.option("--json", "fmt", flag_value="json", help="JSON lines, one object per result (default when piped).")
    @click.option("--table", "fmt", flag_value="table", help="An aligned table (default on a terminal).")
    @click.option("--csv", "fmt", flag_value="csv", help="CSV with a header row.")
    @functools.wraps(func)
    def wrapper(*args: Any, fmt: str | None = None, **kwargs: Any) -> Any:
        if fmt is None:
            fmt = "table" if sys.stdout.isatty() else "json"
        return func(*args, fmt=fmt, **kwargs)

    return wrapper


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def emit_json(objects: Iterable[dict]) -> None:
    for obj in objects:
        click.echo(json.dumps(obj, ensure_ascii=False, default=str))


def emit_rows(rows: Sequence[dict], columns: Sequence[str], fmt: str) -> None:
    """Print flat rows as a table, CSV, or JSON lines."""
    if fmt == "json":
        emit_json(rows)
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in columns])
    else:
        cells = [[_cell(row.get(c)) for c in columns] for row in rows]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
        click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
        click.echo("  ".join("-" * w for w in widths))
        for r in cells:
            click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


def warn(message: str) -> None:
    click.echo(message, err=True)
