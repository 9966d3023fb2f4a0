"""Rules every command follows: output options, parseable piped output, exit codes, messages that name real flags.

The walk covers every command registered on the group, so a new command must
be added to RUNS below (or to NO_RESULTS when it prints no results at all).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from zsindex import shapes
from zsindex.cli import cli

from .conftest import FIXTURES, bomb_png

NO_RESULTS: set[str] = {"serve"}  # commands that print nothing on stdout: a server
# Commands that decode no image file the user names (they read the index, sidecars, or only a file's header;
# demo draws its own images); every other command takes --max-megapixels (serve: its uploads' own limit).
READS_NO_IMAGE_FILE: set[str] = {"status", "errors", "rebuild", "labels add", "labels edit", "labels list",
                                 "labels show", "labels remove", "tag", "tags", "untag", "export", "forget",
                                 "keywords", "sidecars write", "sidecars remove", "demo"}
IMAGE_LIMIT_FLAG = {"serve": "--max-upload-megapixels"}
GROUPS = ("labels", "sidecars")  # commands with sub-commands
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def leaf_commands(group: click.Group = cli, prefix: str = "") -> dict[str, click.Command]:
    out: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            out.update(leaf_commands(command, f"{prefix}{name} "))
        else:
            out[f"{prefix}{name}"] = command
    return out


def command_for(args: list[str]) -> click.Command:
    command: click.Command = cli
    for arg in args:
        if not isinstance(command, click.Group) or arg not in command.commands:
            break
        command = command.commands[arg]
    return command


def flags_of(command: click.Command) -> set[str]:
    return {o for p in command.params for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])} | {"--help"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    base = tmp_path_factory.mktemp("rules")
    rng = np.random.default_rng(1)
    photos = base / "photos"
    for cls, colour in (("red_things", "red"), ("blue_things", "blue")):
        (photos / cls).mkdir(parents=True)
        for shape in ("circle", "square"):
            Image.fromarray(shapes.draw([shapes.Thing(colour, shape)], size=64, rng=rng)).save(
                photos / cls / f"{colour}-{shape}.png")
    # a user's Lightroom sidecar beside one image: its keywords are what `zsindex keywords` counts
    (photos / "red_things" / "red-circle.png.xmp").write_bytes((FIXTURES / "sidecars" / "lightroom.xmp").read_bytes())
    (base / "bad").mkdir()
    (base / "bad" / "broken.png").write_bytes((FIXTURES / "broken.png").read_bytes())
    return {"base": base, "photos": photos, "index": str(base / "index"),
            "image": str(photos / "red_things" / "red-circle.png")}


def runs(t: dict, n: int) -> list[list[str]]:
    """One invocation per command, in an order that works (ingest first, remove last); n names the label set."""
    i = ["--index", t["index"]]
    colours = f"colours{n}"
    return [
        ["ingest", str(t["photos"]), str(t["base"] / "bad"), *i, "-m", "demo", "--workers", "0"],  # exit 3
        ["classify", t["image"], "-l", "red,blue", "-m", "demo"],
        ["similarity", "red", "-i", t["image"], "-m", "demo"],
        ["search", "a red circle", *i],
        ["status", *i],
        ["errors", *i],
        ["rebuild", *i],
        ["labels", "add", colours, "-l", "red,blue", *i],
        ["labels", "edit", colours, "--add", "green", *i],
        ["labels", "list", *i],
        ["labels", "show", colours, *i],
        ["tag", "-l", colours, *i],
        ["tags", *i],
        ["sidecars", "write", "-l", colours, *i],
        ["keywords", *i],
        ["export", "-l", colours, *i],
        ["eval", str(t["photos"]), "-m", "demo"],
        ["untag", "-l", colours, *i],
        ["sidecars", "remove", *i],
        ["labels", "remove", colours, *i],
        ["forget", "--missing", *i],
        ["demo", "--dir", str(t["base"] / "demo")],
    ]


def test_every_command_has_the_output_options():
    for name, command in leaf_commands().items():
        if name in NO_RESULTS:
            continue
        assert {"--json", "--table", "--csv"} <= flags_of(command), f"{name} lacks --json/--table/--csv"


def test_one_short_flag_means_one_option_on_every_command():
    """One name for one thing: a short flag stands for the same option on every command that has it
    (similarity's -t was --text while -t was --template on classify and labels add); options that share a
    short flag share a long name."""
    longs_of: dict[str, list[tuple[str, set[str]]]] = {}
    for name, command in leaf_commands().items():
        for param in (p for p in command.params if isinstance(p, click.Option)):
            opts = param.opts + param.secondary_opts
            for short in (o for o in opts if not o.startswith("--")):
                longs_of.setdefault(short, []).append((name, {o for o in opts if o.startswith("--")}))
    clashes = {short: uses for short, uses in longs_of.items() if not set.intersection(*(u for _, u in uses))}
    assert not clashes, clashes


@pytest.mark.slow
def test_piped_output_parses_for_every_command(tiny, monkeypatch):
    monkeypatch.setenv("ZSINDEX_HOME", str(tiny["base"] / "home"))
    covered = {" ".join(a[:2]) if a[0] in GROUPS else a[0] for a in runs(tiny, 0)}
    assert set(leaf_commands()) - NO_RESULTS <= covered, "add an invocation for every command to runs()"
    for n, fmt in enumerate(("", "--csv", "--table")):
        for args in runs(tiny, n):
            name = " ".join(args[:2]) if args[0] in GROUPS else args[0]
            if fmt and name in ("demo", "eval", "ingest"):  # the slow ones once, piped
                continue
            r = CliRunner().invoke(cli, [*args, *([fmt] if fmt else [])])
            assert r.exit_code == (3 if name == "ingest" else 0), (args, fmt, r.output)
            out = r.stdout
            assert out.strip(), f"{name} {fmt} printed no results on stdout"
            if not fmt:  # piped: JSON lines, one object a line
                assert all(isinstance(json.loads(line), dict) for line in out.splitlines()), (name, out)
            elif fmt == "--csv":
                rows = list(csv.reader(io.StringIO(out)))
                assert len(rows) >= 2 and all(len(row) == len(rows[0]) for row in rows), (name, out)
            else:
                assert not out.lstrip().startswith("{"), (name, out)


def test_progress_bars_only_on_a_terminal(tiny, tmp_path):
    r = CliRunner().invoke(cli, ["ingest", str(tiny["photos"]), "--index", str(tmp_path / "i"), "-m", "demo",
                                 "--workers", "0"])
    assert r.exit_code == 0, r.output
    assert "img/s" not in r.stderr and "\r" not in r.stderr  # stderr is not a terminal here: no bar


def test_every_index_command_exits_1_with_a_message_for_a_missing_index(tiny, tmp_path, monkeypatch):
    """Exit codes as documented on every command: no index is a fault of the environment (1), never a traceback."""
    monkeypatch.setenv("ZSINDEX_HOME", str(tmp_path / "home"))
    missing = str(tmp_path / "no-index")
    creators = {"ingest", "labels add"}  # these make the index
    for args in runs(tiny, 0):
        name = " ".join(args[:2]) if args[0] == "labels" else args[0]
        if "--index" not in args or name in creators:
            continue
        args = [missing if a == tiny["index"] else a for a in args]
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 1, (name, r.output)
        assert "no index at" in r.stderr and "Traceback" not in r.output, (name, r.output)


def _path_params(command: click.Command) -> list[click.Parameter]:
    """The parameters of a command that take a path or a glob."""
    from zsindex.clikit import Glob

    return [p for p in command.params if isinstance(p.type, (click.Path, Glob))]


def test_no_path_or_glob_parameter_is_a_plain_string():
    """A new --path/--out/--exclude... option must be declared as a path or a glob, so that "" is refused."""
    wordy = re.compile(r"path|glob|exclude|dir|file|out|root|like|image|source|confusion|index")
    for name, command in leaf_commands().items():
        for p in command.params:
            if p.name and wordy.search(p.name) and not getattr(p, "is_flag", False) and p.name != "paths_only":
                assert p in _path_params(command), f"{name}: {p.name} takes a path or glob but is not declared one"


def test_nan_and_inf_and_empty_filters_are_usage_errors_on_every_command(tiny, tmp_path, monkeypatch):
    """Every number option refuses nan and inf (a comparison with nan drops every result, silently), and every
    filter refuses "" (it is never 'no filter')."""
    monkeypatch.setenv("ZSINDEX_HOME", str(tmp_path / "home"))
    tried = set()
    for args in runs(tiny, 0):
        command = command_for(args)
        depth = 2 if args[0] in GROUPS else 1
        head, rest = args[:depth], args[depth:]
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            if isinstance(param.type, click.types.FloatParamType):
                values = ["nan", "inf", "-inf"]
            elif param.opts[0] in ("--camera", "--format", "--keyword", "--tag", "--tag-set"):
                values = ["", "  "]
            else:
                continue
            for value in values:
                extra = ["--tag", "red"] if param.opts[0] == "--tag-set" else []  # it names the set of a --tag
                r = CliRunner().invoke(cli, [*head, *rest, *extra, param.opts[0], value])
                tried.add(f"{' '.join(head)} {param.opts[0]}")
                assert r.exit_code == 2 and "Traceback" not in r.output, (head, param.opts[0], value, r.output)
                wanted = ("not a finite number", "not in the range") if values[0] == "nan" else ("is empty",)
                assert any(w in r.output for w in wanted), r.output
    for must in ("search --min-score", "search --not-weight", "tag --threshold", "search --camera", "search --format",
                 "search --keyword", "search --tag", "sidecars write --min-score"):
        assert must in tried, (must, sorted(tried))


def test_an_empty_path_or_glob_is_a_usage_error_on_every_command(tiny, tmp_path, monkeypatch):
    """"" is never the current folder (forget "" forgot every image) nor 'no filter' (search --path "")."""
    monkeypatch.setenv("ZSINDEX_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tiny["photos"])  # where an empty path would land: the images an ingest or forget would take
    index = str(tmp_path / "index")
    tried = set()
    for args in runs(tiny, 0):
        args = [index if a == tiny["index"] else a for a in args]
        command = command_for(args)
        depth = 2 if args[0] in GROUPS else 1
        head, rest = args[:depth], args[depth:]
        for param in _path_params(command):
            if isinstance(param, click.Option):
                variants = [[*rest, param.opts[0], ""]]
            else:
                ctx = command.make_context(" ".join(head), list(rest), resilient_parsing=True)
                value = ctx.params.get(param.name)
                if not value:
                    variants = [["", *rest]]
                else:
                    first = str(value[0] if isinstance(value, tuple) else value)
                    variants = [[("" if a == first else a) for a in rest]]
            for variant in variants:
                r = CliRunner().invoke(cli, [*head, *variant])
                tried.add(f"{' '.join(head)} {param.name}")
                assert r.exit_code == 2, (head, variant, r.output)
                assert "is empty" in r.output and "Traceback" not in r.output, (head, variant, r.output)
        assert not os.path.exists(index), f"{' '.join(head)} made an index before refusing"
    for must in ("forget paths", "ingest paths", "ingest index_dir", "search path_glob", "search likes",
                 "tag path_glob", "sidecars write path_glob", "export out_path", "eval source", "eval confusion_png",
                 "classify images", "classify labels_file", "ingest exclude", "keywords path_glob", "demo folder"):
        assert must in tried, must


def _text_options(command: click.Command) -> list[click.Option]:
    """The options of a command that take a text (not a path, glob, number, choice or flag)."""
    return [p for p in command.params if isinstance(p, click.Option) and not p.is_flag
            and isinstance(p.type, click.types.StringParamType)]


def test_every_text_option_refuses_an_empty_string(tiny, tmp_path, monkeypatch):
    """No text option gives "" a meaning of its own: --model '' is not the default model, --pretrained '' not
    'no tag', --prefix '' not 'none', --token '' not 'no token', --db '' not $ZSINDEX_DB. Every one, on every
    command and on the group itself, is a usage error (exit 2) before any work, and nothing is made."""
    from zsindex.clikit import NonEmptyText

    monkeypatch.setenv("ZSINDEX_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tiny["photos"])
    index = str(tmp_path / "index")
    invocations = [[index if a == tiny["index"] else a for a in args] for args in runs(tiny, 0)]
    invocations.append(["serve", "--index", index, "--port", "1"])
    tried = set()
    for args in invocations:
        command = command_for(args)
        depth = 2 if args[0] in GROUPS else 1
        head, rest = args[:depth], args[depth:]
        targets = [(command, [*head, *rest])] + ([(cli, list(args))] if args[0] == "status" else [])
        for owner, base in targets:
            for param in _text_options(owner):
                assert isinstance(param.type, NonEmptyText), (head, param.opts)
                for value in ("", "  "):
                    where = [param.opts[0], value]
                    full = [*where, *base] if owner is cli else [*base, *where]
                    r = CliRunner().invoke(cli, full)
                    tried.add(f"{' '.join(head) if owner is not cli else '(group)'} {param.opts[0]}")
                    assert r.exit_code == 2 and "is empty" in r.output, (full, r.output)
                    assert "Traceback" not in r.output, (full, r.output)
        assert not os.path.exists(index), f"{' '.join(head)} made an index before refusing"
    for name in leaf_commands():
        for param in _text_options(leaf_commands()[name]):
            assert f"{name} {param.opts[0]}" in tried, (name, param.opts[0])
    for must in ("classify --model", "classify --pretrained", "classify --device", "sidecars write --prefix",
                 "serve --token", "serve --host", "ingest --ray", "(group) --db", "search --after"):
        assert must in tried, must


def test_every_command_that_decodes_the_users_image_files_has_the_bomb_guards_flag():
    """search --like read an image but had no --max-megapixels: its message pointed at `zsindex ingest
    --max-megapixels`. A new command is put in READS_NO_IMAGE_FILE or takes the flag."""
    for name, command in leaf_commands().items():
        flag = IMAGE_LIMIT_FLAG.get(name, "--max-megapixels")
        if name in READS_NO_IMAGE_FILE:
            assert "--max-megapixels" not in flags_of(command), f"{name} has --max-megapixels: take it off the list"
        else:
            assert flag in flags_of(command), f"{name} decodes image files the user names but lacks {flag}"


def bomb_runs(t: dict, bomb: str, dataset: str) -> dict[str, list[str]]:
    """Each command that decodes image files the user names, given a 3600 MP bomb among them."""
    i = ["--index", t["bomb_index"]]
    return {
        "ingest": ["ingest", bomb, *i, "--workers", "2"],
        "classify": ["classify", bomb, t["image"], "-l", "red,blue", "-m", "demo"],
        "similarity": ["similarity", "red", "-i", bomb, "-i", t["image"], "-m", "demo"],
        "search": ["search", "--like", bomb, *i],
        "eval": ["eval", dataset, "-m", "demo"],
    }


def test_the_bomb_guard_names_the_running_commands_flag_and_the_limit_given(tiny, tmp_path, monkeypatch):
    """Every command that decodes the user's image files refuses a bomb with zsindex's message, quoting the limit
    given to it and its own flag, never another command's (search --like said `zsindex ingest --max-megapixels`)."""
    monkeypatch.setenv("ZSINDEX_HOME", str(tmp_path / "home"))
    t = {**tiny, "bomb_index": str(tmp_path / "index")}
    r = CliRunner().invoke(cli, ["ingest", str(tiny["photos"]), "--index", t["bomb_index"], "-m", "demo",
                                 "--workers", "0"])
    assert r.exit_code == 0, r.output
    bomb = str(bomb_png(tmp_path / "bomb.png", 60000))
    dataset = tmp_path / "dataset"
    for cls in ("red", "blue"):
        (dataset / cls).mkdir(parents=True)
        (dataset / cls / "a.png").write_bytes(Path(tiny["image"]).read_bytes())
    bomb_png(dataset / "red" / "bomb.png", 60000)
    runs_ = bomb_runs(t, bomb, str(dataset))
    takers = {n for n, c in leaf_commands().items() if "--max-megapixels" in flags_of(c)}
    assert set(runs_) == takers, "add an invocation for every command with --max-megapixels to bomb_runs()"
    for name, args in runs_.items():
        r = CliRunner().invoke(cli, [*args, "--max-megapixels", "250"])
        assert r.exit_code in (2, 3), (name, r.output)
        assert "60000x60000 is 3600 MP, over the 250 MP limit (--max-megapixels MP)" in r.stderr, (name, r.stderr)
        assert "zsindex ingest" not in r.stderr and "PIL" not in r.stderr, (name, r.stderr)
