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




def test_counts_cover_only_the_images_the_filter_selected(two_sets):
    """tag --path --summary, the run report on stderr, and the library's counts with filters count the images
    the filter selected, as the plain output lists them; without a filter, every image."""
    lib, index = two_sets  # colours: every image tagged red and blue
    tag = ("tag", "-l", "colours", "--mode", "multi", "--threshold", "-1", "--path", "*/red-*", "--index", index)
    plain = run(*tag, "--csv")
    assert plain.exit_code == 0, plain.output
    listed = [line.split(",")[1] for line in plain.stdout.splitlines()[1:]]
    assert sorted(listed) == ["blue", "blue", "red", "red"]  # two images, two tags each
    summary = run(*tag, "--summary", "--csv")
    assert summary.exit_code == 0, summary.output
    assert sorted(summary.stdout.splitlines()[1:]) == ["colours,blue,2", "colours,red,2"]
    for r in (plain, summary):
        assert json.loads(r.stderr.splitlines()[0])["counts"] == {"red": 2, "blue": 2}  # the run report
    assert {r["label"]: r["images"] for r in lib.tag_summary("colours", path="*/red-*")} == {"red": 2, "blue": 2}
    assert lib.tag_counts("colours", path="*/red-*") == {"red": 2, "blue": 2}
    assert lib.tag_counts("colours", path="*/red-circle.png", format="png") == {"red": 1, "blue": 1}
    assert lib.tag_counts("colours") == {"red": 4, "blue": 4}  # no filter: every image
    assert lib.tag_counts("colours", tag="colours:red", path="*/blue-*") == {"red": 1, "blue": 1}
    whole = run("tag", "-l", "colours", "--mode", "multi", "--threshold", "-1", "--summary", "--index", index)
    assert sorted(json.loads(x)["images"] for x in whole.stdout.splitlines()) == [4, 4]


def test_sidecar_and_keyword_counts_cover_only_the_images_the_filter_selected(two_sets, tmp_path):
    from zsindex import xmp

    lib, index = two_sets
    folder = lib.folder.parent / "p"
    dry = run("sidecars", "write", "-l", "colours", "--path", "*/red-*", "--dry-run", "--index", index, "--json")
    assert dry.exit_code == 0, dry.output
    report = json.loads(dry.stdout)
    assert report["created"] == 2 and {img.rsplit("/", 1)[1] for d in report["sidecars"] for img in d["images"]} == {
        "red-circle.png", "red-square.png"}
    user = xmp.XmpDoc()
    user.add(xmp.SUBJECT, "holiday")  # the user's own keyword, beside two images, one of them red
    for name in ("red-circle.png", "blue-star.png"):
        (folder / (name + ".xmp")).write_bytes(user.to_bytes())
    assert run("ingest", str(folder), "--index", index).exit_code == 0
    counted = run("keywords", "--path", "*/red-*", "--index", index, "--csv")
    assert counted.stdout.splitlines()[1:] == ["holiday,1"]
    assert run("keywords", "--index", index, "--csv").stdout.splitlines()[1:] == ["holiday,2"]


def test_a_label_that_reads_like_a_misspelt_set_name_says_which_set(two_sets):
    """`tag -l fruti` is an ad-hoc label (one label is fine), but it reads like the set 'fruit': the note says
    so and how to take the new set away; a label like no set's name gets the plain note."""
    lib, index = two_sets
    r = run("tag", "-l", "Fruti", "--threshold", "0.9", "--index", index)
    assert r.exit_code == 0, r.output
    assert "did you mean the set 'fruit'?" in r.stderr and "`zsindex labels remove Fruti`" in r.stderr, r.stderr
    r = run("tag", "-l", "purple", "--threshold", "0.9", "--index", index)
    assert r.exit_code == 0 and "no label set was named 'purple'" in r.stderr and "did you mean" not in r.stderr
    for name in ("Fruti", "purple"):
        lib.labels_remove(name)


def test_a_file_named_where_labels_go_is_refused_and_registers_nothing(tmp_path, demo_embedder, monkeypatch):
    """`zsindex tag -l labels.txt`: the file's path was taken for one ad-hoc label, registered as a set with
    that name, and every image scored against it. A name that is an existing file (and no registered set) is a
    usage error now; a registered set of that name is still the set."""
    from zsindex.errors import UsageError
    from zsindex.library import Library

    from .conftest import draw_shapes

    draw_shapes(tmp_path / "p", 4, 64, seed=2)
    lib = Library(tmp_path / "i", embedder=demo_embedder)
    lib.ingest([tmp_path / "p"], workers=0)
    listed = tmp_path / "labels.txt"
    listed.write_text("red\nblue\n")
    with pytest.raises(UsageError, match="is a file, not labels"):
        lib.tag(str(listed))
    with pytest.raises(UsageError, match="is a folder, not labels"):
        lib.tag(str(tmp_path / "p"))
    # the class: every way labels are given as text (classify, labels_add, labels_edit's add)
    import zsindex

    for call in (lambda: zsindex.classify([next((tmp_path / "p").glob("*.png"))], str(listed),
                                          embedder=demo_embedder),
                 lambda: lib.labels_add("from-file", str(listed)), lambda: lib.labels_edit("x", add=str(listed))):
        with pytest.raises(UsageError, match="is a file, not labels"):
            call()
    assert lib.labels_list() == []
    (tmp_path / "circle").write_text("")  # a plain word is a label, even beside a file of that name
    monkeypatch.chdir(tmp_path)
    assert lib.tag("circle", threshold=0.2).labels_computed == 1
    lib.labels_remove("circle")
    lib.labels_add(str(listed.name), "red,blue")  # labels.txt is now both a file here and a registered set
    assert lib.tag("labels.txt", threshold=0.2).labels_computed == 2


def test_a_tag_that_reads_two_ways_is_refused_not_merged(tmp_path, demo_embedder):
    """--tag red:circle is the label 'circle' of set 'red' or the label 'red:circle' of another set; with both
    present the search took the union of the two, silently. Any text that names labels more than one way
    (a colon in a set's name too: 'my:set:red') is a usage error that names each reading; --tag-set, or a
    text with one reading, still works."""
    from zsindex.errors import UsageError

    draw(tmp_path / "p", ["red-circle", "red-square", "blue-star"])
    lib = Library(tmp_path / "index", embedder=demo_embedder)
    lib.ingest([tmp_path / "p"], workers=0)
    for name, labels in (("a:b", '"red:circle",blue'), ("red", "circle,square"), ("my", '"set:red",x'),
                         ("my:set", "red,y")):
        lib.labels_add(name, labels)
        lib.tag(name, mode="multi", threshold=-1.0)
    for text, ways in (("red:circle", 2), ("my:set:red", 2)):
        with pytest.raises(UsageError, match=f"reads {ways} ways"):
            lib.search("x", tag=text)
        r = run("search", "x", "--tag", text, "--index", str(lib.folder), "--csv")
        assert r.exit_code == 2 and "--tag-set" in r.stderr and "Traceback" not in r.output, r.output
    assert len(lib.search("x", tag="circle", tag_set="red", k=10)) == 3
    assert len(lib.search("x", tag="red:circle", tag_set="a:b", k=10)) == 3
    assert len(lib.search("x", tag="a:b:blue", k=10)) == 3  # one reading only
