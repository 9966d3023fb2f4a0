"""Label sets and bulk tagging on an ingested shapes world with the shipped model."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner

from zsindex import shapes
from zsindex.cli import cli
from zsindex.errors import LabelError, UsageError
from zsindex.library import Library, classify


@pytest.fixture(scope="module")
def world_index(tmp_path_factory, demo_embedder):
    """48 single-shape images and 48 with two or three shapes."""
    root = tmp_path_factory.mktemp("tagworld")
    rng = np.random.default_rng(5)
    pairs = shapes.seen_pairs()
    scenes = [[shapes.Thing(*pairs[i % len(pairs)])] for i in range(48)]
    scenes += [shapes.random_things(rng, pairs, 3) if i % 2 else shapes.random_things(rng, pairs, 2)[:2]
               for i in range(48)]
    scenes[48:] = [s if len(s) > 1 else s + [shapes.Thing(*pairs[(i * 7) % len(pairs)])]
                   for i, s in enumerate(scenes[48:])]
    paths = shapes.save_world(root / "photos", scenes, size=128, seed=3)
    lib = Library(root / "index", embedder=demo_embedder)
    assert lib.ingest([root / "photos"], workers=0).added == len(paths)
    truth = {str(p): {t.name for t in s} for p, s in zip(paths, scenes)}
    return lib, truth


def test_label_set_lifecycle(world_index):
    lib, _ = world_index
    shown = lib.labels_add("lifecycle", "circle,square")
    assert shown["version"] == 1 and [x["label"] for x in shown["labels"]] == ["circle", "square"]
    assert lib.labels_edit("lifecycle", add="star", drop=["square"])["version"] == 2
    assert [x["label"] for x in lib.labels_show("lifecycle")["labels"]] == ["circle", "star"]
    assert {"name": "lifecycle", "version": 2, "labels": 2} in lib.labels_list()
    with pytest.raises(LabelError, match="exists"):
        lib.labels_add("lifecycle", "x")
    with pytest.raises(LabelError, match="no label 'nope'"):
        lib.labels_edit("lifecycle", drop=["nope"])
    for nothing in ({}, {"add": []}, {"drop": []}):  # no new version for an edit that changes nothing, as the CLI
        with pytest.raises(UsageError, match="nothing to do"):
            lib.labels_edit("lifecycle", **nothing)
    assert lib.labels_show("lifecycle")["version"] == 2
    lib.labels_remove("lifecycle")
    with pytest.raises(LabelError, match="no label set named"):
        lib.labels_show("lifecycle")


def test_single_mode_agrees_with_classify(world_index, demo_embedder):
    lib, truth = world_index
    names = [f"{c} {s}" for c, s in shapes.seen_pairs()]
    lib.labels_add("pairs", ",".join(names))
    lib.tag("pairs", mode="single", threshold=-1.0)  # no calibration: every image gets its best label
    tagged = {r["path"]: r["label"] for r in lib.tag_rows("pairs")}
    singles = [p for p, t in truth.items() if len(t) == 1]
    direct = classify(singles, names, embedder=demo_embedder)
    assert [tagged[c.path] for c in direct] == [c.labels[0].label for c in direct]
    assert np.mean([tagged[p] in truth[p] for p in singles]) >= 0.9


def test_tagging_never_touches_images(world_index):
    lib, _ = world_index
    before = lib.embedder.image_calls
    lib.tag("circle,square,triangle,star", mode="multi")
    assert lib.embedder.image_calls == before


def test_multi_mode_gives_several_tags(world_index):
    lib, truth = world_index
    calls: list[tuple[str, int, int]] = []
    lib.tag("red,green,blue,yellow,purple,orange", mode="multi", progress=lambda *a: calls.append(a))
    assert calls[-1] == ("tagging", 96, 96) and [c[1] for c in calls] == sorted(c[1] for c in calls)
    got: dict[str, set] = {}
    for r in lib.tag_rows("red,green,blue,yellow,purple,orange"):
        got.setdefault(r["path"], set()).add(r["label"])
        assert 0.5 <= r["score"] <= 1
    want = {p: {n.split()[0] for n in names} for p, names in truth.items()}
    tp = sum(len(got.get(p, set()) & w) for p, w in want.items())
    precision = tp / max(1, sum(len(g) for g in got.values()))
    recall = tp / sum(len(w) for w in want.values())
    assert precision >= 0.8 and recall >= 0.7, (precision, recall)
    assert sum(len(g) > 1 for g in got.values()) >= 20


def test_none_of_these_leaves_images_untagged(world_index):
    lib, _ = world_index
    for mode in ("single", "multi"):
        report = lib.tag("a cat,a dog,a duck", mode=mode)
        assert report.counts == {}, (mode, report.thresholds)


def test_adding_a_label_recomputes_only_it_and_stale_tags_go(world_index):
    lib, _ = world_index
    lib.labels_add("grow", "circle,square")
    first = lib.tag("grow", mode="multi")
    assert (first.labels_computed, first.labels_reused) == (2, 0)
    assert lib.tag("grow", mode="multi").labels_computed == 0  # nothing changed
    lib.labels_edit("grow", add="star")
    again = lib.tag("grow", mode="multi")
    assert (again.labels_computed, again.labels_reused) == (1, 2)
    assert again.counts["star"] > 0 and again.counts["circle"] == first.counts["circle"]
    lib.labels_edit("grow", drop=["circle"])
    assert "circle" not in lib.tag_counts("grow")
    con = sqlite3.connect(lib.folder / "index.sqlite")
    versions = {v for (v,) in con.execute(
        "SELECT DISTINCT t.set_version FROM tags t JOIN labels l ON l.id = t.label_id "
        "JOIN label_sets s ON s.id = l.set_id WHERE s.name = 'grow'")}
    assert versions == {1, 2}  # square kept from v1, star tagged at v2: each tag records its version


def test_an_interrupted_tag_run_keeps_the_previous_tags(world_index, monkeypatch):
    from zsindex import tagger

    lib, _ = world_index
    lib.labels_add("crash", "circle,star")
    lib.tag("crash", mode="multi")
    before = sorted((r["path"], r["label"], r["score"]) for r in lib.tag_rows("crash"))
    counts = lib.tag_counts("crash")
    assert before

    real = tagger._scored
    seen_mid_run = []

    def dies_after_one_block(*args, **kwargs):
        blocks = real(*args, **kwargs)
        yield next(blocks)  # its tags are written, then the run dies
        seen_mid_run.append(Library(lib.folder).tag_counts("crash"))  # another reader, mid-run: not blocked
        raise KeyboardInterrupt

    monkeypatch.setattr(tagger, "SCORE_BLOCK", 16)
    monkeypatch.setattr(tagger, "_scored", dies_after_one_block)
    with pytest.raises(KeyboardInterrupt):
        lib.tag("crash", mode="multi", threshold=0.9)  # would drop almost every tag
    assert seen_mid_run == [counts]  # the old tags, not half of the new ones
    assert sorted((r["path"], r["label"], r["score"]) for r in lib.tag_rows("crash")) == before
    monkeypatch.setattr(tagger, "_scored", real)
    redo = lib.tag("crash", mode="multi", threshold=0.9)
    assert redo.labels_computed == 2 and redo.images == 96  # the interrupted run left nothing marked done
    assert sum(redo.counts.values()) < len(before)


def test_untag_export_and_search_by_tag(world_index):
    lib, truth = world_index
    lib.tag("triangle,circle", mode="multi")
    index = str(lib.folder)
    csv_out = CliRunner().invoke(cli, ["export", "--labels", "triangle,circle", "--index", index, "--csv"]).stdout
    lines = csv_out.splitlines()
    assert lines[0] == "path,label,score" and len(lines) > 10
    jl = CliRunner().invoke(cli, ["export", "--labels", "triangle,circle", "--index", index, "--json"]).stdout
    assert {json.loads(x)["label"] for x in jl.splitlines()} == {"triangle", "circle"}
    con = sqlite3.connect(lib.folder / "index.sqlite")
    tagged = {i for (i,) in con.execute(
        "SELECT t.image_id FROM tags t JOIN labels l ON l.id = t.label_id WHERE l.name = 'triangle'")}
    hits = lib.search("a shape", k=200, tag="triangle")
    assert hits and {h.id for h in hits} == tagged  # --tag selects exactly the tagged images
    assert lib.untag("triangle,circle") > 0
    assert lib.tag_counts("triangle,circle") == {}


def test_cli_labels_and_tag(world_index, tmp_path):
    lib, _ = world_index
    index = str(lib.folder)
    f = tmp_path / "colours.json"
    f.write_text(json.dumps({"red": ["something red", "a red shape"], "blue": ["something blue"]}))
    r = CliRunner().invoke(cli, ["labels", "add", "colours", "--file", str(f), "--index", index])
    assert r.exit_code == 0, r.output
    show = json.loads(CliRunner().invoke(cli, ["labels", "show", "colours", "--index", index]).stdout)
    assert show["labels"][0]["descriptions"] == ["something red", "a red shape"]
    r = CliRunner().invoke(cli, ["tag", "--labels", "colours", "--index", index, "--mode", "multi", "--json"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert rows and all(set(row) == {"path", "tags"} for row in rows)
    assert json.loads(r.stderr.splitlines()[-1])["counts"]["red"] > 0  # 96 images: no calibration warning
    small = CliRunner().invoke(cli, ["tag", "--labels", "colours", "--index", index, "--mode", "multi",
                                     "--path", "*/00*", "--summary"])  # 10 images
    assert small.exit_code == 0 and "thresholds calibrated on only 10 images are rough" in small.stderr
    table = CliRunner().invoke(cli, ["tags", "--index", index, "--table"]).stdout
    assert "red" in table
    one = CliRunner().invoke(cli, ["tag", "--labels", "nope", "--index", index])  # one ad-hoc label, not a set name
    assert one.exit_code == 0 and "no label set was named 'nope'" in one.stderr
    assert CliRunner().invoke(cli, ["untag", "--labels", "never", "--index", index]).exit_code == 2
    assert CliRunner().invoke(cli, ["tag", "--labels", "a,,b", "--index", index]).exit_code == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("cat\n,no label here\n")
    r = CliRunner().invoke(cli, ["labels", "add", "bad", "--file", str(bad), "--index", index])
    assert r.exit_code == 2 and "line 2" in r.output
    r = CliRunner().invoke(cli, ["untag", "--labels", "colours", "--index", index])
    assert r.exit_code == 0 and json.loads(r.stdout)["removed_tags"] > 0


def test_unicode_and_ten_thousand_labels(world_index):
    lib, _ = world_index
    lib.labels_add("unicode", "猫,Ölbaum,café")
    assert [x["label"] for x in lib.labels_show("unicode")["labels"]] == ["猫", "Ölbaum", "café"]
    names = [f"label {i}" for i in range(10_000)]
    lib.labels_add("big", names, templates=["{}"])
    assert lib.labels_list()[0]["labels"] == 10_000 or any(x["labels"] == 10_000 for x in lib.labels_list())
    report = lib.tag("big", mode="single", threshold=-1.0)
    assert report.images == 96 and sum(report.counts.values()) == 96
