"""Prompt templates are checked in full wherever they enter (and where an index holds them); ad-hoc tag runs
that match nothing; label-set messages, name case and capped name lists; strict booleans over HTTP."""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

import zsindex
from zsindex.cli import cli
from zsindex.errors import LabelError, known_list
from zsindex.labels import Label, LabelSet, check_templates
from zsindex.library import Library, as_label_set
from zsindex.service import create_app

from .service_world import wait_job
from .test_ingest import draw

BAD_TEMPLATES = ["a {} {x}", "a {0} {}", "{}}", "{{}}", "{x}", "{0}", "{!r}", "{:>9}", "{", "no field", "{} {}",
                 "a {:{}}"]
GOOD_TEMPLATES = ["a photo of a {}.", "{{ {} }}", "{}", "a {} in {{braces}}"]


def _db(lib: Library) -> sqlite3.Connection:
    """The index's own SQLite file, to write what an older zsindex could have stored."""
    return sqlite3.connect(lib.folder / "index.sqlite")


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def index(tmp_path_factory, demo_embedder):
    base = tmp_path_factory.mktemp("tpl")
    draw(base / "p", ["red-circle", "red-square", "blue-star", "green-triangle"])
    lib = Library(base / "index", embedder=demo_embedder)
    lib.ingest([base / "p"], workers=0)
    lib.labels_add("shapes", "circle,square,star,triangle")
    lib.labels_add("my:set", "red,blue")
    lib.labels_add("many", [f"label{i:03d}" for i in range(60)])
    return lib, base


# -- 1. templates -----------------------------------------------------------------------------------
@pytest.mark.parametrize("template", BAD_TEMPLATES)
def test_every_malformed_template_is_a_label_error_naming_it(template):
    with pytest.raises(LabelError) as e:
        check_templates([template])
    assert repr(template) in str(e.value) and "{}" in str(e.value)


@pytest.mark.parametrize("template", GOOD_TEMPLATES)
def test_a_good_template_formats_with_the_label_in_it(template):
    assert check_templates([template]) == (template,)
    prompts = Label("zebra").prompts([template])
    assert prompts == [template.format("zebra")] and "zebra" in prompts[0]


@pytest.mark.parametrize("template", ["a {} {x}", "a {0} {}", "{}}", "{{}}"])
def test_classify_template_option_refuses_bad_templates(index, template):
    _, base = index
    r = run("classify", str(base / "p" / "red-circle.png"), "--labels", "a,b", "-t", template, "--model", "demo")
    assert r.exit_code == 2 and r.exception is None or isinstance(r.exception, SystemExit), r.output
    assert repr(template) in r.stderr and "Traceback" not in r.output


def test_label_files_refuse_bad_templates(index, tmp_path):
    _, base = index
    (tmp_path / "l.json").write_text(json.dumps([{"label": "a", "templates": ["a {} {x}"]}, "b"]))
    (tmp_path / "l.csv").write_text("label,template\na,a {0} {}\nb,\n")
    image = str(base / "p" / "red-circle.png")
    for name, bad in (("l.json", "a {} {x}"), ("l.csv", "a {0} {}")):
        r = run("classify", image, "--labels-file", str(tmp_path / name), "--model", "demo")
        assert r.exit_code == 2 and repr(bad) in r.stderr and name in r.stderr, r.output


def test_eval_templates_refuses_bad_templates(tmp_path):
    for cls in ("red", "blue"):
        draw(tmp_path / "ds" / cls, [f"{cls}-circle"])
    r = run("eval", str(tmp_path / "ds"), "--templates", "a {} {x}|a photo of a {}", "--model", "demo")
    assert r.exit_code == 2 and "'a {} {x}'" in r.stderr and "--templates" in r.stderr, r.output


def test_labels_add_template_is_refused_not_stored(index):
    lib, _ = index
    r = run("labels", "add", "tplbad", "--labels", "a,b", "-t", "a {} {x}", "--index", str(lib.folder))
    assert r.exit_code == 2 and "'a {} {x}'" in r.stderr, r.output
    assert not lib.has_label_set("tplbad")


def test_python_api_refuses_bad_templates_in_a_label_set_and_in_labels(index):
    lib, _ = index
    with pytest.raises(LabelError, match=r"\{0\}"):
        as_label_set(LabelSet([Label("a"), Label("b")], ("{0} photo",)))
    with pytest.raises(LabelError, match=r"label 'a'.*\{x\}"):
        lib.labels_add("apibad", LabelSet([Label("a", templates=("a {} {x}",)), Label("b")]))
    with pytest.raises(LabelError):
        lib.labels_add("apibad", "a,b", templates=["{{}}"])
    assert not lib.has_label_set("apibad")


def test_a_bad_template_stored_in_an_old_index_is_a_clear_error(index, tmp_path, demo_embedder):
    lib, _ = index
    lib.labels_add("oldbad", "circle,square")
    lib.labels_add("oldbad2", "circle,square")
    db = _db(lib)
    db.execute("UPDATE label_sets SET templates = ? WHERE name = 'oldbad'", (json.dumps(["a {} {x}"]),))
    db.execute("UPDATE labels SET templates = ? WHERE name = 'square' AND set_id = "
               "(SELECT id FROM label_sets WHERE name = 'oldbad2')", (json.dumps(["{0} {}"]),))
    db.commit()
    db.close()
    try:
        fresh = Library(lib.folder, embedder=demo_embedder)
        with pytest.raises(LabelError, match=r"label set 'oldbad' .*'a \{\} \{x\}'.*labels_remove"):
            fresh.tag("oldbad")
        with pytest.raises(LabelError, match=r"label set 'oldbad2' .*\(label 'square'\)"):
            fresh.tag("oldbad2")
        r = run("tag", "--labels", "oldbad", "--index", str(lib.folder))
        assert r.exit_code == 2 and "'a {} {x}'" in r.stderr and "zsindex labels remove oldbad" in r.stderr, r.output
        assert "Traceback" not in r.output
        assert fresh.labels_show("oldbad")["templates"] == ["a {} {x}"]  # still shown, so it can be seen
    finally:
        lib.labels_remove("oldbad")
        lib.labels_remove("oldbad2")


@pytest.fixture
def client(index, demo_embedder):
    lib, base = index
    app = create_app(zsindex.open(lib.folder, embedder=demo_embedder), roots=[base / "p"], ingest_workers=0)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


def _message(r, status):
    assert r.status_code == status, r.text
    return r.json()["error"]["message"]


def test_http_put_refuses_bad_templates_and_a_stored_one_fails_the_job_clearly(client, index):
    lib, _ = index
    for bad in ("a {} {x}", "{{}}", "{}}"):
        assert repr(bad) in _message(client.put("/api/labels/httpbad", json={"labels": ["a", "b"],
                                                                             "templates": [bad]}), 422)
    assert client.get("/api/labels/httpbad").status_code == 404
    assert client.put("/api/labels/httpok", json={"labels": ["a", "b"]}).status_code == 201
    assert "'{0}'" in _message(client.put("/api/labels/httpok", json={"labels": ["a", "b"], "templates": ["{0}"]}),
                               422)
    try:
        db = _db(lib)
        db.execute("UPDATE label_sets SET templates = ? WHERE name = 'httpok'", (json.dumps(["a {} {x}"]),))
        db.commit()
        db.close()
        job = wait_job(client, client.post("/api/labels/httpok/tag", json={}).json()["id"])
        assert job["state"] == "failed" and "'a {} {x}'" in json.dumps(job) and "internal error" not in json.dumps(job)
    finally:
        client.delete("/api/labels/httpok")


# -- 5. strict booleans over HTTP ---------------------------------------------------------------------
def test_http_booleans_are_strict(client):
    for bad in ("yes", "true", 1, 0, "on", None.__class__.__name__):
        assert "auto" in _message(client.put("/api/labels/boolset", json={"labels": ["a"], "auto": bad}), 422)
    assert client.get("/api/labels/boolset").status_code == 404
    r = client.put("/api/labels/boolset", json={"labels": ["a"], "auto": True})
    assert r.status_code == 201 and r.json()["auto"] is True
    client.delete("/api/labels/boolset")
    for bad in ("yes", "on", "maybe"):
        assert "group_stems" in _message(client.get("/api/search", params={"q": "red", "group_stems": bad}), 422)
    for good in ("true", "false", "1", "0", "True"):
        assert client.get("/api/search", params={"q": "red", "group_stems": good}).status_code == 200


# -- 2. ad-hoc tag with a --path matching nothing ----------------------------------------------------
@pytest.mark.parametrize("extra", [[], ["--summary"], ["--summary", "--table"]])
def test_adhoc_tag_with_a_path_matching_nothing_exits_0_like_a_registered_set(index, extra):
    lib, _ = index
    before = [s["name"] for s in lib.labels_list()]
    for labels in ("adhoc1,adhoc2", "shapes"):
        r = run("tag", "--labels", labels, "--path", "/nomatch/*", "--index", str(lib.folder), *extra)
        assert r.exit_code == 0, r.output
        assert "no indexed image matches the filters; nothing was tagged" in r.stderr
        assert "no label set named" not in r.output
    assert [s["name"] for s in lib.labels_list()] == before


# -- 3. label-set command messages ---------------------------------------------------------------------
def test_labels_remove_and_edit_of_an_unknown_set(index):
    lib, _ = index
    r = run("labels", "remove", "nonexist", "--index", str(lib.folder))
    assert r.exit_code == 2 and "no label set named 'nonexist'" in r.stderr and "'shapes'" in r.stderr
    assert "labels add" not in r.stderr
    r = run("labels", "edit", "nonexist", "--add", "x", "--index", str(lib.folder))
    assert r.exit_code == 2 and "no label set named 'nonexist'" in r.stderr


def test_labels_edit_with_an_empty_label_or_nothing_to_do_is_a_usage_error(index):
    lib, _ = index
    version = lib.labels_show("shapes")["version"]
    r = run("labels", "edit", "shapes", "--add", "", "--index", str(lib.folder))
    assert r.exit_code == 2 and "'--add'" in r.stderr and "is empty" in r.stderr, r.output
    r = run("labels", "edit", "shapes", "--drop", " ", "--index", str(lib.folder))
    assert r.exit_code == 2 and "'--drop'" in r.stderr and "is empty" in r.stderr, r.output
    r = run("labels", "edit", "shapes", "--index", str(lib.folder))
    assert r.exit_code == 2 and all(o in r.stderr for o in ("--add", "--add-file", "--drop", "--auto")), r.output
    assert lib.labels_show("shapes")["version"] == version


def test_a_line_break_in_a_label_list_gets_our_message(index):
    lib, _ = index
    r = run("labels", "add", "nl", "--labels", "a\nb", "--index", str(lib.folder))
    assert r.exit_code == 2 and "line break" in r.stderr and "universal-newline" not in r.stderr, r.output


def test_known_lists_are_capped(index):
    lib, _ = index
    assert known_list([]) == "none yet"
    assert known_list(["a", "b"]) == "a, b"
    capped = known_list([str(i) for i in range(45)])
    assert capped.startswith("0, 1") and capped.endswith("… and 25 more") and ", 20," not in capped
    r = run("search", "red", "--tag", "nope", "--index", str(lib.folder))
    assert r.exit_code == 2 and "no label 'nope'" in r.stderr and "more" in r.stderr, r.output
    assert "label059" not in r.stderr
    r = run("labels", "edit", "many", "--drop", "nope", "--index", str(lib.folder))
    assert r.exit_code == 2 and "… and 40 more" in r.stderr, r.output


def test_the_known_sets_list_is_capped(tmp_path, demo_embedder):
    lib = Library(tmp_path / "index", embedder=demo_embedder, create=True)
    for i in range(30):
        lib.labels_add(f"set{i:02d}", "a")
    with pytest.raises(LabelError, match=r"'set19' … and 10 more\)$"):
        lib.labels_remove("nope")


# -- 4. set names ignore case when unambiguous -----------------------------------------------------------
def test_set_names_match_ignoring_case(index):
    lib, _ = index
    assert lib.labels_show("SHAPES")["name"] == "shapes" and lib.has_label_set("My:Set")
    with pytest.raises(LabelError, match="ignore case"):
        lib.labels_add("Shapes", "x")
    r = run("labels", "add", "MY:SET", "--labels", "x", "--index", str(lib.folder))
    assert r.exit_code == 2 and "'my:set'" in r.stderr, r.output
    lib.tag("my:set", mode="multi", threshold=-1.0)
    r = run("export", "--labels", "MY:SET", "--index", str(lib.folder))
    assert r.exit_code == 0 and r.stdout.strip(), r.output
    r = run("search", "red", "--tag", "RED", "--tag-set", "MY:SET", "--index", str(lib.folder))
    assert r.exit_code == 0 and r.stdout.strip(), r.output
    r = run("search", "red", "--tag", "MY:SET:Red", "--index", str(lib.folder))
    assert r.exit_code == 0 and r.stdout.strip(), r.output
    r = run("search", "red", "--tag", "RED", "--tag-set", "NO:SET", "--index", str(lib.folder))
    assert r.exit_code == 2 and "no label set named 'NO:SET'" in r.stderr and "'my:set'" in r.stderr, r.output
    lib.untag("my:set")


def test_names_differing_only_in_case_in_an_old_index(tmp_path, demo_embedder):
    lib = Library(tmp_path / "index", embedder=demo_embedder, create=True)
    lib.labels_add("dup", "a")
    lib.labels_add("other", "b")
    db = _db(lib)
    db.execute("UPDATE label_sets SET name = 'Dup' WHERE name = 'other'")
    db.commit()
    db.close()
    assert lib.labels_show("dup")["labels"][0]["label"] == "a"
    assert lib.labels_show("Dup")["labels"][0]["label"] == "b"
    with pytest.raises(LabelError, match="differ only in case"):
        lib.labels_show("DUP")


def test_a_capped_list_shows_the_names_most_like_the_one_given_first(index):
    lib, _ = index
    assert known_list([f"n{i:02d}" for i in range(40)] + ["zebra"], near="zebr").startswith("zebra, ")
    r = run("labels", "edit", "many", "--drop", "label059x", "--index", str(lib.folder))
    assert r.exit_code == 2 and "label059" in r.stderr and "… and 40 more" in r.stderr, r.output
    r = run("search", "red", "--format", "jpegg", "--index", str(lib.folder))
    assert r.exit_code == 2 and "jpeg" in r.stderr and "more" in r.stderr, r.output


def test_an_adhoc_list_is_found_as_typed_by_every_command(index, tmp_path, demo_embedder):
    """`tag -l "red, dark blue"` registers the set 'red,dark blue'; the same words as typed (spaces, case) name
    that set in export, untag, sidecars and search --tag, instead of a hint to make a second one."""
    import shutil

    lib, _ = index
    shutil.copytree(lib.folder, tmp_path / "index")
    copy = Library(tmp_path / "index", embedder=demo_embedder)
    copy.tag("red, dark blue", mode="multi", threshold=0.2)
    assert "red,dark blue" in [r["name"] for r in copy.label_sets()]
    rows = copy.tag_rows("red, dark blue")
    assert rows and {r["label"] for r in rows} <= {"red", "dark blue"}
    hits = copy.search("a red thing", tag="Red, Dark Blue:red", k=10)
    assert {h.path for h in hits} == {r["path"] for r in rows if r["label"] == "red"}
    r = CliRunner().invoke(cli, ["export", "--labels", "red,  dark blue", "--index", str(copy.folder), "--csv"])
    assert r.exit_code == 0 and r.stdout.startswith("path,label,score"), r.output
    assert copy.untag("RED, dark blue") == len(rows) and copy.tag_rows("red,dark blue") == []
