"""The zsindex command line: parse, call the library, format, map errors to exit codes.

Heavy modules (torch, open_clip, faiss) are imported inside commands only, so
``zsindex --help`` stays fast.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from . import __version__, config, warm
from .clikit import (
    GLOB,
    ModelChoice,
    Partial,
    ProgressBar,
    ZsGroup,
    cli_text,
    index_option,
    label_set_from,
    megapixels_option,
    model_options,
    open_library,
    ranged,
    root_db,
    warn_unmatched_path,
)
from .errors import UsageError, plural
from .output import emit_json, emit_paths, emit_record, emit_rows, output_options, shown, warn

if TYPE_CHECKING:
    from .ingest import IngestReport


@click.group(cls=ZsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zsindex")
@click.option("--db", metavar="URL",
              help="Keep the index's data in a database server, e.g. postgresql+psycopg://user@host/photos "
                   "[env ZSINDEX_DB]; the --index folder then holds only this machine's vector cache.")
def cli(db: str | None) -> None:
    """Semantic search and zero-shot labelling of image collections with OpenCLIP.

    \b
    Try it with no download:   zsindex demo
    Label a few files:         zsindex classify photo.jpg --labels "cat,dog,duck"
    """


@cli.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--labels", "-l", help="Comma-separated labels, e.g. 'cat,dog,duck'.")
@click.option("--labels-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Labels from a .txt (one a line), .csv (label,description...) or .json file.")
@click.option("--template", "-t", "templates", multiple=True,
              help="Prompt template with {} for the label; repeat to ensemble. [default: 5 photo templates]")
@click.option("--top-k", "-k", "top_k", type=ranged("top_k", integer=True),
              help="Show only the best K labels per image.")
@megapixels_option
@output_options
@model_options
def classify(images: tuple[Path, ...], labels: str | None, labels_file: Path | None, templates: tuple[str, ...],
             top_k: int | None, max_megapixels: float, fmt: str, choice: ModelChoice) -> None:
    """Score image files against labels, best label first.

    Scores are softmax probabilities over the label set (CLIP's
    logit_scale x cosine); the raw cosine is shown too. Unreadable files are
    reported on stderr, the rest are still classified, and the exit code is 3.
    A label with a comma is quoted as in CSV: -l '"red, dark",blue'.

    \b
    Examples:
      zsindex classify photo.jpg --labels "cat,dog,duck"
      zsindex classify *.jpg --labels-file animals.csv --top-k 3 --table
      zsindex classify img.png -l "red circle,blue square" -m demo -t "a drawing of a {}."
    """
    from .library import classify as run_classify

    label_set = label_set_from(labels, labels_file, templates)
    results = run_classify(list(images), label_set, top_k=top_k, embedder=choice.load(), max_megapixels=max_megapixels)
    good = [r for r in results if r.error is None]
    if fmt == "json":
        emit_json(r.to_dict() for r in good)
    else:
        rows = [{"path": r.path, "rank": n, "label": s.label, "score": s.score, "cosine": s.cosine}
                for r in good for n, s in enumerate(r.labels, start=1)]
        emit_rows(rows, ["path", "rank", "label", "score", "cosine"], fmt)
    failed = [r for r in results if r.error is not None]
    for r in failed:
        warn(f"skipped {shown(r.path)}: {r.error}")
    if failed:
        raise Partial(f"{len(failed)} of {plural(len(results), 'image')} could not be read")


@cli.command()
@click.argument("texts", nargs=-1, required=True)
@click.option("--image", "-i", "images", multiple=True, required=True, type=click.Path(path_type=Path),
              help="An image file (repeatable).")
@megapixels_option
@output_options
@model_options
def similarity(texts: tuple[str, ...], images: tuple[Path, ...], max_megapixels: float, fmt: str,
               choice: ModelChoice) -> None:
    """Print the cosine similarity of every image against every TEXT: one row per image and text.

    Columns image, text, cosine (the texts are values, never column names, so
    any text is safe in every format); rows by image, then text, as given. A
    text that starts with "-" goes after "--", and the images before it:
    zsindex similarity -i img.png -- "-a cat".

    \b
    Example:
      zsindex similarity "a cat" "a dog" -i cat.jpg -i dog.jpg --table
    """
    from .library import similarity as run_similarity

    sim = run_similarity(list(images), list(texts), embedder=choice.load(), max_megapixels=max_megapixels)
    rows = [{"image": img, "text": t, "cosine": float(sim.cosine[i, j])}
            for i, img in enumerate(sim.images) for j, t in enumerate(sim.texts)]
    emit_rows(rows, ["image", "text", "cosine"], fmt)
    for path, reason in sim.errors.items():
        warn(f"skipped {shown(path)}: {reason}")
    if sim.errors:
        raise Partial(f"{len(sim.errors)} of {plural(len(images), 'image')} could not be read")


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@index_option
@click.option("--exclude", "-x", multiple=True, type=GLOB,
              help="Glob of files or folders to leave out (repeatable), e.g. '*/.thumbnails'.")
@click.option("--follow-symlinks", is_flag=True,
              help="Follow symbolic links (each real folder is entered once, so loops end).")
@click.option("--batch-size", type=ranged("batch_size", integer=True), default=config.DEFAULT_BATCH_SIZE,
              show_default=True, help="Images per model batch and per database transaction.")
@click.option("--workers", type=ranged("workers", integer=True), default=None,
              help="Decode threads (0: decode in the main thread)  [default: one per CPU core, at most 4]")
@megapixels_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="auto", default=None, metavar="[ADDRESS]",
              help="Decode and embed on a Ray cluster (ADDRESS: HOST:PORT; alone: the running one, or "
                   "$RAY_ADDRESS); every node must read the files at the same paths. Needs zsindex[ray].")
@output_options
@model_options
def ingest(paths: tuple[Path, ...], index_dir: Path | None, exclude: tuple[str, ...], follow_symlinks: bool,
           batch_size: int, workers: int | None, max_megapixels: float, quiet: bool, ray_address: str | None,
           fmt: str, choice: ModelChoice) -> None:
    """Embed every image under PATHS into the index; run again to update it.

    Incremental: unchanged files (same path, size and mtime) are not read
    again, changed files are re-embedded, moved or renamed files keep their
    vector, identical files share one, and files gone from a scanned folder
    are marked deleted. Files that cannot be read are recorded with the reason
    (see `zsindex errors`), never stop the run, and make the exit code 3.
    Safe to interrupt (Ctrl-C exits 130): run it again to finish. To drop a
    folder that is gone, use `zsindex forget`.

    \b
    Examples:
      zsindex ingest ~/Pictures
      zsindex ingest ~/Pictures /media/phone -x '*/.thumbnails' --index ./photos-index
      zsindex ingest ./shapes --model demo --json
      zsindex --db postgresql+psycopg://db/photos ingest /mnt/archive --ray 10.0.0.5:6379
    """
    lib = open_library(index_dir, choice, create=True)
    bar = ProgressBar(quiet)
    try:
        report = lib.ingest(list(paths), exclude=exclude, follow_symlinks=follow_symlinks, batch_size=batch_size,
                            workers=workers, max_megapixels=max_megapixels, progress=bar, ray_address=ray_address)
    finally:
        bar.close()
    emit_record(report.to_dict(), fmt)
    for message in report.warnings:
        warn(f"warning: {message}")
    if report.ignored:
        warn("ignored (not images): " + ", ".join(f"{k} {n}" for k, n in report.ignored.items())
             + "; see `zsindex errors`")
    for path, reason in report.skipped_files[:20]:
        warn(f"skipped {shown(path)}: {reason}")
    if len(report.skipped_files) > 20:
        warn(f"... and {len(report.skipped_files) - 20} more: see `zsindex errors`")
    if report.untagged:
        warn(_untagged_note(report))
    for path, reason in report.skipped_sidecars[:20]:
        warn(f"skipped sidecar {shown(path)}: {reason} (its image is indexed; the keywords in it were not read)")
    if len(report.skipped_sidecars) > 20:
        warn(f"... and {len(report.skipped_sidecars) - 20} more sidecars")
    problems = []
    if report.skipped:
        problems.append(f"{plural(report.skipped, 'file was', 'files were')} skipped (see `zsindex errors`)")
    if report.skipped_sidecars:
        problems.append(f"{plural(len(report.skipped_sidecars), 'XMP sidecar', 'XMP sidecars')} could not be read "
                        "(their images are indexed without the keywords in them)")
    if problems:
        raise Partial("; ".join(problems) + "; the others are indexed")


def _untagged_note(report: "IngestReport") -> str:
    """What ingest says when it dropped the tags of changed files: how many, and the commands that refresh them."""
    from .clikit import shell_word

    n, sets = len(report.untagged), sorted(report.untagged_sets)
    lost = "1 image lost its tags because its file changed" if n == 1 else \
        f"{n} images lost their tags because their files changed"
    labels = shell_word(sets[0]) if len(sets) == 1 else "SET"
    text = (f"warning: {lost} (label {'set' if len(sets) == 1 else 'sets'} {', '.join(map(repr, sets))}); "
            f"`zsindex tag --labels {labels}` tags {'it' if n == 1 else 'them'} again")
    if report.stale_sidecars:
        holds = "1 XMP sidecar still holds" if report.stale_sidecars == 1 else \
            f"{report.stale_sidecars} XMP sidecars still hold"
        text += f", then `zsindex sidecars write --labels {labels}` brings the sidecars up to date ({holds} " \
                "the old keywords)"
    return text


@cli.command()
@click.argument("query", nargs=-1)
@index_option
@click.option("--like", "likes", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Find images similar to this one, in the index or not (repeatable; combines with QUERY).")
@megapixels_option
@click.option("--not", "nots", multiple=True, help="Push results away from this text (repeatable).")
@click.option("--not-weight", type=ranged("not_weight"), default=0.5, show_default=True,
              help="Weight of the --not terms against the positive ones.")
@click.option("-k", "--top-k", "--limit", "top_k", type=ranged("top_k", integer=True), default=10, show_default=True,
              help="Number of hits (--limit is the same option).")
@click.option("--offset", type=ranged("offset", integer=True), default=0, show_default=True,
              help="Skip the first N hits (paging).")
@click.option("--min-score", type=ranged("min_score"), help="Drop hits whose cosine score is below this.")
@click.option("--path", "path_glob", type=GLOB, help="Only paths matching this glob: absolute, or relative to the "
              "current folder or an ingested one, e.g. '*/2023/*', '2023/*.jpg' or '*.png'.")
@click.option("--after", help="Only images taken on or after this date (EXIF date, else file time), e.g. 2023-06-01.")
@click.option("--before", help="Only images taken before this date.")
@click.option("--camera", help="Only this camera: its whole name ('Canon EOS RP'), the brand alone ('Canon'), "
              "a glob ('iPhone*'), or words of its name, in any order ('iPhone': every iPhone; 'Canon IXUS 430': "
              "the Canon DIGITAL IXUS 430), when they are no camera's whole name.")
@click.option("--format", "fmt_filter", help="Only this file type, e.g. jpeg (MPO camera files too), png, heic, cr2.")
@click.option("--tag", "tag_filter",
              help="Only images tagged with this label, in any set; SET:LABEL or --tag-set names the set.")
@click.option("--tag-set", help="The label set of --tag.")
@click.option("--keyword", "keyword_filter", help="Only images the user keyworded so (see `zsindex keywords`).")
@click.option("--paths-only", is_flag=True, help="Print one path a line (escaped form, see README), for other tools.")
@click.option("--print0", is_flag=True, help="Print the exact paths, each ending in a NUL byte (for xargs -0).")
@click.option("--group-stems", is_flag=True,
              help="One hit per shot: files with the same name in one folder (IMG_1.CR2 + IMG_1.JPG) count once.")
@output_options
@model_options
def search(query: tuple[str, ...], index_dir: Path | None, likes: tuple[Path, ...], max_megapixels: float,
           nots: tuple[str, ...], not_weight: float, top_k: int, offset: int, min_score: float | None,
           path_glob: str | None,
           after: str | None, before: str | None, camera: str | None, fmt_filter: str | None, tag_filter: str | None,
           tag_set: str | None, keyword_filter: str | None, paths_only: bool, print0: bool, group_stems: bool,
           fmt: str, choice: ModelChoice) -> None:
    """Find the indexed images that best match a text, an example image, or both.

    Several QUERY words are one text; several --like images and the text are
    averaged; --not texts are subtracted. Scores are cosine similarities.
    Hits whose file has gone since it was indexed are marked exists: false
    (and left out of --paths-only and --print0), with a note on stderr. A
    video is one hit, with the time in seconds of its best-matching frame.

    \b
    Examples:
      zsindex search "a dog on a beach"
      zsindex search beach --not people -k 20 --table
      zsindex search --like holiday/IMG_0042.jpg --after 2023-01-01 --camera Apple
      zsindex search "red circle" --index demo/index --print0 | xargs -0 ls -l
      zsindex search "on the sofa" --tag animals:cat
      zsindex search "sunset" --keyword holiday
      zsindex search "sunset" --group-stems   # RAW + JPEG of one shot: one hit
    """
    text = " ".join(query).strip() if query else None
    plain = not (likes or group_stems) and all(
        v is None for v in (path_glob, after, before, camera, fmt_filter, tag_filter, tag_set, keyword_filter))
    hits = None
    if text and plain:  # a text query is answered without SQLAlchemy when it can be (quickread.py)
        from . import quickread

        hits = quickread.search(config.index_dir(index_dir), [text], nots, not_weight, top_k, offset, min_score,
                                model=choice.model, pretrained=choice.pretrained, device=choice.device,
                                runtime=choice.runtime, precision=choice.precision, db=root_db())
    if hits is None:  # the full search through the library: any query
        if text and warm.wanted(root_db(), choice.model, choice.runtime):
            warm.text_tower_for(config.index_dir(index_dir), [text, *nots])  # overlaps the imports below
        from .search import Filters, parse_date

        if query and not text:
            raise UsageError("the query text is empty")
        if tag_set and not tag_filter:
            raise UsageError("tag_set= names the set of tag=; give tag= too")
        filters = Filters(path=path_glob, after=parse_date(after, "after"), before=parse_date(before, "before"),
                          camera=camera, format=fmt_filter, tag=tag_filter, tag_set=tag_set, keyword=keyword_filter)
        lib = open_library(index_dir, choice)
        hits = lib.search(text, like=list(likes), not_=list(nots), not_weight=not_weight, top_k=top_k,
                          offset=offset, min_score=min_score, filters=filters, group_stems=group_stems,
                          max_megapixels=max_megapixels)
        warn_unmatched_path(lib, path_glob)
    gone = [h for h in hits if not h.exists]
    if gone:
        gone_text = plural(len(gone), 'of these files no longer exists', 'of these files no longer exist')
        warn(f"{gone_text} (first: {shown(gone[0].path)}); "
             "`zsindex ingest` of their folder or `zsindex forget PATH` removes them from the index")
    if paths_only or print0:
        emit_paths([h.path for h in hits if h.exists], null=print0)
        return
    rows = [h.to_dict() for h in hits]
    columns = ["score", "path", "id", "exists"] + [c for c in ("time", "also") if any(c in r for r in rows)]
    if fmt != "json":
        rows = [{**r, "also": "; ".join(r.get("also", []))} for r in rows]
    emit_rows(rows, columns, fmt)


@cli.command()
@index_option
@output_options
def status(index_dir: Path | None, fmt: str) -> None:
    """Show the index: model, images by status, sizes on disk, last run.

    \b
    Example:
      zsindex status --index ./photos-index --json
    """
    info = open_library(index_dir).status()
    if fmt != "table":
        emit_record(info, fmt)
        return
    model = info["model"]
    click.echo(f"index   {shown(info['index'])}")
    click.echo("model   " + (f"{model['name']} ({model['dim']}-d, {model['precision']}, {model['runtime'] or '?'})"
                             if model else "none yet"))
    click.echo("images  " + (", ".join(f"{k} {v}" for k, v in sorted(info["images"].items())) or "none"))
    if info.get("ignored"):
        click.echo("ignored " + ", ".join(f"{k} {v}" for k, v in info["ignored"].items()) + " (not images)")
    click.echo("disk    " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in info["bytes"].items()))
    if info["vector_index"]:
        click.echo(f"vectors {info['vector_index']}" + ("" if info["faiss_fresh"] else
                                                         " (the FAISS file is stale: rebuilt on next use)"))
    if info["last_run"]:
        run = info["last_run"]
        click.echo(f"last    run {run['id']} {run['status']} at {run['started_at']}: added {run['added']}, "
                   f"changed {run['changed']}, moved {run['moved']}, deleted {run['deleted']}, "
                   f"skipped {run['skipped']}")


@cli.command()
@index_option
@click.option("--ignored/--no-ignored", "with_ignored", default=True, show_default=True,
              help="Also list files left out because they are not images (with their type).")
@output_options
def errors(index_dir: Path | None, with_ignored: bool, fmt: str) -> None:
    """List files that could not be indexed, with the reason.

    Unreadable images come first, then files that were left out because
    they are not images or videos (reason "ignored: ...").

    \b
    Example:
      zsindex errors --csv > unreadable.csv
      zsindex errors --no-ignored
    """
    lib = open_library(index_dir)
    rows = [{"path": p, "error": cli_text(e)} for p, e in lib.errors()]  # the reasons name options as flags
    if with_ignored:
        rows += [{"path": p, "error": e} for p, e in lib.ignored_files()]
    emit_rows(rows, ["path", "error"], fmt)


@cli.command()
@index_option
@click.option("--kind", type=click.Choice(["auto", "flat", "ivf", "ivfpq"]), default=None,
              help="Vector index kind, kept by later rebuilds: flat (exact), ivf, or ivfpq (compressed codes, "
                   "re-ranked exactly); auto chooses by size.  [default: the recorded kind, else auto]")
@output_options
def rebuild(index_dir: Path | None, kind: str | None, fmt: str) -> None:
    """Rebuild the FAISS file from the vectors stored in SQLite.

    Never needed for correctness (a missing or stale FAISS file is rebuilt
    automatically), but useful after copying an index without its .faiss file,
    or to choose the kind of vector index.

    \b
    Examples:
      zsindex rebuild --index ./photos-index
      zsindex rebuild --kind ivfpq      # about 72 bytes per vector instead of 2 KB (ViT-B-32)
    """
    lib = open_library(index_dir)
    emit_record({"index": str(lib.folder), "vectors": lib.rebuild(kind)}, fmt)


@cli.command()
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path),
              help="Where to draw the demo images and keep their index  [default: a temporary folder, removed "
              "at the end]")
@output_options
def demo(folder: Path | None, fmt: str) -> None:
    """Run zsindex end to end on drawn images with the shipped tiny model, offline.

    Draws a few coloured shapes, then classifies them against every
    colour+shape label with the model in zsindex/models/shapes-tiny.

    \b
    Example:
      zsindex demo --dir ./demo --table
    """
    from .demo import run_demo

    if folder is None:  # the demo made this folder, so it may remove it; --dir keeps everything
        with tempfile.TemporaryDirectory(prefix="zsindex-demo-") as tmp:
            report = run_demo(Path(tmp), progress=warn)
        warn("removed the temporary demo folder; use --dir DIR to keep the images and their index")
    else:
        report = run_demo(folder, progress=warn)
    if fmt == "json":
        emit_json(report["classify"])
    else:
        rows = [{"image": Path(r["path"]).name, "truth": r["truth"], "best": r["labels"][0]["label"],
                 "score": r["labels"][0]["score"]} for r in report["classify"]]
        emit_rows(rows, ["image", "truth", "best", "score"], fmt)
    warn(json.dumps(report["summary"]))


from .cli_forget import forget  # noqa: E402
from .cli_tags import register  # noqa: E402 - the tagging commands join the same group

register(cli)
cli.add_command(forget)

from .cli_sidecars import register as register_sidecars  # noqa: E402

register_sidecars(cli)

from .cli_serve import register as register_serve  # noqa: E402 - `zsindex serve`

register_serve(cli)


def main() -> None:
    from .clikit import run_main
    from .output import escape_unwritable_on_stderr

    escape_unwritable_on_stderr()
    run_main(cli)
