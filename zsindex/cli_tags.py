"""Commands for zero-shot labelling of an index: labels, tag, untag, tags, export."""

from __future__ import annotations

import os
from pathlib import Path

import click

from .clikit import (
    GLOB,
    ModelChoice,
    Partial,
    ProgressBar,
    ZsGroup,
    index_folder_type,
    index_option,
    label_set_from,
    megapixels_option,
    model_options,
    open_library,
    ranged,
    warn_unmatched_path,
)
from .errors import UsageError, plural
from .output import emit_json, emit_record, emit_rows, json_line, output_options, shown, warn


@click.group(cls=ZsGroup)
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
@click.option("--labels-file", "--file", "labels_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A .txt (one label a line), .csv (label,description,...) or .json file (--file is the same).")
@click.option("--template", "-t", "templates", multiple=True,
              help="The set's prompt templates, with {} for the label (repeatable)  [default: 5 photo templates]")
@click.option("--auto", is_flag=True, help="Tag new images with this set after each ingest `zsindex serve` runs.")
@output_options
def labels_add(name: str, index_dir: Path | None, label_list: str | None, labels_file: Path | None,
               templates: tuple[str, ...], auto: bool, fmt: str) -> None:
    """Register a label set NAME.

    A label with a comma is quoted as in CSV: --labels '"red, dark",blue'.

    \b
    Examples:
      zsindex labels add animals --labels "cat,dog,duck"
      zsindex labels add animals --labels "cat,dog,duck" --auto
    """
    label_set = label_set_from(label_list, labels_file, (), ("label_list", "labels_file"))
    lib = open_library(index_dir, create=True)
    info = lib.labels_add(name, label_set, templates)
    if auto:
        lib.labels_auto(name, True)
    emit_record({"name": name, "version": info["version"], "labels": len(info["labels"]), "auto": auto}, fmt)


@labels.command("edit")
@click.argument("name")
@index_option
@click.option("--add", "add", help="Comma-separated labels to add.")
@click.option("--add-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Labels to add, from a file.")
@click.option("--drop", multiple=True, help="A label to drop (repeatable); its tags go with it.")
@click.option("--auto/--no-auto", default=None, help="Tag new images with this set after each ingest the server runs.")
@output_options
def labels_edit(name: str, index_dir: Path | None, add: str | None, add_file: Path | None,
                drop: tuple[str, ...], auto: bool | None, fmt: str) -> None:
    """Add or drop labels of set NAME; bumps its version.

    \b
    Example:
      zsindex labels edit animals --add "horse,goat" --drop duck
    """
    if add is None and add_file is None and not drop and auto is None:
        raise UsageError("nothing to do: give --add LABELS, --add-file FILE, --drop LABEL or --auto/--no-auto")
    empty = [d for d in drop if not d.strip()]
    if empty:
        raise UsageError("--drop is empty; an empty label is not a label: give the label to drop")
    adding = label_set_from(add, add_file, (), ("add", "add_file")) if (add is not None or add_file) else None
    lib = open_library(index_dir)
    if auto is not None:
        lib.labels_auto(name, auto)
    info = lib.labels_edit(name, adding, drop) if (adding or drop) else lib.labels_show(name)
    emit_record({"name": name, "version": info["version"], "labels": len(info["labels"])}, fmt)


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
@output_options
def labels_show(name: str, index_dir: Path | None, fmt: str) -> None:
    """Print a label set: its labels with their descriptions and templates.

    JSON gives the whole set as one object; a table or CSV has a row per label.

    \b
    Example:
      zsindex labels show animals --json
    """
    info = open_library(index_dir).labels_show(name)
    if fmt == "json":
        emit_json([info])
        return
    rows = [{"set": info["name"], "version": info["version"], "label": lab["label"],
             "descriptions": " | ".join(lab["descriptions"]),
             "templates": " | ".join(lab["templates"] or info["templates"])} for lab in info["labels"]]
    emit_rows(rows, ["set", "version", "label", "descriptions", "templates"], fmt)


@labels.command("remove")
@click.argument("name")
@index_option
@output_options
def labels_remove(name: str, index_dir: Path | None, fmt: str) -> None:
    """Delete label set NAME and all its tags.

    \b
    Example:
      zsindex labels remove animals
    """
    open_library(index_dir).labels_remove(name)
    emit_record({"removed": name}, fmt)


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
              help="A registered label set, or an ad-hoc list 'cat,dog,duck' or single label 'cat' (registered "
              "under that name; quote a label holding a comma as in CSV).")
@index_option
@click.option("--mode", type=click.Choice(["single", "multi"]), default="single", show_default=True,
              help="single: the best label per image (softmax); multi: any number of labels per image.")
@click.option("--threshold", type=ranged("threshold"),
              help="One raw cosine cut-off for every label, instead of the calibrated per-label thresholds.")
@click.option("--path", "path_glob", type=GLOB,
              help="Only tag images whose path matches this glob (as search --path reads it).")
@click.option("--calibrate-from-keywords", "from_keywords", is_flag=True,
              help="Learn each label's threshold from the images the user keyworded with it (where there are enough).")
@click.option("--summary", is_flag=True, help="Print the number of images per label instead of every tag.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@output_options
def tag(label_name: str, index_dir: Path | None, mode: str, threshold: float | None, path_glob: str | None,
        from_keywords: bool, summary: bool, quiet: bool, fmt: str) -> None:
    """Tag every indexed image with labels, from the stored vectors (no image is re-read).

    Each label gets its own threshold, calibrated on its score distribution
    over the images being tagged; images that pass no threshold stay untagged
    ("none of these"). Re-tagging recomputes only labels that changed. Prints
    the tags of the images tagged (those matching --path when given), or with
    --summary one row per label counting those images; the run's report,
    with the same counts, goes to stderr.

    \b
    Examples:
      zsindex tag --labels animals
      zsindex tag --labels "cat,dog,duck" --mode multi --table
      zsindex tag --labels animals --path '*/2023/*' --summary
      zsindex tag --labels animals --mode multi --calibrate-from-keywords
    """
    lib = open_library(index_dir)
    bar = ProgressBar(quiet)
    try:
        report = lib.tag(label_name, mode=mode, threshold=threshold, path=path_glob, progress=bar,
                         calibrate_from_keywords=from_keywords)
    finally:
        bar.close()
    warn_unmatched_path(lib, path_glob)
    name = report.label_set
    registered = lib.has_label_set(name)  # an ad-hoc list that matched no image registers no set: no rows
    if summary:
        emit_rows(lib.tag_summary(name, path=path_glob) if registered else [], ["set", "label", "images"], fmt)
    else:
        _print_tags(lib.tag_rows(name, path=path_glob) if registered else [], fmt)
    warn(json_line(report.summary()))
    for note in report.notes:
        warn(f"note: {note}")
    if report.warning:
        warn(f"warning: {report.warning}")


@click.command()
@click.option("--labels", "-l", "label_name", required=True, help="The label set whose tags to remove.")
@index_option
@output_options
def untag(label_name: str, index_dir: Path | None, fmt: str) -> None:
    """Remove every tag of a label set (the set itself stays).

    \b
    Example:
      zsindex untag --labels animals
    """
    emit_record({"label_set": label_name, "removed_tags": open_library(index_dir).untag(label_name)}, fmt)


@click.command()
@click.option("--labels", "-l", "label_name", help="Only this label set.")
@index_option
@output_options
def tags(label_name: str | None, index_dir: Path | None, fmt: str) -> None:
    """Count tagged images per label, one row per label set and label.

    \b
    Example:
      zsindex tags --table
    """
    emit_rows(open_library(index_dir).tag_summary(label_name), ["set", "label", "images"], fmt)


@click.command()
@click.option("--labels", "-l", "label_name", required=True, help="The label set to export.")
@index_option
@click.option("--out", "-o", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this new file instead of stdout (CSV for a .csv name, else JSON lines, unless "
              "--csv/--json/--table; an existing file needs --force).")
@click.option("--force", is_flag=True, help="Replace the --out file if it exists.")
@output_options
def export(label_name: str, index_dir: Path | None, out_path: Path | None, force: bool, fmt: str) -> None:
    """Write the tags of a label set: path, label, score (one row per tag).

    \b
    Examples:
      zsindex export --labels animals --csv > tags.csv
      zsindex export --labels animals --json -o tags.jsonl
    """
    from click.core import ParameterSource

    from .owned import check_new_output, new_output_file

    to_file = out_path is not None and str(out_path) != "-"
    if out_path is not None and to_file:
        check_new_output(out_path, force)  # before the work, so a refusal costs nothing
    rows = [{"path": r["path"], "label": r["label"], "score": r["score"]}
            for r in open_library(index_dir).tag_rows(label_name)]
    if out_path is None or not to_file:
        emit_rows(rows, ["path", "label", "score"], fmt)
        return
    if click.get_current_context().get_parameter_source("fmt") == ParameterSource.DEFAULT:
        fmt = "csv" if out_path.suffix.lower() == ".csv" else "json"  # a file is not a terminal: its name decides
    with new_output_file(out_path, force) as out:
        emit_rows(rows, ["path", "label", "score"], fmt, file=out)


@click.command("eval")
@click.argument("source", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--keywords", "keyword_set",
              help="Instead of SOURCE: measure this label set of --index against the user's own keywords.")
@click.option("--labels", "-l", "label_list",
              help="Labels: a label set of --index, or 'a,b,c'  [default: the class names]")
@click.option("--labels-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Labels from a file.")
@click.option("--raw-names", is_flag=True, help="Keep folder names as they are (default: _ and - become spaces).")
@click.option("--templates", "template_specs", multiple=True,
              help="A template set to compare: names, photo, ensemble, or templates joined by '|' (repeatable).")
@click.option("--index", "index_dir", type=index_folder_type(),
              help="Use the vectors of images already in this index (nothing is written to it).")
@click.option("--confusion", "confusion_png", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a confusion-matrix plot of the first template set: NAME.png for a NAME without an "
              "extension, else the format the extension names (.png, .svg, .pdf ...).")
@click.option("--confusion-csv", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the confusion matrix as CSV.")
@click.option("--force", is_flag=True, help="Replace existing --confusion / --confusion-csv files.")
@megapixels_option
@output_options
@model_options
def eval_command(source: Path | None, keyword_set: str | None, label_list: str | None, labels_file: Path | None,
                 raw_names: bool, template_specs: tuple[str, ...], index_dir: Path | None,
                 confusion_png: Path | None, confusion_csv: Path | None, force: bool, max_megapixels: float,
                 fmt: str, choice: ModelChoice) -> None:
    """Measure zero-shot accuracy on labelled images before tagging a library.

    SOURCE is a folder with one sub-folder per class, or a CSV of
    path,label[,label...] (paths relative to the CSV). Reports top-1/top-5
    accuracy, mean per-class accuracy, per-class precision and recall, and
    mean average precision. Images are embedded once and cached by content,
    so a second run re-embeds nothing. JSON gives every figure as one object
    (the confusion matrix included); CSV a row per template set and class; the
    table a summary per template set, then per class for the first set.

    \b
    Examples:
      zsindex eval ./fruit --templates names --templates photo --templates ensemble
      zsindex eval labels.csv --labels animals --index ./photos-index --json
      zsindex eval ./poses --confusion poses.png --confusion-csv poses.csv
      zsindex eval --keywords animals --index ./photos-index     # against the keywords you gave
    """
    if keyword_set is not None or source is None:
        from .cli_sidecars import eval_keywords

        return eval_keywords(keyword_set, source, index_dir, fmt)
    from .evaluate import confusion_plot_target, evaluate, load_dataset, parse_template_spec, save_confusion_png
    from .owned import check_new_output, new_output_file

    plot_format = "png"
    if confusion_png is not None:  # the exact name written (NAME gets .png), its format checked before the work
        confusion_png, plot_format = confusion_plot_target(confusion_png)
    if confusion_png is not None and confusion_csv is not None and \
            os.path.abspath(confusion_png) == os.path.abspath(confusion_csv):
        raise UsageError(f"confusion_png= and confusion_csv= name the same file {shown(confusion_png)}; give two names")
    for target in (confusion_png, confusion_csv):
        if target is not None:
            check_new_output(target, force)  # before the work, so a refusal costs nothing
    data = load_dataset(source, raw_names)
    lib = open_library(index_dir) if index_dir else None
    label_set = None
    if label_list and lib is not None and lib.has_label_set(label_list):
        from .labels import Label, LabelSet

        info = lib.labels_show(label_list)
        label_set = LabelSet([Label(x["label"], tuple(x["descriptions"]), tuple(x["templates"]))
                              for x in info["labels"]])
    elif label_list or labels_file:
        label_set = label_set_from(label_list, labels_file, ())
    embedder = lib.embedder if lib is not None and not choice.model else choice.load()
    sets = [parse_template_spec(t) for t in template_specs]
    out = evaluate(embedder, data, label_set, sets, lib, max_megapixels)
    first_name, first = next(iter(out["results"].items()))
    if confusion_png:
        save_confusion_png(first["confusion"], [shown(c) for c in out["classes"]], confusion_png,
                           shown(f"{source.name}: {first_name}"), plot_format, force)
    if confusion_csv:
        import csv

        with new_output_file(confusion_csv, force) as f:  # checked above too
            writer = csv.writer(f)
            writer.writerow(["true \\ predicted", *map(shown, out["classes"])])  # names in the escaped form
            for name, row in zip(out["classes"], first["confusion"]):
                writer.writerow([shown(name), *row.tolist()])
    for path, reason in zip(out["skipped"], out["skipped_reasons"]):
        warn(f"skipped {shown(path)}: {reason}")
    _print_eval(source, out, fmt)
    if out["skipped"]:
        raise Partial(f"{plural(len(out['skipped']), 'image')} could not be read; the figures leave them out")


def _print_eval(source: Path, out: dict, fmt: str) -> None:
    if fmt == "json":
        emit_json([{"source": str(source), "classes": out["classes"], "skipped": len(out["skipped"]),
                    "results": {k: {**v, "confusion": v["confusion"].tolist()} for k, v in out["results"].items()}}])
        return
    rows = [{"templates": k, "top1": v["top1"], "top5": v["top5"], "mean_per_class": v["mean_per_class_accuracy"],
             "mAP": v["mean_average_precision"], "images": v["images"]} for k, v in out["results"].items()]
    columns = ["templates", "top1", "top5", "mean_per_class", "mAP", "images"]
    if fmt == "csv":
        per = [{**row, "class": c, **v} for row, res in zip(rows, out["results"].values())
               for c, v in res["per_class"].items()]
        emit_rows(per, [*columns, "class", "support", "precision", "recall"], "csv")
        return
    emit_rows(rows, columns, "table")
    click.echo("")
    first = next(iter(out["results"].values()))
    emit_rows([{"class": c, **v} for c, v in first["per_class"].items()], ["class", "support", "precision", "recall"],
              "table")


def register(group: click.Group) -> None:
    for command in (labels, tag, untag, tags, export, eval_command):
        group.add_command(command)
