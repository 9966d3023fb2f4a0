"""A user trial's faults, each tested as its class: label-file field types (files, CLI, HTTP), API parameter
types, no side effects of a failed command, whole camera names, every indexable format, --tag naming,
--path that matches nothing, CLI/API wording and plurals."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner

from zsindex.cli import cli
from zsindex.errors import LabelError, UsageError, plural
from zsindex.filters import camera_matches
from zsindex.labels import parse_label_file
from zsindex.library import Library

from .test_ingest import draw


@pytest.fixture(scope="module")
def lib(tmp_path_factory, demo_embedder):
    base = tmp_path_factory.mktemp("trial")
    draw(base / "p", ["red-circle", "red-square", "blue-star", "green-triangle"])
    lib = Library(base / "index", embedder=demo_embedder)
    lib.ingest([base / "p"], workers=0)
    lib.labels_add("my:set", "red,blue")
    lib.labels_add("fruit", "Green,apple")
    lib.tag("my:set", mode="multi", threshold=-1.0)
    lib.tag("fruit", mode="multi", threshold=-1.0)
    return lib


def run(*args: str) -> object:
    return CliRunner().invoke(cli, list(args))


# -- 1. label files: every field's type, in every reader --------------------------------------------------
@pytest.mark.parametrize("name, text, message", [
    ("num.json", '{"red": 5}', r"num.json, label 'red': expected its descriptions .* not 5 \(a number\)"),
    ("bool.json", '{"blue": true}', r"label 'blue'.* not true \(a boolean\)"),
    ("name.json", '[{"name": "red", "label": "red"}]', r"item 1: an object needs one \"label\" \(or \"name\"\) key"),
    ("nolabel.json", '[{"descriptions": ["a red thing"]}]', r"item 1: an object needs one \"label\""),
    ("tpl.json", '[{"label": "red", "templates": "a {}"}]', r"item 1 \(label 'red'\): templates must be a list"),
    ("tplitem.json", '[{"label": "red", "templates": [3]}]', r"label 'red'.*templates: each template must be a "),
    ("desc.json", '[{"label": "red", "descriptions": [1]}]', r"label 'red'.*each description must be a non-empty"),
    ("label.json", '[{"label": 7}]', r"item 1: a label must be a non-empty string, not 7"),
    ("typo.json", '{"red": {"descripton": "x"}}', r"label 'red'\): unknown key 'descripton'"),
    ("top.json", '{"labels": ["a"], "templates": ["x {}"]}', r"unknown key 'templates' beside \"labels\""),
    ("item.json", '[["red"]]', r"item 1: expected a label name or an object"),
    ("quote.csv", 'label,description\n"red,\n', r"quote.csv, line 2: cannot read the CSV"),
])
def test_label_file_field_types_are_checked_with_file_entry_and_field(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(LabelError, match=message):
        parse_label_file(path)


def test_name_is_the_label_key_as_in_a_csv_header(tmp_path):
    (tmp_path / "n.json").write_text('[{"name": "red", "descriptions": ["a red thing"]}]')
    [label] = parse_label_file(tmp_path / "n.json")
    assert (label.name, label.descriptions) == ("red", ("a red thing",))


def test_label_file_type_errors_are_usage_errors_in_classify_and_labels_add(tmp_path):
    (tmp_path / "num.json").write_text('{"red": 5}')
    (tmp_path / "bool.json").write_text('{"blue": true}')
    draw(tmp_path / "img", ["red-circle"])
    r = run("classify", str(tmp_path / "img" / "red-circle.png"), "--labels-file", str(tmp_path / "num.json"),
            "--model", "demo")
    assert r.exit_code == 2 and "not 5 (a number)" in r.output and "Traceback" not in r.output
    r = run("labels", "add", "x", "--file", str(tmp_path / "bool.json"), "--index", str(tmp_path / "i"))
    assert r.exit_code == 2 and "not true (a boolean)" in r.output


def test_empty_templates_mean_the_defaults_in_files_api_and_http(tmp_path, lib):
    (tmp_path / "t.json").write_text('[{"label": "red", "templates": []}]')
    assert parse_label_file(tmp_path / "t.json")[0].templates == ()  # the set's templates
    from fastapi.testclient import TestClient

    from zsindex.service.app import create_app

    client = TestClient(create_app(lib), base_url="http://127.0.0.1")
    r = client.put("/api/labels/httpset", json={"labels": ["red"], "templates": ["a drawing of a {}."]})
    assert r.status_code == 201, r.text
    r = client.put("/api/labels/httpset", json={"labels": ["red"], "templates": []})
    assert r.status_code == 200 and r.json()["templates"] == lib.labels_show("fruit")["templates"]
    assert client.put("/api/labels/bad", json={"labels": ["red"], "templates": "a {}"}).status_code == 422
    r = client.put("/api/labels/comma", json={"labels": ["red, dark", "RED, DARK"]})
    assert r.status_code == 422 and "appears twice" in r.text  # names taken whole, checked as a file's
    r = client.put("/api/labels/comma", json={"labels": ["red, dark", "blue"]})
    assert r.status_code == 201 and r.json()["labels"] == ["red, dark", "blue"]
    for name in ("httpset", "comma"):
        lib.labels_remove(name)


def test_api_label_lists_and_templates_are_checked_as_files_are(lib):
    with pytest.raises(LabelError, match="item 2: a label must be a non-empty string, not 5"):
        lib.labels_add("bad", ["red", 5])
    with pytest.raises(LabelError, match="templates= must be a list of strings"):
        lib.labels_add("bad", "red,blue", templates="a {}")
    assert not lib.has_label_set("bad")


# -- 2. API parameters of the wrong type are UsageErrors; the CLI's forms are accepted ---------------------
def test_search_dates_take_the_cli_forms(lib):
    base = [h.id for h in lib.search("red", after="2000-01-01", k=10)]
    assert base
    assert [h.id for h in lib.search("red", after=dt.date(2000, 1, 1), k=10)] == base
    assert [h.id for h in lib.search("red", after=dt.datetime(2000, 1, 1), k=10)] == base
    assert lib.search("red", before="2000-01-01") == []


@pytest.mark.parametrize("kwargs, message", [
    ({"after": 2023}, "after= takes a date"), ({"before": ["2023"]}, "before= takes a date"),
    ({"after": "yesterday"}, "after= takes a date"), ({"camera": 5}, "camera= takes text"),
    ({"format": ["png"]}, "format= takes text"), ({"tag": 1}, "tag= takes text"), ({"path": 3}, "path= takes text"),
    ({"keyword": b"x"}, "keyword= takes text"), ({"k": "5"}, "k= takes a whole number"),
    ({"top_k": 2.5}, "top_k= takes a whole number"), ({"offset": "1"}, "offset= takes a whole number"),
    ({"min_score": "0.2"}, "min_score= takes a number"), ({"not_weight": "x"}, "not_weight= takes a number"),
    ({"colour": "red"}, "unknown filter colour="), ({"k": 0}, "k= must be at least 1"),
])
def test_search_parameters_of_the_wrong_type_are_usage_errors(lib, kwargs, message):
    with pytest.raises(UsageError, match=message):
        lib.search("red", **kwargs)


def test_tag_and_tag_rows_check_their_parameters_before_writing(lib):
    with pytest.raises(UsageError, match="after= takes a date"):
        lib.tag("adhoc1,adhoc2", after=5)
    with pytest.raises(UsageError, match="threshold= takes a number"):
        lib.tag("adhoc1,adhoc2", threshold="0.2")
    with pytest.raises(UsageError, match="unknown filter"):
        lib.tag_rows("fruit", colour="red")
    assert not lib.has_label_set("adhoc1,adhoc2")


# -- 3. a failed command leaves nothing behind -----------------------------------------------------------
def test_eval_keywords_of_an_unknown_set_creates_nothing_and_names_the_set(lib):
    before = lib.labels_list()
    r = run("eval", "--keywords", "NOSUCH", "--index", str(lib.folder))
    assert r.exit_code == 2 and "no label set named 'NOSUCH'" in r.output
    assert lib.labels_list() == before


def test_a_failed_adhoc_tag_run_removes_its_set(lib, monkeypatch):
    import zsindex.library as library

    def boom(*a, **k):
        raise UsageError("boom")

    monkeypatch.setattr(library.Library, "_tag", boom)
    with pytest.raises(UsageError, match="boom"):
        lib.tag("zebra,lion")
    assert not lib.has_label_set("zebra,lion")
    report = lib.tag("zebra,lion", path="*/nothing-here*")  # matches nothing: no set is registered either
    assert "nothing was tagged" in report.notes[0] and not lib.has_label_set("zebra,lion")


# -- 4. --camera is the whole camera name --------------------------------------------------------------------
@pytest.mark.parametrize("make, model, wanted, expected", [
    ("Canon", "Canon PowerShot S400", "Canon PowerShot S40", False),
    ("Canon", "Canon PowerShot S40", "Canon PowerShot S40", True),
    ("Apple", "iPhone 6 Plus", "iPhone 6", False), ("Apple", "iPhone 6", "iphone 6", True),
    ("Apple", "iPhone 6 Plus", "Apple iPhone 6 Plus", True), ("Apple", "iPhone 6 Plus", "apple", True),
    ("NIKON CORPORATION", "NIKON D750", "Nikon", True), ("NIKON CORPORATION", "NIKON D7500", "Nikon D750", False),
    ("Apple", "iPhone 6 Plus", "iPhone 6*", True), ("Canon", "Canon EOS RP", "*eos*", True),
    ("Canon", "Canon PowerShot S400", "Canon PowerShot S40?", True),
])
def test_camera_matches_the_whole_name_a_brand_or_a_glob(make, model, wanted, expected):
    assert camera_matches(make, model, wanted) is expected


# -- 5. every format zsindex can index is a known --format ----------------------------------------------------
@pytest.mark.parametrize("name", ["cr2", "CR2", ".dng", "jxl", "mp4", "mov", "raw", "nef", "mpeg", "jpg", "tiff"])
def test_every_indexable_format_is_known_even_when_none_is_indexed(lib, name):
    hits = lib.search("red", format=name, k=5)
    assert hits == [] or name in ("jpg", "tiff")
    r = run("search", "red", "--format", name, "--index", str(lib.folder))
    assert r.exit_code == 0, r.output


# -- 6. --tag: a set name with a colon, labels in any case ---------------------------------------------------
@pytest.mark.parametrize("tag, tag_set", [("my:set:red", None), ("red", "my:set"), ("GREEN", None),
                                          ("fruit:green", None), ("green", "fruit"), ("my:set:RED", None)])
def test_tag_filter_splits_at_any_colon_and_ignores_case(lib, tag, tag_set):
    assert len(lib.search("red", tag=tag, tag_set=tag_set, k=10)) == 4
    args = ["--tag-set", tag_set] if tag_set else []
    r = run("search", "red", "--tag", tag, *args, "--index", str(lib.folder), "--paths-only")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 4, r.output


def test_label_images_and_drop_ignore_label_case(lib):
    pairs = lib.label_images("fruit", "GREEN", 10, 0)
    assert len(pairs) == 4


# -- 7. every --path warns when it matches nothing -------------------------------------------------------------
@pytest.mark.parametrize("args", [["search", "red"], ["tag", "-l", "fruit", "--threshold", "-1"],
                                  ["sidecars", "write", "-l", "fruit", "--dry-run"], ["keywords"]])
def test_every_path_option_warns_when_nothing_matches(lib, args):
    r = run(*args, "--path", "*/nothing-here*", "--index", str(lib.folder))
    assert r.exit_code == 0, r.output
    assert "warning: --path '*/nothing-here*' matches no indexed image" in r.stderr
    r = run(*args, "--path", "*/red-*", "--index", str(lib.folder))
    assert "matches no indexed image" not in r.stderr


# -- 8. messages: CLI commands through the CLI, API methods through the API; plurals ---------------------------
def test_existing_set_message_names_the_command_or_the_method(lib):
    with pytest.raises(LabelError, match=r"Library\.labels_edit\('fruit'\)"):
        lib.labels_add("fruit", "x")
    r = run("labels", "add", "my:set", "-l", "x", "--index", str(lib.folder))
    assert r.exit_code == 2 and "`zsindex labels edit my:set`" in r.output and "Library" not in r.output
    r = run("labels", "add", "two words", "-l", "x", "--index", str(lib.folder))
    r = run("labels", "add", "two words", "-l", "x", "--index", str(lib.folder))
    assert "`zsindex labels edit 'two words'`" in r.output
    lib.labels_remove("two words")
    r = run("labels", "edit", "nosuch", "--add", "x", "--index", str(lib.folder))
    assert "`zsindex labels add nosuch ...`" in r.output and "Library" not in r.output


def test_plural_helper_and_a_single_skipped_file(tmp_path, demo_embedder):
    assert plural(1, "file was", "files were") == "1 file was" and plural(2, "file") == "2 files"
    draw(tmp_path / "p", ["red-circle"])
    (tmp_path / "p" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    r = run("ingest", str(tmp_path / "p"), "--index", str(tmp_path / "i"), "--model", "demo")
    assert r.exit_code == 3 and "1 file was skipped" in r.output and "1 files" not in r.output


# -- a path under a file: every command that takes paths says which file is in the way --------------------
@pytest.mark.parametrize("command", ["ingest", "ingest-two", "classify", "similarity", "eval", "search-like",
                                     "export", "labels-file", "classify-labels-file", "eval-confusion", "forget"])
def test_a_path_under_a_file_names_the_file_in_the_way(lib, tmp_path, command):
    """A path whose parent is a file cannot exist, so nothing is gone: the message says which file stands in
    the way (never only "does not exist", nor the hint for a folder that is gone: zsindex forget)."""
    file = next(p for p in (lib.folder.parent / "p").iterdir() if p.suffix == ".png")
    under = str(file / "x")
    idx = ["--index", str(lib.folder)]
    args = {"ingest": ["ingest", under, "-q", *idx],
            "ingest-two": ["ingest", under, str(tmp_path / "gone" / "y"), "-q", *idx],
            "classify": ["classify", under, "-l", "a,b", "-m", "demo"],
            "similarity": ["similarity", "-i", under, "cat", "-m", "demo"],
            "eval": ["eval", under, *idx],
            "search-like": ["search", "--like", under, *idx],
            "export": ["export", "-l", "fruit", "-o", under + ".csv", *idx],
            "labels-file": ["labels", "add", "more", "--file", under, *idx],
            "classify-labels-file": ["classify", str(file), "--labels-file", under, "-m", "demo"],
            "eval-confusion": ["eval", str(file.parent), "--confusion", under, *idx],
            "forget": ["forget", under, *idx]}[command]
    r = run(*args)
    assert not (r.exception and not isinstance(r.exception, SystemExit)), r.output
    message = " ".join(r.output.split())
    assert f"{file} is a file, not a folder" in message, (command, r.output)
    if command == "forget":  # nothing under it is indexed: a warning, and the file's own path to give instead
        assert r.exit_code == 0 and "give its own path" in message, r.output
        return
    assert r.exit_code == 2, (command, r.output)
    if command == "ingest-two":  # one path is simply gone: the hint for it stays
        assert "forget" in message, r.output
    else:
        assert "forget" not in message, (command, r.output)
