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
    r = CliRunner().invoke(cli, ["similarity", *args, "-t", "a circle", "-m", "demo", f"--{fmt}"])
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
