"""Commands for zero-shot labelling of an index: labels, tag, untag, tags, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .clikit import ModelChoice, ProgressBar, index_option, label_set_from, model_options, open_library
from .output import emit_json, emit_rows, output_options, warn


@click.group()
def labels() -> None:
    """Register and edit label sets (names, descriptions, prompt templates).

    \b
    Examples:
      zsindex labels add animals --labels "cat,dog,duck"
      zsindex labels add birds --file birds.json
      zsindex labels edit animals --add "horse" --drop "duck"
      zsindex labels list
    """


@labels.command("add")
@click.argument("name")
@index_option
@click.option("--labels", "-l", "label_list", help="Comma-separated labels, e.g. 'cat,dog,duck'.")
@click.option("--file", "labels_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A .txt (one label a line), .csv (label,description,...) or .json file.")
@click.option("--template", "-t", "templates", multiple=True,
              help="The set's prompt templates, with {} for the label (repeatable)  [default: 5 photo templates]")
def labels_add(name: str, index_dir: Path | None, label_list: str | None, labels_file: Path | None,
               templates: tuple[str, ...]) -> None:
    """Register a label set NAME.

    \b
    Example:
      zsindex labels add animals --labels "cat,dog,duck"
    """
    label_set = label_set_from(label_list, labels_file, ())
    shown = open_library(index_dir, create=True).labels_add(name, label_set, templates)
    warn(f"label set {name!r} version {shown['version']}: {len(shown['labels'])} labels")


@labels.command("edit")
@click.argument("name")
@index_option
@click.option("--add", "add", help="Comma-separated labels to add.")
@click.option("--add-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Labels to add, from a file.")
@click.option("--drop", multiple=True, help="A label to drop (repeatable); its tags go with it.")
def labels_edit(name: str, index_dir: Path | None, add: str | None, add_file: Path | None,
                drop: tuple[str, ...]) -> None:
    """Add or drop labels of set NAME; bumps its version.

    \b
    Example:
      zsindex labels edit animals --add "horse,goat" --drop duck
    """
    adding = label_set_from(add, add_file, ()) if (add or add_file) else None
    shown = open_library(index_dir).labels_edit(name, adding, drop)
    warn(f"label set {name!r} version {shown['version']}: {len(shown['labels'])} labels")


@labels.command("list")
@index_option
@output_options
def labels_list(index_dir: Path | None, fmt: str) -> None:
    """List label sets with their versions and sizes.

    \b
    Example:
      zsindex labels list --table
    """
    emit_rows(open_library(index_dir).labels_list(), ["name", "version", "labels"], fmt)


@labels.command("show")
@click.argument("name")
@index_option
def labels_show(name: str, index_dir: Path | None) -> None:
    """Print a label set as JSON (labels, descriptions, templates).

    \b
    Example:
      zsindex labels show animals
    """
    click.echo(json.dumps(open_library(index_dir).labels_show(name), ensure_ascii=False, indent=2))


@labels.command("remove")
@click.argument("name")
@index_option
def labels_remove(name: str, index_dir: Path | None) -> None:
    """Delete label set NAME and all its tags.

    \b
    Example:
      zsindex labels remove animals
    """
    open_library(index_dir).labels_remove(name)
    warn(f"removed label set {name!r}")


def _print_tags(rows: list[dict], fmt: str) -> None:
    if fmt == "json":
        by_image: dict[str, list] = {}
        for r in rows:
            by_image.setdefault(r["path"], []).append({"label": r["label"], "score": r["score"],
                                                      "cosine": r["cosine"]})
        emit_json({"path": p, "tags": t} for p, t in by_image.items())
    else:
        emit_rows(rows, ["path", "label", "score", "cosine"], fmt)


@click.command()
@click.option("--labels", "-l", "label_name", required=True,
              help="A registered label set, or an ad-hoc list 'cat,dog,duck' (registered under that name).")
@index_option
@click.option("--mode", type=click.Choice(["single", "multi"]), default="single", show_default=True,
              help="single: the best label per image (softmax); multi: any number of labels per image.")
@click.option("--threshold", type=float,
              help="One raw cosine cut-off for every label, instead of the calibrated per-label thresholds.")
@click.option("--path", "path_glob", help="Only tag images whose path matches this glob (as search --path reads it).")
@click.option("--summary", is_flag=True, help="Print only the counts per label, not the tags of every image.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@output_options
def tag(label_name: str, index_dir: Path | None, mode: str, threshold: float | None, path_glob: str | None,
        summary: bool, quiet: bool, fmt: str) -> None:
    """Tag every indexed image with labels, from the stored vectors (no image is re-read).

    Each label gets its own threshold, calibrated on its score distribution
    over the images being tagged; images that pass no threshold stay untagged
    ("none of these"). Re-tagging recomputes only labels that changed.

    \b
    Examples:
      zsindex tag --labels animals
      zsindex tag --labels "cat,dog,duck" --mode multi --table
      zsindex tag --labels animals --path '*/2023/*' --summary
    """
    lib = open_library(index_dir)
    bar = ProgressBar(quiet)
    try:
        report = lib.tag(label_name, mode=mode, threshold=threshold, path=path_glob, progress=bar)
    finally:
        bar.close()
    if not summary:
        _print_tags(lib.tag_rows(label_name), fmt)
    warn(json.dumps(report.summary(), ensure_ascii=False))
    if report.warning:
        warn(f"warning: {report.warning}")


@click.command()
@click.option("--labels", "-l", "label_name", required=True, help="The label set whose tags to remove.")
@index_option
def untag(label_name: str, index_dir: Path | None) -> None:
    """Remove every tag of a label set (the set itself stays).

    \b
    Example:
      zsindex untag --labels animals
    """
    n = open_library(index_dir).untag(label_name)
    warn(f"removed {n} tags")


@click.command()
@click.option("--labels", "-l", "label_name", help="Only this label set.")
@index_option
@output_options
def tags(label_name: str | None, index_dir: Path | None, fmt: str) -> None:
    """Count tagged images per label.

    \b
    Example:
      zsindex tags --table
    """
    counts = open_library(index_dir).tag_counts(label_name)
    emit_rows([{"label": k, "images": v} for k, v in counts.items()], ["label", "images"], fmt)


@click.command()
@click.option("--labels", "-l", "label_name", required=True, help="The label set to export.")
@index_option
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of CSV.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row (the default).")
@click.option("--out", "-o", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this new file instead of stdout (an existing file needs --force).")
@click.option("--force", is_flag=True, help="Replace the --out file if it exists.")
def export(label_name: str, index_dir: Path | None, as_json: bool, as_csv: bool, out_path: Path | None,
           force: bool) -> None:
    """Write the tags of a label set: path, label, score.

    \b
    Examples:
      zsindex export --labels animals --csv > tags.csv
      zsindex export --labels animals --json -o tags.jsonl
    """
    import sys

    from .owned import new_output_file

    rows = open_library(index_dir).tag_rows(label_name)
    if out_path is None or str(out_path) == "-":
        _write_export(rows, as_json and not as_csv, sys.stdout)
        return
    with new_output_file(out_path, force) as out:
        _write_export(rows, as_json and not as_csv, out)


def _write_export(rows: list[dict], as_json: bool, out: Any) -> None:
    import csv

    if as_json:
        for r in rows:
            out.write(json.dumps({"path": r["path"], "label": r["label"], "score": r["score"]},
                                 ensure_ascii=False) + "\n")
        return
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "label", "score"])
    for r in rows:
        writer.writerow([r["path"], r["label"], f"{r['score']:.6f}"])


@click.command("eval")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--labels", "-l", "label_list",
              help="Labels: a label set of --index, or 'a,b,c'  [default: the class names]")
@click.option("--labels-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Labels from a file.")
@click.option("--raw-names", is_flag=True, help="Keep folder names as they are (default: _ and - become spaces).")
@click.option("--templates", "template_specs", multiple=True,
              help="A template set to compare: names, photo, ensemble, or templates joined by '|' (repeatable).")
@click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Use the vectors of images already in this index (nothing is written to it).")
@click.option("--confusion", "confusion_png", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a confusion-matrix plot (PNG) of the first template set.")
@click.option("--confusion-csv", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the confusion matrix as CSV.")
@click.option("--force", is_flag=True, help="Replace existing --confusion / --confusion-csv files.")
@click.option("--json", "as_json", is_flag=True, help="Print every figure as one JSON object.")
@model_options
def eval_command(source: Path, label_list: str | None, labels_file: Path | None, raw_names: bool,
                 template_specs: tuple[str, ...], index_dir: Path | None, confusion_png: Path | None,
                 confusion_csv: Path | None, force: bool, as_json: bool, choice: ModelChoice) -> None:
    """Measure zero-shot accuracy on labelled images before tagging a library.

    SOURCE is a folder with one sub-folder per class, or a CSV of
    path,label[,label...] (paths relative to the CSV). Reports top-1/top-5
    accuracy, mean per-class accuracy, per-class precision and recall, and
    mean average precision. Images are embedded once and cached by content,
    so a second run re-embeds nothing.

    \b
    Examples:
      zsindex eval ./fruit --templates names --templates photo --templates ensemble
      zsindex eval labels.csv --labels animals --index ./photos-index --json
      zsindex eval ./poses --confusion poses.png --confusion-csv poses.csv
    """
    from .evaluate import evaluate, load_dataset, parse_template_spec, save_confusion_png
    from .library import Library
    from .owned import check_new_output, new_output_file

    for target in (confusion_png, confusion_csv):
        if target is not None:
            check_new_output(target, force)  # before the work, so a refusal costs nothing
    data = load_dataset(source, raw_names)
    lib = Library(index_dir, create=False) if index_dir else None
    label_set = None
    if label_list and lib is not None and "," not in label_list:
        from .labels import Label, LabelSet

        shown = lib.labels_show(label_list)
        label_set = LabelSet([Label(x["label"], tuple(x["descriptions"]), tuple(x["templates"]))
                              for x in shown["labels"]])
    elif label_list or labels_file:
        label_set = label_set_from(label_list, labels_file, ())
    embedder = lib.embedder if lib is not None and not choice.model else choice.load()
    sets = [parse_template_spec(t) for t in template_specs]
    out = evaluate(embedder, data, label_set, sets, lib)
    first_name, first = next(iter(out["results"].items()))
    if confusion_png:
        save_confusion_png(first["confusion"], out["classes"], confusion_png, f"{source.name}: {first_name}")
    if confusion_csv:
        import csv

        with new_output_file(confusion_csv, force=True) as f:  # checked above
            writer = csv.writer(f)
            writer.writerow(["true \\ predicted", *out["classes"]])
            for name, row in zip(out["classes"], first["confusion"]):
                writer.writerow([name, *row.tolist()])
    for path in out["skipped"]:
        warn(f"skipped {path}: could not be read")
    if as_json:
        emit_json([{"source": str(source), "classes": out["classes"], "skipped": len(out["skipped"]),
                    "results": {k: {**v, "confusion": v["confusion"].tolist()} for k, v in out["results"].items()}}])
        return
    rows = [{"templates": k, "top1": v["top1"], "top5": v["top5"], "mean_per_class": v["mean_per_class_accuracy"],
             "mAP": v["mean_average_precision"], "images": v["images"]} for k, v in out["results"].items()]
    emit_rows(rows, ["templates", "top1", "top5", "mean_per_class", "mAP", "images"], "table")
    click.echo("")
    per = [{"class": c, **v} for c, v in first["per_class"].items()]
    emit_rows(per, ["class", "support", "precision", "recall"], "table")


def register(group: click.Group) -> None:
    for command in (labels, tag, untag, tags, export, eval_command):
        group.add_command(command)
