"""zsindex classify / similarity / demo: correctness on the shapes world, bad input, exit codes."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from zsindex import shapes
from zsindex.cli import cli
from zsindex.demo import colour_shape_labels
from zsindex.errors import LabelError
from zsindex.library import classify, similarity

from .conftest import FIXTURES


def invoke(*args: str):
    return CliRunner().invoke(cli, [*args, "--model", "demo", "--device", "cpu"])


def test_classify_colour_shape_world(demo_embedder, world):
    results = classify([p for p, _ in world], colour_shape_labels(), embedder=demo_embedder)
    correct = sum(r.labels[0].label == t.name for r, (_, t) in zip(results, world))
    assert correct / len(world) >= 0.9, [(r.path, r.labels[0].label) for r in results]
    for r in results:
        scores = [s.score for s in r.labels]
        assert scores == sorted(scores, reverse=True)
        assert sum(scores) == pytest.approx(1, abs=1e-5)


def test_classify_shape_only_and_colour_only(demo_embedder, world):
    shape_res = classify([p for p, _ in world], list(shapes.SHAPES), embedder=demo_embedder)
    colour_res = classify([p for p, _ in world], list(shapes.COLOURS), embedder=demo_embedder)
    assert np.mean([r.labels[0].label == t.shape for r, (_, t) in zip(shape_res, world)]) >= 0.9
    assert np.mean([r.labels[0].label == t.colour for r, (_, t) in zip(colour_res, world)]) >= 0.9


def test_json_lines_output(world):
    paths = [str(p) for p, _ in world[:3]]
    r = invoke("classify", *paths, "--labels", "red circle,green square,blue star", "--json")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.output.splitlines()]
    assert [row["path"] for row in rows] == paths
    for row in rows:
        assert [set(x) for x in row["labels"]] == [{"label", "score", "cosine"}] * 3


def test_table_top_k_and_templates(world):
    path, truth = world[0]
    r = invoke("classify", str(path), "-l", ",".join(colour_shape_labels()), "--table", "--top-k", "2",
               "-t", "a photo of a {}.", "-t", "a {}")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split() == ["path", "rank", "label", "score", "cosine"]
    assert len(lines) == 4 and truth.name in lines[2]


def test_csv_output(world):
    r = invoke("classify", str(world[0][0]), "-l", "red,blue", "--csv")
    assert r.exit_code == 0
    assert r.output.splitlines()[0] == "path,rank,label,score,cosine"
    assert len(r.output.splitlines()) == 3


def test_labels_file(tmp_path, world):
    f = tmp_path / "labels.json"
    f.write_text(json.dumps({"circle": ["a circle", "a round shape"], "square": ["a square"], "star": [],
                             "triangle": []}))
    circles = [p for p, t in world if t.shape == "circle"]
    r = invoke("classify", *map(str, circles), "--labels-file", str(f), "--json")
    assert r.exit_code == 0, r.output
    best = [json.loads(line)["labels"][0]["label"] for line in r.output.splitlines()]
    assert best.count("circle") >= len(circles) - 1


def test_unreadable_files_reported_others_classified(tmp_path, world):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    bad = [FIXTURES / "truncated.jpg", FIXTURES / "broken.png", FIXTURES / "bomb.gif", empty, text]
    # a file that does not exist, or a folder, is a usage error instead (test_api_params.py)
    good = str(world[0][0])
    r = CliRunner().invoke(cli, ["classify", good, *map(str, bad), "-l", "red,blue", "--json", "-m", "demo"])
    assert r.exit_code == 3  # done, with skipped files (the same code as ingest)
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert [o["path"] for o in out] == [good]
    for b in bad:
        assert f"skipped {b}:" in r.stderr
    assert "decompression bomb" in r.stderr and "empty file" in r.stderr
    assert f"{len(bad)} of {len(bad) + 1} images could not be read" in r.stderr


@pytest.mark.parametrize("labels", ["", "cat,,dog", "cat,dog,Cat", " , "])
def test_bad_label_lists_are_usage_errors(labels, world):
    r = invoke("classify", str(world[0][0]), "--labels", labels)
    assert r.exit_code == 2, r.output
    assert "label" in r.output


def test_labels_and_labels_file_together_or_neither(tmp_path, world):
    f = tmp_path / "l.txt"
    f.write_text("cat\n")
    assert invoke("classify", str(world[0][0]), "--labels", "a", "--labels-file", str(f)).exit_code == 2
    assert invoke("classify", str(world[0][0])).exit_code == 2


def test_empty_label_file_and_bad_template(tmp_path, world):
    f = tmp_path / "l.txt"
    f.write_text("# nothing\n")
    r = invoke("classify", str(world[0][0]), "--labels-file", str(f))
    assert r.exit_code == 2 and "no labels" in r.output
    r = invoke("classify", str(world[0][0]), "-l", "a,b", "-t", "no placeholder")
    assert r.exit_code == 2 and "{}" in r.output


def test_no_images_is_usage_error():
    assert invoke("classify", "--labels", "a,b").exit_code == 2


def test_classify_fixture_formats(demo_embedder):
    files = ["orientation_6.jpg", "cmyk.jpg", "transparent.webp", "sixteen_bit.png", "hopper.avif", "hopper.heif",
             "hopper.gif", "exif_gps.jpg"]
    results = classify([FIXTURES / f for f in files], ["red", "blue"], embedder=demo_embedder)
    assert [r.error for r in results] == [None] * len(files)


def test_library_rejects_duplicate_labels(demo_embedder, world):
    with pytest.raises(LabelError):
        classify([world[0][0]], ["cat", "cat"], embedder=demo_embedder)


def test_similarity_matrix(demo_embedder, world):
    picks = [(p, t) for p, t in world if t.name in ("red circle", "blue square")]
    sim = similarity([p for p, _ in picks], ["a red circle", "a blue square"], embedder=demo_embedder)
    assert sim.cosine.shape == (2, 2)
    order = [0, 1] if picks[0][1].name == "red circle" else [1, 0]
    assert sim.cosine[0, order[0]] > sim.cosine[0, order[1]]
    assert sim.cosine[1, order[1]] > sim.cosine[1, order[0]]


def test_similarity_cli(world, tmp_path):
    bad = tmp_path / "x.png"
    bad.write_text("no")
    r = CliRunner().invoke(cli, ["similarity", "a", "b", "-i", str(world[0][0]), "-i", str(bad),
                                 "--csv", "-m", "demo"])
    assert r.exit_code == 3
    lines = r.stdout.splitlines()
    assert lines[0] == "image,text,cosine" and len(lines) == 3  # one row per image and text: a, then b
    assert [line.split(",")[1] for line in lines[1:]] == ["a", "b"]
    assert "skipped" in r.stderr
    assert invoke("similarity", " ", "-i", str(world[0][0])).exit_code == 2


def test_demo_command(tmp_path):
    r = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path / "d"), "--json"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 8
    assert sum(row["labels"][0]["label"] == row["truth"] for row in rows) >= 7
    assert len(list((tmp_path / "d" / "images").glob("*.png"))) == 8
    assert '"indexed": 8' in r.stderr
    assert (tmp_path / "d" / "index" / "index.sqlite").is_file()
    assert "search 'a red circle': 000-red-circle.png" in r.stderr
    assert "tag shapes: " in r.stderr and "tag colours: blue 2, red 2" in r.stderr
    assert "note: the demo's 8 images are too few for calibrated thresholds" in r.stderr
    # Every option a demo message suggests is one a command has, in the command's own spelling (no `name=`).
    assert not re.search(r"\b[a-z_]+=[A-Z]", r.stderr), r.stderr
    for flag in set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", r.stderr)):
        assert any(flag in p.opts for c in cli.commands.values() for p in c.params), flag
    again = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path / "d"), "--json"])  # a re-run starts afresh
    assert again.exit_code == 0, again.output
    assert '"indexed": 8' in again.stderr


def test_moved_image_same_result(tmp_path, demo_embedder, world):
    """Results depend on content only: a renamed copy with spaces and brackets scores the same."""
    src = world[0][0]
    dst = tmp_path / "my photo (1) [copy].png"
    shutil.copy(src, dst)
    a, b = classify([src, dst], ["red", "blue", "green"], embedder=demo_embedder)
    assert [(s.label, round(s.score, 5)) for s in a.labels] == [(s.label, round(s.score, 5)) for s in b.labels]
