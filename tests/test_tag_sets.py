"""Same-named labels of different sets stay apart: tags per set, --tag SET:LABEL, tag --path prints only its images."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from zsindex.cli import cli
from zsindex.library import Library

from .test_ingest import draw


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory, demo_embedder):
    base = tmp_path_factory.mktemp("sets")
    draw(base / "p", ["red-circle", "red-square", "blue-star", "green-triangle"])
    lib = Library(base / "index", embedder=demo_embedder)
    lib.ingest([base / "p"], workers=0)
    lib.labels_add("colours", "red,blue")
    lib.labels_add("fruit", "red,green")
    lib.tag("colours", mode="multi", threshold=-1.0)  # every image gets both: a cut-off below any cosine
    return lib, str(lib.folder)


def run(*args: str) -> object:
    return CliRunner().invoke(cli, list(args))


def test_tag_path_prints_only_the_matched_images_and_says_when_none_match(two_sets):
    lib, index = two_sets
    r = run("tag", "-l", "fruit", "--path", "*/red-*", "--threshold", "-1", "--mode", "multi", "--index", index)
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert sorted(row["path"].rsplit("/", 1)[1] for row in rows) == ["red-circle.png", "red-square.png"]
    r = run("tag", "-l", "fruit", "--path", "*/purple-*", "--index", index)
    assert r.exit_code == 0 and r.stdout == "" and "no indexed image matches" in r.stderr
    summary = run("tag", "-l", "fruit", "--path", "*/red-*", "--threshold", "-1", "--mode", "multi", "--summary",
                  "--index", index, "--csv")
    lines = summary.stdout.splitlines()
    assert lines[0] == "set,label,images" and sorted(lines[1:]) == ["fruit,green,2", "fruit,red,2"]


def test_tags_has_a_set_column_and_search_can_name_the_set(two_sets):
    lib, index = two_sets
    run("tag", "-l", "fruit", "--path", "*/red-*", "--threshold", "-1", "--mode", "multi", "--index", index)
    rows = [json.loads(x) for x in run("tags", "--index", index).stdout.splitlines()]
    assert {(r["set"], r["label"]): r["images"] for r in rows} == {
        ("colours", "red"): 4, ("colours", "blue"): 4, ("fruit", "red"): 2, ("fruit", "green"): 2}
    table = run("tags", "--index", index, "--table").stdout
    assert table.splitlines()[0].split() == ["set", "label", "images"]

    def hits(*args: str) -> int:
        r = run("search", "a shape", "-k", "10", "--index", index, *args)
        assert r.exit_code == 0, r.output
        return len(r.stdout.splitlines())

    assert hits("--tag", "red") == 4  # in any set
    assert hits("--tag", "fruit:red") == 2 and hits("--tag", "red", "--tag-set", "fruit") == 2
    assert hits("--tag", "colours:red") == 4
    assert len(lib.search("a shape", top_k=10, tag="red", tag_set="fruit")) == 2
    r = run("search", "a shape", "--tag", "fruit:blue", "--index", index)
    assert r.exit_code == 2 and "colours:blue" in r.stderr  # names the labels there are
    # The set named twice, as SET:LABEL and --tag-set, means that label; a label the set lacks is named with
    # the set's own labels, never with a SET:LABEL the message itself would refuse.
    assert hits("--tag", "fruit:red", "--tag-set", "fruit") == 2
    assert hits("--tag", "FRUIT:Red", "--tag-set", "fruit") == 2
    r = run("search", "a shape", "--tag", "fruit:blue", "--tag-set", "fruit", "--index", index)
    assert r.exit_code == 2 and "no label 'fruit:blue' in label set 'fruit'" in r.stderr, r.stderr
    assert r.stderr.rstrip().endswith(("labels: red, green", "labels: green, red")), r.stderr
