"""zsindex eval on a class-per-folder shapes set with the shipped model."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from zsindex import shapes
from zsindex.cli import cli
from zsindex.errors import UsageError
from zsindex.evaluate import average_precision, load_dataset, metrics
from zsindex.labels import LabelSet, label_vectors, parse_label_list
from zsindex.library import Library

PAIRS = [("red", "circle"), ("green", "square"), ("blue", "triangle"), ("yellow", "star"), ("purple", "circle"),
         ("orange", "square")]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalset")
    rng = np.random.default_rng(8)
    for c, s in PAIRS:
        folder = root / f"{c}_{s}"
        folder.mkdir()
        for i in range(5):
            Image.fromarray(shapes.draw([shapes.Thing(c, s)], size=96, rng=rng)).save(folder / f"{i}.png")
    return root


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ZSINDEX_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def run(*args: str):
    return CliRunner().invoke(cli, ["eval", *args, "-m", "demo", "--device", "cpu"])


def test_accuracy_matches_independent_computation(dataset, home, demo_embedder):
    r = run(str(dataset), "--json", "--templates", "ensemble")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["classes"] == sorted(f"{c} {s}" for c, s in PAIRS)
    res = out["results"]["ensemble"]
    # Independently: embed every file, score against the ensembled class names.
    data = load_dataset(dataset)
    vecs = demo_embedder.embed_images([Image.open(p) for p in data.paths])
    lv = label_vectors(demo_embedder, LabelSet(parse_label_list(",".join(out["classes"]))))
    pred = (vecs @ lv.T).argmax(axis=1)
    expected = np.mean([out["classes"][p] == t[0] for p, t in zip(pred, data.truth)])
    assert res["top1"] == pytest.approx(expected, abs=1e-9)
    assert res["top1"] >= 0.9 and res["top5"] == 1.0
    confusion = np.array(res["confusion"])
    assert confusion.sum() == 30 and np.trace(confusion) == round(expected * 30)


def test_templates_comparison_and_confusion_outputs(dataset, home, tmp_path):
    png, csv_path = tmp_path / "c.png", tmp_path / "c.csv"
    r = run(str(dataset), "--templates", "names", "--templates", "photo", "--templates", "a drawing of a {}.|a {}",
            "--confusion", str(png), "--confusion-csv", str(csv_path))
    assert r.exit_code == 0, r.output
    table = r.stdout.split("\n\n")[0]
    for name in ("names", "photo", "a drawing of a {}.|a {}"):
        assert name in table
    im = Image.open(png)
    im.verify()
    assert im.format == "PNG"
    rows = list(csv.reader(open(csv_path)))
    assert len(rows) == 7 and sum(int(x) for row in rows[1:] for x in row[1:]) == 30


def test_second_run_reembeds_nothing(dataset, home, demo_embedder):
    from zsindex.evaluate import evaluate

    data = load_dataset(dataset)
    evaluate(demo_embedder, data, None, [])
    before = demo_embedder.image_calls
    evaluate(demo_embedder, data, None, [])
    assert demo_embedder.image_calls == before


def test_images_already_in_an_index_are_not_embedded(dataset, home, demo_embedder, tmp_path):
    from zsindex.evaluate import evaluate

    lib = Library(tmp_path / "index", embedder=demo_embedder)
    lib.ingest([dataset], workers=0)
    before = demo_embedder.image_calls
    out = evaluate(demo_embedder, load_dataset(dataset), None, [], index=lib)
    assert demo_embedder.image_calls == before
    assert not (home / "eval-cache").exists()  # nothing needed the cache
    assert out["results"]["ensemble"]["images"] == 30


def test_csv_multi_label_and_map(tmp_path, home, dataset):
    files = sorted(dataset.rglob("*.png"))
    f = tmp_path / "labels.csv"
    with open(f, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label"])
        for p in files:
            c, s = p.parent.name.split("_")
            w.writerow([str(p), c, s])
    r = run(str(f), "--json", "--labels", ",".join(sorted({x for p in files for x in p.parent.name.split("_")})))
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)["results"]["ensemble"]
    assert res["mean_average_precision"] > 0.8


def test_raw_names_and_unknown_classes(dataset, home):
    r = run(str(dataset), "--raw-names", "--json")
    assert r.exit_code == 0 and "red_circle" in json.loads(r.stdout)["classes"]
    r = run(str(dataset), "--labels", "red circle,blue star")
    assert r.exit_code == 2 and "classes without a label" in r.output


def test_metric_helpers():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    m = metrics(scores, [["a"], ["b"], ["b"]], ["a", "b"])
    assert m["top1"] == pytest.approx(2 / 3) and m["confusion"].tolist() == [[1, 0], [1, 1]]
    assert m["per_class"]["a"]["precision"] == 0.5 and m["per_class"]["b"]["recall"] == 0.5
    assert m["mean_per_class_accuracy"] == pytest.approx(0.75)
    assert average_precision(np.array([0.9, 0.8, 0.1]), np.array([True, False, True])) == pytest.approx((1 + 2 / 3) / 2)


def test_bad_sources(tmp_path):
    with pytest.raises(UsageError):
        load_dataset(tmp_path)
    (tmp_path / "x.txt").write_text("a")
    with pytest.raises(UsageError):
        load_dataset(tmp_path / "x.txt")


def test_class_folders_of_links_are_read_and_skips_say_why(dataset, home, tmp_path):
    """A dataset is often class folders of symbolic links to the images: eval follows them (the dataset names
    them), says why each image it skips was skipped, and a dataset of which nothing reads is a message."""
    links = tmp_path / "links"
    for folder in sorted(dataset.iterdir()):
        (links / folder.name).mkdir(parents=True)
        for image in sorted(folder.iterdir()):
            (links / folder.name / image.name).symlink_to(image)
    (links / "red_circle" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (tmp_path / "elsewhere.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really either")
    (links / "red_circle" / "linked-broken.png").symlink_to(tmp_path / "elsewhere.png")
    r = run(str(links), "--json")
    assert r.exit_code == 3, r.output
    assert json.loads(r.stdout.splitlines()[0])["results"]["ensemble"]["images"] == 5 * len(PAIRS)
    assert f"skipped {links / 'red_circle' / 'broken.png'}: cannot decode" in r.stderr  # the reason, as ingest says
    # ... named as the dataset names it, though the index keeps files by their real paths
    assert f"skipped {links / 'red_circle' / 'linked-broken.png'}: cannot decode" in r.stderr, r.stderr
    bad = tmp_path / "bad" / "red"
    bad.mkdir(parents=True)
    (bad / "a.png").write_bytes(b"not an image")
    r = run(str(tmp_path / "bad"))
    assert r.exit_code == 2 and "none of the 1 images of the dataset could be read" in r.output, r.output
    assert "Traceback" not in r.output
