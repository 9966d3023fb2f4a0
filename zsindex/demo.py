"""The built-in demo: draw a small shapes world and run zsindex over it with the shipped model."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import shapes
from .config import DEMO_MODEL
from .errors import ForeignFileError, plural
from .owned import INDEX_FILE_NAMES, MadeFiles

DEMO_SCENES = [
    [shapes.Thing("red", "circle")],
    [shapes.Thing("green", "square")],
    [shapes.Thing("blue", "triangle")],
    [shapes.Thing("yellow", "star")],
    [shapes.Thing("purple", "circle")],
    [shapes.Thing("orange", "square")],
    [shapes.Thing("red", "star")],
    [shapes.Thing("blue", "square")],
]


DEMO_QUERIES = ["a red circle", "a square"]


def colour_shape_labels() -> list[str]:
    return [f"{c} {s}" for c in shapes.COLOURS for s in shapes.SHAPES]


def _demo_index_unchanged(db: Path, made: MadeFiles) -> bool:
    """Whether an index the demo made still holds only the demo's images and label sets.

    Searches and tag runs change the file (query cache, tags) without adding
    anything of the user's, so the file's hash alone would refuse too often.
    """
    import sqlite3

    if not made.recorded(db):
        return False
    from .scan import index_names

    # the index names files by their real paths (an older one: as the folder was named)
    drawn = {n for rel in made.made if rel.startswith("images" + os.sep) for n in index_names(made.folder / rel)}
    try:
        con = sqlite3.connect(db)  # read-write on purpose: the last connection to close removes the WAL files
        try:
            con.execute("PRAGMA query_only=ON")
            paths = {r[0] for r in con.execute("SELECT path FROM images")}
            sets = {r[0]: r[1:] for r in con.execute("SELECT name, version, templates, auto FROM label_sets")}
            labels: dict[str, list[tuple[str, str, str]]] = {}
            for set_name, *label in con.execute(
                    "SELECT s.name, l.name, l.descriptions, l.templates FROM labels l "
                    "JOIN label_sets s ON s.id = l.set_id ORDER BY s.name, l.position"):
                labels.setdefault(set_name, []).append(tuple(label))
        finally:
            con.close()
    except sqlite3.Error:
        return False
    # The demo's two sets as it registers them: never edited (version 1), its own labels, no descriptions or
    # templates. A set the user changed, or added, is the user's.
    demo_sets = {"shapes": list(shapes.SHAPES), ",".join(shapes.COLOURS): list(shapes.COLOURS)}
    return paths <= drawn and all(
        name in demo_sets and meta == (1, None, 0) and labels.get(name) == [(n, "[]", "[]") for n in demo_sets[name]]
        for name, meta in sets.items())


def _stale_index_files(index: Path, made: MadeFiles) -> list[Path]:
    """The files of an earlier demo index, once shown to be the demo's own; refuses anything else.

    Each file must be unchanged since the demo wrote it, unless the database
    still holds nothing but the demo's own images and label sets.
    """
    proven = _demo_index_unchanged(index / INDEX_FILE_NAMES[0], made)
    present = [index / name for name in INDEX_FILE_NAMES if (index / name).exists() or (index / name).is_symlink()]
    if not proven:
        for path in present:
            made.claim(path)
    return present


def _prepare(folder: Path, made: MadeFiles) -> list[Path]:
    """Draw the images and clear the old demo index, after checking every file that is replaced or removed."""
    images, index = folder / "images", folder / "index"
    if (index.exists() or index.is_symlink()) and not (index.is_dir() and not index.is_symlink()):
        # checked before anything is drawn: a refused run leaves no images or record behind
        raise ForeignFileError(f"{index} exists and is not a folder; zsindex demo leaves it alone: choose another "
                               "folder, or move it away yourself")
    scratch = Path(tempfile.mkdtemp(prefix=".zsindex-demo-", dir=folder))
    try:
        drawn = shapes.save_world(scratch, DEMO_SCENES, seed=7)
        paths = [images / p.name for p in drawn]
        for path in [images, *paths] if not images.is_dir() else paths:
            made.claim(path)
        stale = _stale_index_files(index, made) if index.is_dir() else []
        for path in stale:  # nothing is touched before every check has passed
            path.unlink()
            made.forget(path)
        images.mkdir(exist_ok=True)
        for source, target in zip(drawn, paths):
            os.replace(source, target)
            made.record(target)
    finally:
        shutil.rmtree(scratch)  # made just above by mkdtemp
    made.save()
    return paths


def run_demo(folder: Path, progress: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """Draw, classify, ingest, search and tag in folder; files it finds there that it did not make are refused."""
    from .embedder import load_embedder
    from .library import Library, classify
    from .tagging import MIN_CALIBRATION_IMAGES

    folder.mkdir(parents=True, exist_ok=True)
    made = MadeFiles(folder)
    index = folder / "index"
    paths = _prepare(folder, made)
    progress(f"drew {len(paths)} demo images in {folder / 'images'}")
    embedder = load_embedder(DEMO_MODEL, device="cpu")
    progress(f"loaded the demo model ({embedder.identity[:19]}..., {embedder.dim}-d)")
    results = classify(paths, colour_shape_labels(), top_k=3, embedder=embedder)
    rows = []
    for scene, result in zip(DEMO_SCENES, results):
        rows.append({**result.to_dict(), "truth": scene[0].name})
    correct = sum(r["labels"][0]["label"] == r["truth"] for r in rows)
    before = {name for name in INDEX_FILE_NAMES if (index / name).exists()}
    lib = Library(index, embedder=embedder, db=False)
    ingest = lib.ingest(paths, workers=0).to_dict()  # the drawn files only, not whatever else is in images/
    progress(f"ingested the demo images into {folder / 'index'}: {ingest}")
    searches = {}
    for query in DEMO_QUERIES:
        hits = lib.search(query, k=2)
        searches[query] = [Path(h.path).name for h in hits]
        progress(f"search {query!r}: " + ", ".join(f"{Path(h.path).name} ({h.score:.2f})" for h in hits))
    lib.labels_add("shapes", ",".join(shapes.SHAPES))
    reports = {"shapes": lib.tag("shapes", mode="single"), "colours": lib.tag(",".join(shapes.COLOURS), mode="multi")}
    tags = {name: report.counts for name, report in reports.items()}
    for name, counts in tags.items():
        progress(f"tag {name}: " + ", ".join(f"{label} {n}" for label, n in counts.items()))
    if reports["shapes"].warning:  # the tagger's hint names a parameter the demo lacks
        progress(f"note: the demo's {plural(len(paths), 'image is', 'images are')} too few for calibrated "
                 f"thresholds (they need "
                 f"{MIN_CALIBRATION_IMAGES}), so its tags are rough; on a library of your own, `zsindex tag` "
                 f"calibrates on all its images, or takes one fixed cut-off")
    lib.close()
    for name in INDEX_FILE_NAMES:
        if name not in before and (index / name).is_file():
            made.record(index / name)
    made.save()
    return {"folder": str(folder), "classify": rows, "ingest": ingest, "search": searches, "tags": tags,
            "summary": {"images": len(rows), "top1_correct": correct, "indexed": ingest["added"]}}


def measure_quality(embedder: Any, per_pair: int = 20, seed: int = 1234) -> dict[str, float]:
    """Top-1 accuracy of an embedder on freshly drawn single-shape images.

    Four label sets: colour+shape names on pairs seen in training, shape names
    only, colour names only, and colour+shape names on held-out pairs.
    """
    import numpy as np

    from .labels import LabelSet, label_vectors, parse_label_list

    rng = np.random.default_rng(seed)

    def top1(pairs: list[tuple[str, str]], names: list[str], truth: Callable[[tuple[str, str]], str]) -> float:
        from PIL import Image

        images, answers = [], []
        for pair in pairs:
            for _ in range(per_pair):
                images.append(Image.fromarray(shapes.draw([shapes.Thing(*pair)], size=224, rng=rng)))
                answers.append(names.index(truth(pair)))
        label_vecs = label_vectors(embedder, LabelSet(parse_label_list(",".join(names))))
        best = (embedder.embed_images(images) @ label_vecs.T).argmax(axis=1)
        return float((best == np.array(answers)).mean())

    seen, held = shapes.seen_pairs(), shapes.held_out_pairs()
    return {
        "colour_shape_seen": top1(seen, colour_shape_labels(), lambda p: f"{p[0]} {p[1]}"),
        "shape_only": top1(seen + held, list(shapes.SHAPES), lambda p: p[1]),
        "colour_only": top1(seen + held, list(shapes.COLOURS), lambda p: p[0]),
        "colour_shape_held_out": top1(held, colour_shape_labels(), lambda p: f"{p[0]} {p[1]}"),
    }
