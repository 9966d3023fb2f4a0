"""Commands that meet other photo programs: tags into XMP sidecars, the user's keywords back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .clikit import ProgressBar, index_option, open_library
from .output import emit_rows, output_options, warn


def _json(obj: Any) -> str:
    """JSON text; names that are not UTF-8 keep their bytes as \\udcXX escapes (read back by any JSON parser
    into the same surrogate-escaped str that os.fsencode turns into the original bytes)."""
    text = json.dumps(obj, ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True, default=str)


def _shown(path: str) -> str:
    """A path for a message line: bytes that are not UTF-8 shown as \\xNN."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


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


def _print_report(report: Any, as_json: bool) -> None:
    if as_json:
        click.echo(_json(report.to_dict()))
    else:
        counts = ", ".join(f"{k} {v}" for k, v in report.to_dict().items() if isinstance(v, int)
                           and not isinstance(v, bool))
        click.echo(counts + f" in {report.seconds:.1f}s" + (" (dry run: nothing written)" if report.dry_run else ""))
    for path, reason in report.skipped_files[:20]:
        warn(f"skipped {_shown(path)}: {reason}")
    if len(report.skipped_files) > 20:
        warn(f"... and {len(report.skipped_files) - 20} more (see --json)")


@sidecars.command("write")
@index_option
@click.option("--labels", "-l", required=True, help="The label set whose tags are written (see `zsindex tag`).")
@click.option("--path", "path_glob", help="Only images whose path matches this glob, e.g. '*/2024/*'.")
@click.option("--min-score", type=float, help="Only tags scoring at least this (the tag's score, 0-1).")
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@click.option("--naming", type=click.Choice(["ext", "base"]), default="ext", show_default=True,
              help="New sidecars as IMG_1234.JPG.xmp (ext: digiKam, darktable) or IMG_1234.xmp (base: Lightroom). "
              "An existing sidecar of either naming is updated.")
@click.option("--prefix", default="zsindex", show_default=True,
              help="Root of the hierarchical keywords (zsindex|SET|label); 'none' for SET|label.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object, with every sidecar.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def sidecars_write(index_dir: Path | None, labels: str, path_glob: str | None, min_score: float | None,
                   dry_run: bool, naming: str, prefix: str, as_json: bool, quiet: bool) -> None:
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
    try:
        report = open_library(index_dir).sidecars_write(
            labels, path=path_glob, min_score=min_score, dry_run=dry_run, naming=naming,
            prefix=None if prefix.lower() == "none" else prefix, progress=bar)
    finally:
        bar.close()
    _print_report(report, as_json)


@sidecars.command("remove")
@index_option
@click.option("--labels", "-l", help="Only the keywords of this label set  [default: every set]")
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object, with every sidecar.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def sidecars_remove(index_dir: Path | None, labels: str | None, dry_run: bool, as_json: bool, quiet: bool) -> None:
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
    _print_report(report, as_json)


@click.command("keywords")
@index_option
@click.option("--path", "path_glob", help="Only images whose path matches this glob.")
@output_options
def keywords(index_dir: Path | None, path_glob: str | None, fmt: str) -> None:
    """Count the user's own keywords (from sidecars, embedded XMP, IPTC) read by ingest.

    zsindex's own tags are not counted here (see `zsindex tags`).

    \b
    Examples:
      zsindex keywords --table
      zsindex search "on the beach" --keyword holiday
    """
    counts = open_library(index_dir).keyword_counts(path=path_glob)
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
    if fmt == "json":
        click.echo(_json(out))
        return
    methods = list(out["micro"])
    rows = [{"label": label, "positives": v["positives"],
             **{m: f"{v[m]['precision']:.2f}/{v[m]['recall']:.2f}/{v[m]['f1']:.2f}" for m in methods}}
            for label, v in out["labels"].items()]
    rows.append({"label": "(micro)", "positives": sum(v["positives"] for v in out["labels"].values()),
                 **{m: f"{v['precision']:.2f}/{v['recall']:.2f}/{v['f1']:.2f}" for m, v in out["micro"].items()}})
    click.echo(f"{out['images']} keyworded images; precision/recall/F1 of the current tags and of raw cut-offs",
               err=True)
    emit_rows(rows, ["label", "positives", *methods], fmt)
