"""Commands that meet other photo programs: tags into XMP sidecars, the user's keywords back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .clikit import GLOB, Partial, ProgressBar, cli_text, index_option, open_library, ranged, warn_unmatched_path
from .errors import plural
from .output import emit_record, emit_rows, output_options, shown, warn


@click.group()
def sidecars() -> None:
    """Write zsindex's tags into XMP sidecars for digiKam, darktable, Lightroom; undo it.

    \b
    Examples:
      zsindex sidecars write --labels animals --dry-run --json
      zsindex sidecars write --labels animals --min-score 0.7 --path '*/2024/*'
      zsindex sidecars write --labels animals --naming base      # IMG_1234.xmp (Lightroom, Capture One)
      zsindex sidecars remove                                     # take out all that zsindex wrote
    """


def _print_report(report: Any, fmt: str) -> None:
    """The report: as JSON, every sidecar too; as CSV or a table, its counts. Skipped sidecars are listed on
    stderr and end the command with exit code 3 (see _end), a dry run's as the real run's would."""
    record = report.to_dict()
    if record.get("note"):
        record["note"] = cli_text(record["note"])
    if fmt != "json":
        record = {k: v for k, v in record.items() if not isinstance(v, (list, dict))}
    emit_record(record, fmt)
    if report.dry_run:
        warn("dry run: nothing was written")
    if report.note:
        warn(report.note)
    for path, reason in report.skipped_files[:20]:
        warn(f"skipped {shown(path)}: {reason}")
    if len(report.skipped_files) > 20:
        warn(f"... and {len(report.skipped_files) - 20} more (see --json)")


def _end(report: Any) -> None:
    """Exit code 3 when sidecars were skipped (or, in a dry run, would be): the others are done."""
    if report.skipped and report.dry_run:
        raise Partial(f"{plural(report.skipped, 'sidecar')} would be skipped and left untouched")
    if report.skipped:
        raise Partial(f"{plural(report.skipped, 'sidecar was', 'sidecars were')} skipped and left untouched; "
                      "the others are done")


@sidecars.command("write")
@index_option
@click.option("--labels", "-l", required=True, help="The label set whose tags are written (see `zsindex tag`).")
@click.option("--path", "path_glob", type=GLOB, help="Only images whose path matches this glob, e.g. '*/2024/*'.")
@click.option("--min-score", type=ranged("min_score", "sidecars_write"),
              help="Only tags scoring at least this (the tag's score, 0-1).")
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@click.option("--naming", type=click.Choice(["ext", "base"]), default="ext", show_default=True,
              help="New sidecars as IMG_1234.JPG.xmp (ext: digiKam, darktable) or IMG_1234.xmp (base: Lightroom). "
              "An existing sidecar of either naming is updated.")
@click.option("--prefix", default="zsindex", show_default=True,
              help="Root of the hierarchical keywords (zsindex|SET|label); 'none' for SET|label.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@output_options
def sidecars_write(index_dir: Path | None, labels: str, path_glob: str | None, min_score: float | None,
                   dry_run: bool, naming: str, prefix: str, quiet: bool, fmt: str) -> None:
    """Write the current tags of a label set into each image's XMP sidecar.

    Adds dc:subject (flat keywords), lr:hierarchicalSubject (zsindex|SET|label)
    and digiKam:TagsList (zsindex/SET/label). An existing sidecar is updated,
    never replaced: everything else in it stays. Keywords zsindex wrote before
    and that the tags no longer call for are taken out; the user's are kept.

    \b
    Examples:
      zsindex sidecars write --labels animals
      zsindex sidecars write --labels animals --dry-run --json
    """
    bar = ProgressBar(quiet)
    lib = open_library(index_dir)
    try:
        report = lib.sidecars_write(
            labels, path=path_glob, min_score=min_score, dry_run=dry_run, naming=naming,
            prefix=None if prefix.lower() == "none" else prefix, progress=bar)
    finally:
        bar.close()
    _print_report(report, fmt)
    warn_unmatched_path(lib, path_glob)
    _end(report)


@sidecars.command("remove")
@index_option
@click.option("--labels", "-l", help="Only the keywords of this label set  [default: every set]")
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@output_options
def sidecars_remove(index_dir: Path | None, labels: str | None, dry_run: bool, quiet: bool, fmt: str) -> None:
    """Take out of the sidecars exactly the keywords zsindex wrote.

    A sidecar zsindex created and that holds nothing else afterwards is
    deleted; any other keeps all that is not zsindex's.

    \b
    Examples:
      zsindex sidecars remove
      zsindex sidecars remove --labels animals --dry-run
    """
    bar = ProgressBar(quiet)
    try:
        report = open_library(index_dir).sidecars_remove(labels, dry_run=dry_run, progress=bar)
    finally:
        bar.close()
    _print_report(report, fmt)
    _end(report)


@click.command("keywords")
@index_option
@click.option("--path", "path_glob", type=GLOB, help="Only images whose path matches this glob.")
@output_options
def keywords(index_dir: Path | None, path_glob: str | None, fmt: str) -> None:
    """Count the user's own keywords (from sidecars, embedded XMP, IPTC) read by ingest.

    zsindex's own tags are not counted here (see `zsindex tags`).

    \b
    Examples:
      zsindex keywords --table
      zsindex search "on the beach" --keyword holiday
    """
    lib = open_library(index_dir)
    counts = lib.keyword_counts(path=path_glob)
    warn_unmatched_path(lib, path_glob)
    emit_rows([{"keyword": k, "images": n} for k, n in counts.items()], ["keyword", "images"], fmt)


def register(group: click.Group) -> None:
    for command in (sidecars, keywords):
        group.add_command(command)


def eval_keywords(label_set: str | None, source: Path | None, index_dir: Path | None, fmt: str) -> None:
    """`zsindex eval --keywords SET`: the set's tags and raw cut-offs against the user's keywords."""
    from .errors import UsageError

    if label_set is None or source is not None:
        raise UsageError("give either SOURCE (a folder or CSV of labelled images) or --keywords SET, not both")
    out = open_library(index_dir).eval_keywords(label_set)
    if out.get("note"):
        out["note"] = cli_text(out["note"])
        warn(out["note"])
    if fmt == "json":
        emit_record(out, "json")
        return
    methods = list(out["micro"])
    rows = [{"label": label, "positives": v["positives"],
             **{m: f"{v[m]['precision']:.2f}/{v[m]['recall']:.2f}/{v[m]['f1']:.2f}" for m in methods}}
            for label, v in out["labels"].items()]
    rows.append({"label": "(micro)", "positives": sum(v["positives"] for v in out["labels"].values()),
                 **{m: f"{v['precision']:.2f}/{v['recall']:.2f}/{v['f1']:.2f}" for m, v in out["micro"].items()}})
    what = "the current tags and of raw cut-offs" if "tags" in methods else "raw cut-offs"
    click.echo(f"{out['images']} keyworded images; precision/recall/F1 of {what}", err=True)
    emit_rows(rows, ["label", "positives", *methods], fmt)
