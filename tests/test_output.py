"""Outputs stay valid for any name the file system allows, in every format, for every command that prints paths.

Real files whose names hold bytes that are not UTF-8, newlines, tabs, control
characters and backslashes are ingested, tagged and searched; each command's
output is parsed back and must give the exact names.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from zsindex import shapes
from zsindex.cli import cli
from zsindex.output import escape_text, json_line, unescape_text

from .conftest import FIXTURES

ODD_NAMES = [b"red\xffcircle.png", b"two\nlines.png", b"tab\tand\rcr.png", b"esc\x1b[31m\x01.png",
             b"back\\slash \\x41.png", "café 猫 \u2028.png".encode()]
COLOURS = ["red", "blue", "green", "yellow", "purple", "orange"]


def _drawn(folder: Path) -> list[bytes]:
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(3)
    out = []
    for raw, colour in zip(ODD_NAMES, COLOURS):
        path = os.path.join(os.fsencode(folder), raw)
        Image.fromarray(shapes.draw([shapes.Thing(colour, "circle")], size=64, rng=rng)).save(path, format="PNG")
        out.append(path)
    return out


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    """An index (itself in a folder with an odd name) over files with odd names, tagged with one set."""
    base = tmp_path_factory.mktemp("odd")
    photos = Path(os.fsdecode(os.path.join(os.fsencode(base), b"ph\xf6tos\nnew")))
    files = _drawn(photos)
    broken = os.path.join(os.fsencode(photos), b"broken\xfe\n.png")
    shutil.copy(FIXTURES / "broken.png", broken)
    index = os.fsdecode(os.path.join(os.fsencode(base), b"ind\xffex"))
    r = CliRunner().invoke(cli, ["ingest", str(photos), "--index", index, "-m", "demo", "--workers", "0"])
    assert r.exit_code == 3, r.output  # the broken file is skipped
    r = CliRunner().invoke(cli, ["tag", "-l", "red,blue,green", "--index", index, "--threshold", "-1", "--mode",
                                 "multi"])
    assert r.exit_code == 0, r.output
    return {"index": index, "photos": photos, "files": files, "broken": broken}


def _paths_in(stdout: bytes, fmt: str, column: str = "path") -> list[bytes]:
    """Parse one command's stdout in its format and return the names in `column`, as bytes."""
    text = stdout.decode("utf-8")  # strict: any stray byte fails here
    if fmt == "json":
        out = []
        for line in text.splitlines():
            obj = json.loads(line)
            if f"{column}_bytes" in obj:
                out.append(base64.b64decode(obj[f"{column}_bytes"]))
            elif column in obj:
                out.append(obj[column].encode("utf-8"))
        return out
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(text)))
        assert all(len(r) == len(rows[0]) for r in rows)
        col = rows[0].index(column)
        return [os.fsencode(unescape_text(r[col])) for r in rows[1:]]
    if fmt == "table":
        lines = text.splitlines()
        assert not any(ch < " " for line in lines for ch in line)  # no control characters: one row a line
        return [raw for raw in ODD_NAMES if escape_text(os.fsdecode(raw)) in text]
    if fmt == "paths":
        return [os.fsencode(unescape_text(line)) for line in text.splitlines()]
    raise AssertionError(fmt)


FORMATS = ["json", "csv", "table"]


@pytest.mark.parametrize("fmt", FORMATS + ["paths", "print0"])
def test_search_outputs_give_back_exact_names(odd, fmt):
    flag = {"paths": "--paths-only", "print0": "--print0"}.get(fmt, f"--{fmt}")
    r = CliRunner().invoke(cli, ["search", "a circle", "--index", odd["index"], "-k", "20", flag])
    assert r.exit_code == 0, r.output
    if fmt == "print0":
        got = [p for p in r.stdout_bytes.split(b"\0") if p]
        assert sorted(got) == sorted(odd["files"])
        return
    got = _paths_in(r.stdout_bytes, fmt)
    assert {os.path.basename(p) for p in got} == set(ODD_NAMES)
    if fmt != "table":
        assert sorted(got) == sorted(odd["files"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_path_listing_commands_in_every_format(odd, fmt):
    index = odd["index"]
    errors = CliRunner().invoke(cli, ["errors", "--index", index, f"--{fmt}"])
    if fmt != "table":
        assert _paths_in(errors.stdout_bytes, fmt) == [odd["broken"]]
    else:
        assert escape_text(os.fsdecode(odd["broken"])) in errors.stdout
    tag = ["tag", "-l", "red,blue,green", "--threshold", "-1", "--mode", "multi"]  # as in the fixture: reused
    for args in (["export", "-l", "red,blue,green"], tag):
        r = CliRunner().invoke(cli, [*args, "--index", index, f"--{fmt}"])
        assert r.exit_code == 0, r.output
        got = _paths_in(r.stdout_bytes, fmt)
        assert {os.path.basename(p) for p in got} == set(ODD_NAMES)
    for command in ("status", "rebuild"):
        r = CliRunner().invoke(cli, [command, "--index", index, f"--{fmt}"])
        assert r.exit_code == 0, r.output
        r.stdout_bytes.decode("utf-8")
        if fmt != "table":
            assert _paths_in(r.stdout_bytes, fmt, "index") == [os.fsencode(index)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_classify_and_similarity_of_odd_names(odd, fmt):
    files = [os.fsdecode(f) for f in odd["files"]]
    r = CliRunner().invoke(cli, ["classify", *files, "-l", "red,blue", "-m", "demo", f"--{fmt}"])
    assert r.exit_code == 0, r.output
    assert sorted(set(_paths_in(r.stdout_bytes, fmt))) == sorted(odd["files"]) or fmt == "table"
    args = [x for f in files for x in ("-i", f)]
    r = CliRunner().invoke(cli, ["similarity", "a circle", *args, "-m", "demo", f"--{fmt}"])
    assert r.exit_code == 0, r.output
    got = _paths_in(r.stdout_bytes, fmt, "image")
    assert sorted(got) == sorted(odd["files"]) or fmt == "table"
    skipped = CliRunner().invoke(cli, ["classify", os.fsdecode(odd["broken"]), "-l", "red,blue", "-m", "demo"])
    assert skipped.exit_code == 3
    assert "skipped " + escape_text(os.fsdecode(odd["broken"])) in skipped.stderr  # one line, escaped


@given(st.binary(max_size=40))
def test_escape_round_trip_for_any_bytes(raw):
    name = os.fsdecode(raw)
    shown = escape_text(name)
    shown.encode("utf-8")  # always valid text
    assert not any(ch < " " or ch == "\x7f" for ch in shown)
    assert os.fsencode(unescape_text(shown)) == raw


@given(st.text(max_size=30))
def test_escape_round_trip_for_any_text(text):
    assert unescape_text(escape_text(text)) == text


def test_json_csv_and_table_rows_agree_on_order_and_booleans(capsys):
    from zsindex.output import emit_rows

    rows = [{"score": 0.5, "path": "a.png", "id": 1, "exists": True, "extra": None},
            {"score": 0.25, "path": "b.png", "id": 2, "exists": False, "extra": None}]
    columns = ["id", "path", "score", "exists"]
    emit_rows(rows, columns, "json")
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert list(first)[:4] == columns and first["exists"] is True and "extra" in first  # every key, columns first
    emit_rows(rows, columns, "csv")
    out = capsys.readouterr().out.splitlines()
    assert out == ["id,path,score,exists", "1,a.png,0.5,true", "2,b.png,0.25,false"]


def test_json_values_are_valid_json():
    raw = b"x\xff\n.png"
    line = json_line({"path": os.fsdecode(raw), "nested": {"image": Path(os.fsdecode(raw))},
                      "score": float("nan"), "inf": float("inf"), "n": np.float32(0.5)})
    line.encode("utf-8")
    obj = json.loads(line)
    assert base64.b64decode(obj["path_bytes"]) == raw and obj["path"] == "x\\xff\\n.png"
    assert base64.b64decode(obj["nested"]["image_bytes"]) == raw
    assert obj["score"] is None and obj["inf"] is None and obj["n"] == 0.5
    assert json.loads(json_line({"path": "plain\nname"})) == {"path": "plain\nname"}  # JSON carries it exactly
    # a list of names (a sidecar's images): each name's exact bytes, in order, beside the escaped forms
    obj = json.loads(json_line({"images": ["ok.png", os.fsdecode(raw), Path(os.fsdecode(b"\xfe.png"))]}))
    assert obj["images"] == ["ok.png", "x\\xff\\n.png", "\\xfe.png"]
    assert [base64.b64decode(b) for b in obj["images_bytes"]] == [b"ok.png", raw, b"\xfe.png"]
    assert "images_bytes" not in json.loads(json_line({"images": ["a.png", "b\n.png"]}))


def test_eval_with_odd_class_folders_writes_valid_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("ZSINDEX_HOME", str(tmp_path / "home"))
    root = os.fsencode(tmp_path / "data")
    rng = np.random.default_rng(4)
    for folder, colour in ((b"r\xffed", "red"), (b"bl\nue", "blue")):
        os.makedirs(os.path.join(root, folder))
        Image.fromarray(shapes.draw([shapes.Thing(colour, "circle")], size=64, rng=rng)).save(
            os.path.join(root, folder, b"x.png"), format="PNG")
    out_csv = tmp_path / "confusion.csv"
    r = CliRunner().invoke(cli, ["eval", os.fsdecode(root), "-m", "demo", "--raw-names", "--json",
                                 "--confusion-csv", str(out_csv)])
    assert r.exit_code == 0, r.output
    obj = json.loads(r.stdout_bytes.decode("utf-8"))
    assert sorted(obj["classes"]) == sorted(["r\\xffed", "bl\nue"])  # inside a list: the escaped form if not UTF-8
    rows = list(csv.reader(io.StringIO(out_csv.read_bytes().decode("utf-8"))))
    assert sorted(os.fsencode(unescape_text(c)) for c in rows[0][1:]) == sorted([b"r\xffed", b"bl\nue"])
    assert CliRunner().invoke(cli, ["classify", FIXTURES.as_posix() + "/hopper.gif", "-l", os.fsdecode(b"\xff"),
                                    "-m", "demo"]).exit_code == 2  # a label must be text


# Fixed columns of the commands whose rows carry user text (queries, labels, set and class names), and text that
# names each of them: a text must stay a value, never take a column's place or overwrite one, in any format.
COLUMN_NAMES = ["image", "text", "cosine", "image_bytes", "text_bytes", "path", "path_bytes", "rank", "label",
                "score", "set", "images", "id", "tags", "labels", "class", "support", "precision", "recall"]


def _records(stdout: bytes, fmt: str) -> tuple[list[str], list[dict]]:
    """(the header, the rows) of one command's stdout; a JSON line's keys are its header."""
    text = stdout.decode("utf-8")
    if fmt == "json":
        rows = [json.loads(line) for line in text.splitlines()]
        return sorted({k for r in rows for k in r}), rows
    if fmt == "csv":
        header, *body = list(csv.reader(io.StringIO(text)))
        assert all(len(r) == len(header) for r in body)
        return header, [dict(zip(header, r)) for r in body]
    header, _rule, *body = text.splitlines()
    return header.split(), [{"line": line} for line in body]


@pytest.mark.parametrize("fmt", FORMATS)
def test_user_text_is_never_a_column(tmp_path, fmt):
    """similarity, classify, tag (plain and --summary), tags, export and eval with texts, labels and classes named
    like their columns (and like the _bytes sibling of a name that is not UTF-8): every output keeps its own
    columns, each once, and gives the texts back as values."""
    folder = os.fsencode(tmp_path / "p")
    os.makedirs(folder)
    files = []
    for raw, colour in ((b"odd\xff.png", "red"), (b"plain.png", "blue")):
        files.append(os.fsdecode(os.path.join(folder, raw)))
        Image.fromarray(shapes.draw([shapes.Thing(colour, "circle")], size=64)).save(files[-1], format="PNG")
    runner = CliRunner()

    def run(*args: str) -> tuple[list[str], list[dict]]:
        r = runner.invoke(cli, [*args, f"--{fmt}"])
        assert r.exit_code == 0, r.output
        return _records(r.stdout_bytes, fmt)

    texts = ["image", "text", "cosine", "image_bytes", "text_bytes"]
    header, rows = run("similarity", *texts, *(x for f in files for x in ("-i", f)),
                       "-m", "demo")
    assert len(rows) == len(files) * len(texts)
    if fmt == "json":
        assert header == ["cosine", "image", "image_bytes", "text"]  # image_bytes: the name that is not UTF-8
        assert [r["text"] for r in rows] == texts * 2 and all(isinstance(r["cosine"], float) for r in rows)
        assert {base64.b64decode(r["image_bytes"]) for r in rows if "image_bytes" in r} == {os.fsencode(files[0])}
    else:
        assert header == ["image", "text", "cosine"]
    if fmt == "csv":
        assert [r["text"] for r in rows] == texts * 2
        assert {os.fsencode(unescape_text(r["image"])) for r in rows} == set(map(os.fsencode, files))

    labels = ["path", "rank", "label", "score", "cosine", "path_bytes", "labels"]
    header, rows = run("classify", *files, "-l", ",".join(labels), "-m", "demo")
    if fmt == "json":
        assert header == ["labels", "path", "path_bytes"] and len(rows) == 2
        assert all(sorted(x["label"] for x in r["labels"]) == sorted(labels) for r in rows)
        assert all(set(x) == {"label", "score", "cosine"} for r in rows for x in r["labels"])
    else:
        assert header == ["path", "rank", "label", "score", "cosine"] and len(rows) == 2 * len(labels)
    if fmt == "csv":
        assert sorted(r["label"] for r in rows) == sorted(labels * 2)

    index = str(tmp_path / "index")
    assert runner.invoke(cli, ["ingest", os.fsdecode(folder), "--index", index, "-m", "demo", "-q"]).exit_code == 0
    names = ["set", "label", "images", "path", "path_bytes", "score", "cosine", "id", "tags"]
    assert runner.invoke(cli, ["labels", "add", "set", "--labels", ",".join(names), "--index", index]).exit_code == 0
    tag = ("tag", "-l", "set", "--mode", "multi", "--threshold", "-1", "--index", index)
    for args, columns in (((*tag, "--summary"), ["set", "label", "images"]), (("tags", "--index", index),
                                                                             ["set", "label", "images"]),
                          (("export", "-l", "set", "--index", index), ["path", "label", "score"]),
                          (tag, ["path", "label", "score", "cosine"])):
        header, rows = run(*args)
        if fmt == "json" and args != tag:
            assert header == sorted(columns + (["path_bytes"] if "path" in columns else []))
        elif fmt == "json":  # tag groups by image: one object per image, its tags in a list
            assert header == ["path", "path_bytes", "tags"]
            assert all(sorted(x["label"] for x in r["tags"]) == sorted(names) for r in rows)
        else:
            assert header == columns, args
        if fmt == "csv" and "label" in columns:
            assert sorted({r["label"] for r in rows}) == sorted(names)

    data = tmp_path / "data"  # class folders named like eval's columns and like the confusion CSV's corner
    classes = ["class", "support", "true \\ predicted"]
    for n, name in enumerate(classes):
        (data / name).mkdir(parents=True)
        Image.fromarray(shapes.draw([shapes.Thing(COLOURS[n], "square")], size=64)).save(data / name / "x.png")
    confusion = tmp_path / "confusion.csv"
    header, rows = run("eval", str(data), "-m", "demo", "--raw-names", "--confusion-csv", str(confusion), "--force")
    if fmt == "json":
        assert header == ["classes", "results", "skipped", "source"] and sorted(rows[0]["classes"]) == classes
    elif fmt == "csv":
        assert header == ["templates", "top1", "top5", "mean_per_class", "mAP", "images", "class", "support",
                          "precision", "recall"]
        assert sorted(r["class"] for r in rows) == sorted(map(escape_text, classes))
    grid = list(csv.reader(io.StringIO(confusion.read_text())))
    assert len(set(grid[0])) == len(grid[0]) == 4  # the corner and one column per class, each its own
    assert sorted(unescape_text(c) for c in grid[0][1:]) == classes and grid[0][0] not in map(escape_text, classes)
    assert sorted(unescape_text(r[0]) for r in grid[1:]) == classes


def test_a_name_never_overwrites_a_column_in_the_writers():
    """The writers themselves refuse the mistake: two columns of one name, or a key that a name's _bytes
    sibling would overwrite."""
    from zsindex.output import emit_rows

    with pytest.raises(ValueError, match="duplicate output columns"):
        emit_rows([{"image": "a.png"}], ["image", "image"], "csv")
    with pytest.raises(ValueError, match="would overwrite"):
        json_line({"image": os.fsdecode(b"\xff.png"), "image_bytes": 0.5})
    assert json.loads(json_line({"image": "ok.png", "image_bytes": 0.5})) == {"image": "ok.png", "image_bytes": 0.5}
