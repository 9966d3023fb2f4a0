"""The forget command: drop what the index holds under paths that are gone (or no longer wanted)."""

from __future__ import annotations

from pathlib import Path

import click

from .clikit import index_option, open_library
from .output import emit_record, output_options, shown, warn


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@index_option
@click.option("--missing", is_flag=True,
              help="Only files that no longer exist (under PATHS, or anywhere in the index without PATHS).")
@click.option("--dry-run", is_flag=True, help="Count what would be forgotten; change nothing.")
@output_options
def forget(paths: tuple[Path, ...], index_dir: Path | None, missing: bool, dry_run: bool, fmt: str) -> None:
    """Remove the images under PATHS from the index: rows, tags and vectors (FAISS too).

    PATHS may be folders or files that no longer exist. Only rows under them
    are touched; a stored vector stays while another image shares its content.
    Nothing on disk is deleted.

    \b
    Examples:
      zsindex forget /media/old-phone
      zsindex forget --missing --dry-run
      zsindex forget ~/Pictures/2019 --missing --index ./photos-index
    """
    report = open_library(index_dir).forget(list(paths), missing=missing, dry_run=dry_run)
    emit_record(report.to_dict(), fmt)
    if report.images == 0:
        from .errors import path_blocker

        # a path that cannot exist (a file stands where a folder on its path should): name the file, whose own
        # path is the one to give
        blocked = [f" ({b}; to forget that file, give its own path)" for b in map(path_blocker, paths) if b]
        warn("warning: the index holds no " + ("missing " if missing else "") + "images under "
             + (", ".join(map(shown, paths)) or "any path") + "".join(blocked[:1]) + "; nothing was forgotten")
