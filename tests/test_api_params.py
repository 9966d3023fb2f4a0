"""A user trial's API faults, each tested as its class (see zsindex/params.py):

- a parameter taking a list of paths, globs or texts takes one str, Path or bytes path as ONE item: forget("a/b")
  once forgot the whole index ("/" was one of its characters);
- every public method checks its parameters: a wrong type, a number that is not finite or one the CLI refuses is
  a UsageError naming the parameter (one table of every public method);
- a model name without weights is refused before anything is downloaded, exported or written;
- library messages name API methods (the CLI shows commands);
- a file argument that does not exist is a usage error (exit 2), an unreadable one is skipped (exit 3).
"""

from __future__ import annotations

import inspect
import math
import os
import re
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

import zsindex
from zsindex import shapes
from zsindex.cli import cli
from zsindex.errors import ModelError, UsageError
from zsindex.evaluate import load_dataset
from zsindex.library import Library, classify, similarity

PKG = Path(zsindex.__file__).parent


@pytest.fixture(scope="module")
def world(tmp_path_factory, demo_embedder):
    base = tmp_path_factory.mktemp("api-params")
    scenes = [[shapes.Thing(c, s)] for c, s in (("red", "circle"), ("blue", "square"), ("green", "star"))]
    paths = shapes.save_world(base / "photos", scenes, size=64, seed=5)
    lib = zsindex.open(base / "index", embedder=demo_embedder)
    lib.ingest([base / "photos"], workers=0)
    lib.labels_add("shapes", "circle,square,star")
    lib.tag("shapes", mode="multi", threshold=-1.0)
    return base, lib, paths


def _indexed(index: Path) -> int:
    con = sqlite3.connect(index / "index.sqlite")
    try:
        return con.execute("SELECT count(*) FROM images WHERE status = 'indexed'").fetchone()[0]
    finally:
        con.close()


# -- 1. one path is one item ---------------------------------------------------------------------------
def test_forget_of_one_str_path_forgets_that_file_only(tmp_path, demo_embedder):
    paths = shapes.save_world(tmp_path / "p", [[shapes.Thing("red", "circle")], [shapes.Thing("blue", "star")]],
                              size=64, seed=1)
    lib = zsindex.open(tmp_path / "index", embedder=demo_embedder)
    report = lib.ingest(str(tmp_path / "p"), workers=0)  # one str: one folder, not its characters
    assert report.added == 2
    assert lib.forget(str(paths[0]), dry_run=True).images == 1
    assert lib.forget(str(paths[0])).images == 1
    assert _indexed(tmp_path / "index") == 1
    assert lib.forget(paths[1]).images == 1  # a Path alone too
    assert _indexed(tmp_path / "index") == 0


def test_one_path_or_glob_is_one_item_in_every_list_parameter(world, demo_embedder, tmp_path):
    base, lib, paths = world
    photos = base / "photos"
    # exclude as one str: that glob, not one glob per character ("*" excluded everything)
    assert lib.ingest([photos], exclude=str(tmp_path / "nothing-here"), workers=0).unchanged == 3
    # bytes paths are decoded as the OS does
    assert lib.ingest([os.fsencode(photos)], workers=0).unchanged == 3
    assert lib.ingest(os.fsencode(photos), exclude=[os.fsencode(str(tmp_path / "x"))], workers=0).unchanged == 3
    one = str(paths[0])
    assert [c.path for c in lib.classify(one, "red,blue")] == [one]
    assert [c.path for c in classify(os.fsencode(one), "red,blue", embedder=demo_embedder)] == [one]
    assert similarity(one, "a red circle", embedder=demo_embedder).cosine.shape == (1, 1)
    assert list(lib.keywords(one)) in ([], [one])
    assert lib.search(like=one, top_k=1)[0].path == one
    assert lib.search(like=os.fsencode(one), top_k=1)[0].path == one
    assert lib.roots(str(tmp_path))[0] == str(tmp_path)
    assert lib.forget(str(photos), dry_run=True).images == 3


def test_like_takes_an_indexed_image_id_as_the_server_does(world):
    _, lib, paths = world
    hit = lib.search(like=str(paths[1]), top_k=1)[0]
    assert [h.id for h in lib.search(like=hit.id, top_k=3)] == [h.id for h in lib.search(like=str(paths[1]), top_k=3)]
    assert lib.search(like=[hit.id, str(paths[0])], top_k=1)
    with pytest.raises(zsindex.NotFoundError):
        lib.search(like=10**9)
    with pytest.raises(UsageError, match="like= must be at least 1"):
        lib.search(like=[0])


# -- 2. every public method checks its parameters -------------------------------------------------------
BAD_CALLS = {
    "__init__": [(lambda lib: Library(5), "folder= takes a path"), (lambda lib: Library(create="yes"), "create=")],
    "ingest": [(lambda lib: lib.ingest(5), "paths= takes a path"), (lambda lib: lib.ingest([5]), "paths= takes"),
               (lambda lib: lib.ingest(".", exclude=5), "exclude= takes a glob"),
               (lambda lib: lib.ingest(".", batch_size=0), "batch_size= must be at least 1"),
               (lambda lib: lib.ingest(".", workers=-1), "workers= must be at least 0"),
               (lambda lib: lib.ingest(".", max_megapixels=math.nan), "max_megapixels= must be a finite"),
               (lambda lib: lib.ingest(".", follow_symlinks="no"), "follow_symlinks= takes True or False")],
    "rebuild": [(lambda lib: lib.rebuild(kind=5), "kind= takes text")],
    "forget": [(lambda lib: lib.forget(5), "paths= takes a path"), (lambda lib: lib.forget({"a": 1}), "paths="),
               (lambda lib: lib.forget(["x"], dry_run="yes"), "dry_run= takes True or False")],
    "search": [(lambda lib: lib.search(5), "text= takes a text"), (lambda lib: lib.search(b"red"), "text= takes"),
               (lambda lib: lib.search("red", not_=5), "not_= takes a text"),
               (lambda lib: lib.search("red", not_weight=-1), "not_weight= must be at least 0"),
               (lambda lib: lib.search("red", not_weight=math.inf), "not_weight= must be a finite number"),
               (lambda lib: lib.search("red", min_score=math.nan), "min_score= must be a finite number"),
               (lambda lib: lib.search("red", min_score="0.2"), "min_score= takes a number"),
               (lambda lib: lib.search(like=19.5), "like= takes a path"),
               (lambda lib: lib.search("red", top_k=0), "top_k= must be at least 1"),
               (lambda lib: lib.search("red", group_stems=1), "group_stems= takes True or False")],
    "image_vector": [(lambda lib: lib.image_vector(5), "path= takes a path")],
    "text_vectors": [(lambda lib: lib.text_vectors(5), "texts= takes a text")],
    "path_matches": [(lambda lib: lib.path_matches(5), "path= takes a glob")],
    "classify": [(lambda lib: lib.classify(5, "a,b"), "images= takes a path"),
                 (lambda lib: lib.classify(".", 5), "labels= takes"),
                 (lambda lib: lib.classify(".", "a,b", top_k=0), "top_k= must be at least 1")],
    "labels_add": [(lambda lib: lib.labels_add(5, "a,b"), "name= takes text"),
                   (lambda lib: lib.labels_add("x", 5), "labels= takes")],
    "labels_edit": [(lambda lib: lib.labels_edit(5), "name= takes text"),
                    (lambda lib: lib.labels_edit("shapes", drop=5), "drop= takes a text")],
    "labels_remove": [(lambda lib: lib.labels_remove(5), "name= takes text")],
    "labels_show": [(lambda lib: lib.labels_show(None), "name= takes text")],
    "has_label_set": [(lambda lib: lib.has_label_set(5), "name= takes text")],
    "tag": [(lambda lib: lib.tag(5), "labels= takes text"), (lambda lib: lib.tag("shapes", mode=1), "mode= takes"),
            (lambda lib: lib.tag("shapes", threshold=math.inf), "threshold= must be a finite number")],
    "tag_rows": [(lambda lib: lib.tag_rows(5), "labels= takes text")],
    "untag": [(lambda lib: lib.untag(["shapes"]), "labels= takes text")],
    "tag_counts": [(lambda lib: lib.tag_counts(5), "labels= takes text")],
    "tag_summary": [(lambda lib: lib.tag_summary(5), "labels= takes text")],
    "sidecars_write": [(lambda lib: lib.sidecars_write(5), "labels= takes text"),
                       (lambda lib: lib.sidecars_write("shapes", min_score=math.nan), "min_score= must be a finite"),
                       (lambda lib: lib.sidecars_write("shapes", path=5), "path= takes a glob")],
    "sidecars_remove": [(lambda lib: lib.sidecars_remove(5), "labels= takes text")],
    "keyword_counts": [(lambda lib: lib.keyword_counts(5), "path= takes a glob")],
    "keywords": [(lambda lib: lib.keywords(5), "paths= takes a path")],
    "eval_keywords": [(lambda lib: lib.eval_keywords(5), "labels= takes text"),
                      (lambda lib: lib.eval_keywords("shapes", cutoffs=0.2), "cutoffs= takes a list of numbers")],
    "vectors": [(lambda lib: lib.vectors(save="yes"), "save= takes True or False")],
    "hold_vectors": [(lambda lib: lib.hold_vectors("yes"), "hold= takes True or False")],
    "roots": [(lambda lib: lib.roots(5), "extra= takes a path")],
    "describe": [(lambda lib: lib.describe(["1"]), "ids= takes whole numbers"),
                 (lambda lib: lib.describe(None), "ids=")],
    "image": [(lambda lib: lib.image("1"), "image_id= takes a whole number")],
    "image_source": [(lambda lib: lib.image_source(1.5), "image_id= takes a whole number")],
    "image_file": [(lambda lib: lib.image_file(None), "image_id= takes a whole number")],
    "thumbnail_key": [(lambda lib: lib.thumbnail_key(1, "256"), "size= takes a whole number")],
    "thumbnail": [(lambda lib: lib.thumbnail(1, 0), "size= must be at least 1")],
    "runs": [(lambda lib: lib.runs("10"), "limit= takes a whole number")],
    "label_set": [(lambda lib: lib.label_set(5), "name= takes text")],
    "labels_put": [(lambda lib: lib.labels_put(5, "a,b"), "name= takes text"),
                   (lambda lib: lib.labels_put("x", "a,b", auto="yes"), "auto= takes True or False")],
    "labels_auto": [(lambda lib: lib.labels_auto("shapes", auto="no"), "auto= takes True or False")],
    "tag_mode": [(lambda lib: lib.tag_mode(5), "name= takes text")],
    "stored_label_set": [(lambda lib: lib.stored_label_set(5), "name= takes text")],
    "label_images": [(lambda lib: lib.label_images("shapes", k=0), "k= must be at least 1"),
                     (lambda lib: lib.label_images("shapes", label=5), "label= takes text")],
    "open": [(lambda lib: zsindex.open(5), "folder= takes a path"),
             (lambda lib: zsindex.open(b""), "folder= is empty")],
}
# Methods with no parameter a caller could get wrong (or only another Library).
NO_PARAMETERS = {"status", "errors", "ignored_files", "ignored_counts", "labels_list", "refresh_vectors", "close",
                 "sibling", "use_model_of", "facets", "label_sets", "auto_label_sets", "check_model"}


def test_the_table_covers_every_public_method():
    public = {n for n, m in inspect.getmembers(Library, inspect.isfunction) if not n.startswith("_")}
    assert public - NO_PARAMETERS - set(BAD_CALLS) == set()


@pytest.mark.parametrize("call, message", [c for calls in BAD_CALLS.values() for c in calls],
                         ids=[f"{m}-{i}" for m, calls in BAD_CALLS.items() for i in range(len(calls))])
def test_every_public_method_refuses_wrong_arguments_with_a_usage_error(world, call, message):
    _, lib, _ = world
    before = _indexed(world[0] / "index"), lib.labels_list()
    with pytest.raises(UsageError, match=re.escape(message)):
        call(lib)
    assert (_indexed(world[0] / "index"), lib.labels_list()) == before


def test_module_functions_check_their_parameters(world, demo_embedder):
    _, _, paths = world
    with pytest.raises(UsageError, match="max_megapixels= must be a finite number"):
        classify([paths[0]], "a,b", embedder=demo_embedder, max_megapixels=math.inf)
    with pytest.raises(UsageError, match="texts= takes a text"):
        similarity([paths[0]], [5], embedder=demo_embedder)
    with pytest.raises(UsageError, match="source= takes a path"):
        load_dataset(5)


# -- 3. a model without weights ----------------------------------------------------------------------
def test_an_architecture_without_weights_is_refused_before_any_download_or_write(world, tmp_path, monkeypatch):
    from zsindex import embedder as emb

    _, _, paths = world
    monkeypatch.setenv("ZSINDEX_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(emb, "check_available", lambda *a, **k: pytest.fail("a download was considered"))
    out = CliRunner().invoke(cli, ["classify", str(paths[0]), "-l", "red,blue", "--model", "ViT-B-16"])
    assert out.exit_code == 1, out.output
    assert "--pretrained TAG" in out.output and "laion2b_s34b_b88k" in out.output and "hf-hub:" in out.output
    assert not (tmp_path / "home" / "onnx").exists()
    out = CliRunner().invoke(cli, ["ingest", str(paths[0]), "--index", str(tmp_path / "i"), "--model", "ViT-B-16"])
    assert out.exit_code == 1 and "without weights" in out.output
    assert not (tmp_path / "i").exists()
    monkeypatch.setenv("ZSINDEX_MODEL", "ViT-B-16")
    with pytest.raises(ModelError, match="without weights"):
        zsindex.open(tmp_path / "j").ingest([paths[0]])
    assert not (tmp_path / "j").exists()
    with pytest.raises(ModelError, match="open_clip knows no pretrained tag of 'No-Such-Arch'"):
        emb.load_embedder("No-Such-Arch")
    assert emb.resolve_source("ViT-B-16", "random").pretrained == "random"  # asked for by name: benchmarks


# -- 4. library messages name API methods --------------------------------------------------------------
def test_library_messages_name_methods_and_the_cli_names_commands(world):
    _, lib, _ = world
    with pytest.raises(UsageError, match=re.escape("use Library.forget(PATH)")):
        lib.ingest("no-such-folder-here")
    out = CliRunner().invoke(cli, ["ingest", "no-such-folder-here", "--index", str(world[0] / "index")])
    assert out.exit_code == 2 and "`zsindex forget PATH`" in out.output


def test_no_library_module_writes_a_command_into_a_message():
    """Messages of library modules (not the CLI's, the demo command's or the server's own) name methods."""
    library = [p for p in PKG.glob("*.py") if not re.match(r"(cli.*|clikit|demo|__main__)\.py$", p.name)]
    found = [f"{p.name}: {m.group(0)}" for p in library for line in p.read_text().splitlines()
             for m in re.finditer(r"[\"'][^\"']*`zsindex [a-z][^\"']*", line.split("  # ")[0])]
    assert found == []


# -- 5. a file argument that does not exist ----------------------------------------------------------------
@pytest.mark.parametrize("args", [["classify", "{missing}", "-l", "red", "-m", "demo"],
                                  ["similarity", "red", "-i", "{missing}", "-m", "demo"],
                                  ["classify", "{good}", "{missing}", "-l", "red", "-m", "demo"],
                                  ["eval", "{missing}", "-l", "red,blue", "-m", "demo"]])
def test_a_missing_file_argument_is_a_usage_error(world, tmp_path, args):
    missing = str(tmp_path / "missing.jpg")
    out = CliRunner().invoke(cli, [a.format(missing=missing, good=world[2][0]) for a in args])
    assert out.exit_code == 2, out.output
    assert "missing.jpg" in out.output


@pytest.mark.parametrize("args", [["classify", "{folder}", "-l", "red", "-m", "demo"],
                                  ["similarity", "red", "-i", "{good}", "-i", "{folder}", "-m", "demo"]])
def test_a_folder_where_image_files_are_wanted_is_a_usage_error(world, tmp_path, args):
    """Not an image that could not be read (exit 3): the message says what to give instead."""
    (tmp_path / "holiday").mkdir()
    out = CliRunner().invoke(cli, [a.format(folder=tmp_path / "holiday", good=world[2][0]) for a in args])
    assert out.exit_code == 2 and "holiday: a folder" in out.output and "`zsindex ingest PATH`" in out.output
    with pytest.raises(UsageError, match=r"a folder.*Library\.ingest"):
        classify([world[2][0], tmp_path / "holiday"], "red,blue", embedder=None)


def test_an_unreadable_file_is_still_skipped_with_exit_3(tmp_path, world):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    out = CliRunner().invoke(cli, ["classify", str(bad), str(world[2][0]), "-l", "red,blue", "-m", "demo"])
    assert out.exit_code == 3, out.output
    with pytest.raises(UsageError, match="no such file"):
        classify([tmp_path / "gone.png"], "red,blue", embedder=None)
    with pytest.raises(UsageError, match="no such file or folder"):
        load_dataset(tmp_path / "gone")


def _dummy(annotation: str) -> object:
    kinds = {p.strip().strip('"') for p in str(annotation).split("|")}
    return 1.0 if kinds & {"float"} and not kinds & {"str", "Path"} else 1 if kinds & {"int"} and not kinds & {
        "str", "Path"} else False if kinds == {"bool"} else "x" if kinds & {"str", "Path", "Glob"} else None


def test_an_empty_text_is_refused_where_it_would_stand_for_something_else(tmp_path):
    """The API refuses "" as the command line does (--model '' etc.): model="" is not the default model,
    prefix="" not 'no prefix', kind="" not the recorded kind, token="" not 'no token'; checked on every public
    method and function that takes such a parameter, before any work."""
    from zsindex.embedder import load_embedder
    from zsindex.params import NON_EMPTY
    from zsindex.service import create_app

    lib = Library(tmp_path / "none")  # no index: nothing is opened before a call
    tried = set()
    for name in dir(Library):
        method = getattr(Library, name)
        if (name != "__init__" and name.startswith("_")) or not inspect.isfunction(method):
            continue
        sig = inspect.signature(method)
        for target in [p for p in sig.parameters.values() if p.name in NON_EMPTY]:
            args = {p.name: _dummy(p.annotation) for p in sig.parameters.values() if p.name != "self"
                    and p.default is inspect.Parameter.empty and p.kind is not p.VAR_KEYWORD}
            for value in ("", "  "):
                with pytest.raises(UsageError, match=f"{target.name}= is empty"):
                    if name == "__init__":
                        Library(tmp_path / "none", **{target.name: value})
                    else:
                        getattr(lib, name)(**{**args, target.name: value})
            tried.add(f"{name} {target.name}")
    for call, names in ((load_embedder, ("model", "pretrained", "device", "runtime")),
                        (lambda **kw: classify([str(tmp_path)], "a,b", **kw), ("model", "pretrained")),
                        (lambda **kw: similarity([str(tmp_path)], ["a"], **kw), ("model", "pretrained")),
                        (lambda **kw: zsindex.open(tmp_path / "none", **kw), ("model", "db")),
                        (lambda **kw: create_app(tmp_path / "none", **kw), ("token", "model"))):
        for target in names:
            with pytest.raises(UsageError, match=f"{target}= is empty"):
                call(**{target: ""})
            tried.add(f"function {target}")
    for must in ("__init__ model", "__init__ pretrained", "__init__ device", "__init__ runtime", "__init__ precision",
                 "__init__ db", "ingest ray_address", "rebuild kind", "sidecars_write prefix", "sidecars_write naming",
                 "tag mode", "function token"):
        assert must in tried, (must, sorted(tried))
    assert not (tmp_path / "none").exists()
