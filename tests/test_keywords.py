"""The user's own keywords: read at ingest, kept current, searched, and used as ground truth."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from zsindex import shapes, xmp
from zsindex.cli import cli
from zsindex.keyword_truth import best_threshold
from zsindex.library import Library

from .conftest import FIXTURES, REPO

SAMPLES = FIXTURES / "sidecars"


def user_sidecar(image: Path, words: list[str]) -> Path:
    """A sidecar as a photo program writes it: flat keywords and a keyword tree."""
    doc = xmp.XmpDoc()
    for word in words:
        doc.add(xmp.SUBJECT, word)
        doc.add(xmp.HIERARCHICAL, f"mine|{word}")
    path = Path(str(image) + ".xmp")
    path.write_bytes(doc.to_bytes())
    return path


@pytest.fixture
def library(tmp_path, demo_embedder):
    scenes = [[shapes.Thing("red", "circle")], [shapes.Thing("blue", "square")], [shapes.Thing("green", "star")]]
    paths = shapes.save_world(tmp_path / "photos", scenes, size=64, seed=1)
    shutil.copy(SAMPLES / "darktable.xmp", str(paths[0]) + ".xmp")
    from PIL import Image

    jpeg = tmp_path / "photos" / "embedded.jpg"  # keywords inside the file: XMP and, with exiftool, IPTC
    Image.open(paths[1]).convert("RGB").save(jpeg, xmp=(SAMPLES / "lightroom.xmp").read_bytes())
    if shutil.which("exiftool"):
        subprocess.run(["exiftool", "-q", "-overwrite_original", "-Keywords=from iptc", "-Keywords=caf\xe9",
                        "-IPTC:CodedCharacterSet=UTF8", str(jpeg)], check=True, timeout=60)
    lib = Library(tmp_path / "index", embedder=demo_embedder)
    lib.ingest([tmp_path / "photos"], workers=0)
    return lib, paths, jpeg


def test_ingest_reads_sidecar_embedded_xmp_and_iptc_keywords(library):
    lib, paths, jpeg = library
    words = lib.keywords()
    assert words[str(paths[0])] == ["circle", "garden"]  # darktable's own darktable|... entries are not keywords
    embedded = set(words[str(jpeg)])
    assert {"holiday", "square", "Geometry"} <= embedded
    if shutil.which("exiftool"):
        assert {"from iptc", "caf\xe9"} <= embedded
    assert str(paths[2]) not in words
    assert lib.keyword_counts() == {k: 1 for k in lib.keyword_counts()}  # each once, on its own image
    hits = lib.search("a red circle", keyword="GARDEN", k=5)
    assert [h.path for h in hits] == [str(paths[0])]


def test_sidecars_beside_their_images_are_not_ignored_files(library, tmp_path):
    """A sidecar is part of its image (its keywords are read with it), in any naming or case; one with no
    image of its name is listed as ignored, as any other file that is not an image."""
    lib, paths, _ = library
    shutil.copy(SAMPLES / "lightroom.xmp", paths[1].with_suffix(".XMP"))  # Lightroom's naming, capitals
    shutil.copy(SAMPLES / "lightroom.xmp", paths[0].parent / "orphan.xmp")
    report = lib.ingest([paths[0].parent], workers=0)
    assert report.ignored == {".xmp": 1}, report.ignored
    assert [os.path.basename(p) for p, _ in lib.ignored_files()] == ["orphan.xmp"]


def test_a_changed_sidecar_is_a_change_without_re_embedding(library):
    lib, paths, _ = library
    side = Path(str(paths[0]) + ".xmp")
    doc = xmp.XmpDoc.from_bytes(side.read_bytes())
    doc.add(xmp.SUBJECT, "sunset")
    side.write_bytes(doc.to_bytes())
    user_sidecar(paths[2], ["star"])
    report = lib.ingest([paths[0].parent], workers=0)
    assert (report.added, report.changed, report.unchanged) == (0, 2, 2)
    assert report.embed_seconds == 0 and report.decode_seconds == 0  # no image was read or embedded
    assert lib.store.last_run().changed == 2  # type: ignore[union-attr]
    words = lib.keywords()
    assert "sunset" in words[str(paths[0])] and words[str(paths[2])] == ["star"]
    assert lib.ingest([paths[0].parent], workers=0).unchanged == 4  # and then nothing changed
    side.unlink()
    assert lib.ingest([paths[0].parent], workers=0).changed == 1
    assert str(paths[0]) not in lib.keywords()


def test_zsindex_sidecar_entries_are_not_the_users_keywords(library):
    lib, paths, _ = library
    lib.tag("circle,square,triangle,star", mode="multi", threshold=-1.0)
    lib.sidecars_write("circle,square,triangle,star")
    report = lib.ingest([paths[0].parent], workers=0)
    assert report.changed == 0  # zsindex's own writes are not the user's changes
    assert lib.keywords()[str(paths[0])] == ["circle", "garden"]
    assert str(paths[1]) not in lib.keywords()
    result = CliRunner().invoke(cli, ["keywords", "--index", str(lib.folder), "--json"])
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {"keyword": "garden", "images": 1} in rows and all(r["keyword"] != "triangle" for r in rows)


def test_a_fresh_process_creates_sidecars(library):
    """Creating a sidecar in a fresh process declares the namespaces of its lists itself."""
    lib, paths, _ = library
    lib.tag("circle,square", mode="multi", threshold=-1.0)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "zsindex", "sidecars", "write", "-l", "circle,square", "--index",
                          str(lib.folder), "--path", "*/002-*", "--json"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["created"] == 1
    doc = xmp.XmpDoc.from_bytes(Path(str(paths[2]) + ".xmp").read_bytes())
    assert "zsindex|circle,square|circle" in doc.items(xmp.HIERARCHICAL)


def test_best_threshold_maximises_f1():
    cos = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    positive = np.array([True, True, False, True, False, False])
    t = best_threshold(cos, positive)
    assert 0.5 < t < 0.6  # keep the top four: F1 = 6/7, better than the top two (0.8)
    assert 0.7 < best_threshold(cos, np.array([True, True, False, False, False, False])) < 0.8


@pytest.fixture(scope="module")
def keyworded_world(tmp_path_factory, demo_embedder):
    """72 images with one or two shapes; the first 48 keyworded by the user through sidecars."""
    root = tmp_path_factory.mktemp("kwworld")
    rng = np.random.default_rng(8)
    scenes = [shapes.random_things(rng, shapes.seen_pairs(), 2) for _ in range(72)]
    paths = shapes.save_world(root / "photos", scenes, size=96, seed=8)
    for p, scene in zip(paths[:48], scenes):
        user_sidecar(p, sorted({t.shape for t in scene}))
    lib = Library(root / "index", embedder=demo_embedder)
    lib.ingest([root / "photos"], workers=0)
    lib.labels_add("shapes", "circle,square,triangle,star,hexagon")
    truth = {str(p): {t.shape for t in scene} for p, scene in zip(paths, scenes)}
    return lib, paths, truth


def test_eval_keywords_and_calibration_from_keywords(keyworded_world):
    lib, paths, truth = keyworded_world
    # Never tagged (a list, or a set not tagged yet): no "tags" column of zeros, and a note that says why.
    for never in ("circle,star", "shapes"):
        untagged = lib.eval_keywords(never)
        assert "tags" not in untagged["micro"] and "no tags yet" in untagged["note"], untagged
        assert all("tags" not in v for v in untagged["labels"].values())
    r = CliRunner().invoke(cli, ["eval", "--keywords", "circle,star", "--index", str(lib.folder), "--table"])
    assert r.exit_code == 0 and "no tags yet" in r.stderr and "tags" not in r.stdout.splitlines()[0], r.output
    lib.tag("shapes", mode="multi")
    before = lib.eval_keywords("shapes")
    assert before["images"] == 48 and before["labels"]["hexagon"]["positives"] == 0
    assert set(before["micro"]) == {"tags", "cosine>=0.1", "cosine>=0.2", "cosine>=0.3", "cosine>=0.4"}
    assert "note" not in before
    counted = {label: sum(label in truth[str(p)] for p in paths[:48]) for label in ("circle", "square", "star")}
    assert all(before["labels"][k]["positives"] == n for k, n in counted.items())
    report = lib.tag("shapes", mode="multi", calibrate_from_keywords=True)
    assert "thresholds from keywords for 4 labels" in report.warning
    assert "hexagon (0 with, 48 without)" in report.warning  # said where there are too few examples
    after = lib.eval_keywords("shapes")
    assert after["micro"]["tags"]["f1"] >= before["micro"]["tags"]["f1"]
    got: dict[str, set] = {}
    for r in lib.tag_rows("shapes"):
        got.setdefault(r["path"], set()).add(r["label"])
    held_out = [str(p) for p in paths[48:]]  # images the user never keyworded
    tp = sum(len(got.get(p, set()) & truth[p]) for p in held_out)
    assert tp >= 0.7 * sum(len(truth[p]) for p in held_out)


def test_cli_eval_keywords_and_tag_calibrate_from_keywords(keyworded_world):
    lib, _, _ = keyworded_world
    index = str(lib.folder)
    runner = CliRunner()
    result = runner.invoke(cli, ["tag", "-l", "shapes", "--mode", "multi", "--calibrate-from-keywords", "--index",
                                 index, "--summary", "-q"])
    assert result.exit_code == 0, result.output
    assert "thresholds from keywords" in result.stderr
    result = runner.invoke(cli, ["eval", "--keywords", "shapes", "--index", index, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["label_set"] == "shapes" and out["labels"]["circle"]["tags"]["f1"] > 0.5
    result = runner.invoke(cli, ["eval", "--keywords", "shapes", "--index", index, "--table"])
    assert "(micro)" in result.stdout
    result = runner.invoke(cli, ["eval", "--keywords", "nope,other", "--index", index])
    assert result.exit_code == 2 and "no indexed image carries a keyword" in result.output
    result = runner.invoke(cli, ["search", "a circle", "--keyword", "circle", "--index", index, "--json", "-k", "3"])
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 3
