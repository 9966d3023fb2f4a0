"""Messages and exit codes: real flag names only, the subcommand's usage, API wording in the library, Ctrl-C."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import zsindex
from zsindex.cli import cli
from zsindex.clikit import cli_text
from zsindex.errors import LabelError, UsageError
from zsindex.labels import parse_label_file, parse_label_list
from zsindex.library import Library

from .conftest import FIXTURES, REPO, draw_shapes
from .test_cli_rules import FLAG, command_for, flags_of, leaf_commands

LEFTOVER_API_NAME = re.compile(r"(?<![\w/.-])[a-z][a-z0-9_]*=")  # a library parameter the CLI did not translate
CLI_MODULES = {"clikit.py", "output.py"}  # and every cli*.py: the command modules


def _draw(folder: Path, n: int, size: int = 64) -> list[Path]:
    return draw_shapes(folder, n, size, seed=5)


@pytest.fixture(scope="module")
def small(tmp_path_factory, demo_embedder):
    base = tmp_path_factory.mktemp("msg")
    files = _draw(base / "photos", 6)
    lib = Library(base / "index", embedder=demo_embedder)
    lib.ingest([base / "photos"], workers=0)
    lib.labels_add("colours", "red,blue")
    arch = base / "arch.json"
    arch.write_text("{}")
    (base / "empty").mkdir()
    (base / "labels.yaml").write_text("- red\n")
    return {"base": base, "index": str(lib.folder), "image": str(files[0]), "arch": str(arch)}


def provocations(t: dict) -> list[tuple[list[str], int]]:
    """(arguments, exit code) of invocations that fail or warn; their messages must name real flags only."""
    i, img = ["--index", t["index"]], t["image"]
    return [
        (["classify", img, "-l", "a,,b", "-m", "demo"], 2),
        (["classify", img, "-l", "a", "--labels-file", t["arch"], "-m", "demo"], 2),
        (["classify", img, "-l", "x", "-t", "no placeholder", "-m", "demo"], 2),
        (["classify", img, "-l", "red,blue", "-m", "demo", "--max-megapixels", "0.1"], 0),
        (["classify", str(FIXTURES / "bomb.gif"), "-l", "red,blue", "-m", "demo"], 3),
        (["classify", img, "-l", "red", "-m", t["arch"]], 1),
        (["classify", img, "--labels-file", str(t["base"] / "labels.yaml"), "-m", "demo"], 2),
        (["similarity", " ", "-i", img, "-m", "demo"], 2),
        (["search", " ", *i], 2),
        (["search", "red", "--not", "", *i], 2),
        (["search", "--like", str(t["base"] / "missing.jpg"), *i], 2),
        (["search", "red", "--after", "yesterday", *i], 2),
        (["search", "red", "--tag", "nope", *i], 2),
        (["search", "red", "--tag-set", "colours", *i], 2),
        (["labels", "add", "s1", *i], 2),
        (["labels", "add", "s1", "-l", "a", "--file", t["arch"], *i], 2),
        (["labels", "add", "colours", "-l", "x", *i], 2),
        (["labels", "edit", "colours", "--add", "a", "--add-file", t["arch"], *i], 2),
        (["tag", "-l", "a,,b", *i], 2),
        (["tag", "-l", str(t["base"] / "labels.yaml"), *i], 2),  # a file of labels, not a label
        (["tag", "-l", "colours", "--path", "/nowhere/*", *i], 0),
        (["ingest", str(t["base"] / "gone"), *i], 2),
        (["ingest", str(t["base"] / "empty"), *i], 0),
        (["forget", *i], 2),
        (["eval", str(t["base"] / "photos"), "-l", "x,y", "-m", "demo"], 2),
    ]


@pytest.mark.parametrize("args", [["search", "red", "-k", "5"], ["search", "red", "--table"], ["status"], ["tags"],
                                  ["tag", "-l", "colours"], ["export", "-l", "colours"], ["labels", "list"],
                                  ["classify", "IMAGE", "-l", "red,blue", "-m", "demo"]])
def test_a_reader_that_goes_away_ends_the_command_quietly(small, args):
    """`zsindex ... | head -1`: the pipe closes before the output is written; exit 0, nothing on stderr."""
    args = [small["image"] if a == "IMAGE" else a for a in args]
    index = [] if args[0] == "classify" else ["--index", small["index"]]
    proc = subprocess.Popen([sys.executable, "-m", "zsindex", *args, *index], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=REPO)
    proc.stdout.close()  # the reader is gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "Error" not in err and "Traceback" not in err and "Broken pipe" not in err, err


@pytest.mark.parametrize("closed", ["stdout", "stderr", "both"])
def test_a_closed_stdout_or_stderr_never_changes_the_exit_code(small, tmp_path, closed):
    """The exit code a command decides (3 for skipped files, 2 for a usage error, 1 for a fault, 0) is the same
    whether its reader reads everything or goes away at once: `... 2>&1 | head -1` under pipefail."""
    import shutil

    (tmp_path / "p").mkdir()
    shutil.copy(small["image"], tmp_path / "p" / "good.png")
    shutil.copy(FIXTURES / "broken.png", tmp_path / "p" / "broken.png")
    index = ["--index", small["index"]]
    cases = [
        (["ingest", str(tmp_path / "p"), "--index", str(tmp_path / "i"), "-m", "demo"], 3),  # skips broken.png
        (["classify", str(FIXTURES / "bomb.gif"), small["image"], "-l", "red,blue", "-m", "demo"], 3),
        (["labels", "edit", "colours", *index], 2),  # nothing to change: a usage error
        (["search", "red", "--bogus", *index], 2),
        (["status", "--index", str(tmp_path / "missing")], 1),
        (["search", "red", "-k", "5", *index], 0),
        (["--help"], 0),
    ]
    env = {**os.environ, "ZSINDEX_HOME": str(small["base"] / "home")}
    for args, code in cases:
        out = subprocess.PIPE if closed in ("stdout", "both") else subprocess.DEVNULL
        err = subprocess.STDOUT if closed == "both" else subprocess.PIPE
        proc = subprocess.Popen([sys.executable, "-m", "zsindex", *args], stdout=out, stderr=err, cwd=REPO, env=env)
        gone, kept = (proc.stderr, proc.stdout) if closed == "stderr" else (proc.stdout, proc.stderr)
        gone.close()  # the reader goes away before the first line
        text = kept.read().decode() if kept is not None else ""
        assert proc.wait(timeout=120) == code, (closed, args, text)
        assert "Traceback" not in text and "Broken pipe" not in text, (closed, args, text)
        shutil.rmtree(tmp_path / "i", ignore_errors=True)  # the next ingest skips broken.png again


@pytest.mark.parametrize("redirect", [">&-", "2>&-", "<&- >&- 2>&-", "2>/dev/full"])
def test_a_stream_closed_from_the_start_or_full_changes_no_exit_code_and_no_file(small, tmp_path, redirect):
    """`zsindex ... >&-` (stdout closed before the command starts), `2>&-`, all three closed, or stderr on a
    full disk: the exit code is the command's own and nothing is written into a file the command opens. With
    stdout closed, Python left sys.stdout None and the first result was a traceback (exit 1); with stderr
    closed, an ingest failed the same way after creating its index; a closed descriptor is also the one the
    next opened file gets, where stdout or stderr writes would then land. Results on a full stdout fail the
    command (exit 1) with a message naming stdout."""
    import shlex
    import shutil

    (tmp_path / "p").mkdir()
    shutil.copy(small["image"], tmp_path / "p" / "good.png")
    shutil.copy(FIXTURES / "broken.png", tmp_path / "p" / "broken.png")
    index = ["--index", small["index"]]
    fresh = str(tmp_path / "i")
    cases = [
        (["ingest", str(tmp_path / "p"), "--index", fresh, "-m", "demo"], 3),  # skips broken.png
        (["search", "red", "-k", "5", "--index", fresh], 0),
        (["classify", str(FIXTURES / "bomb.gif"), small["image"], "-l", "red,blue", "-m", "demo"], 3),
        (["labels", "edit", "colours", *index], 2),
        (["status", "--index", str(tmp_path / "missing")], 1),
        (["search", "red", "-k", "5", *index], 0),
        (["status", *index], 0),
    ]
    env = {**os.environ, "ZSINDEX_HOME": str(small["base"] / "home")}
    for args, code in cases:
        line = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "zsindex", *args])
        proc = subprocess.run(["bash", "-c", f"exec {line} {redirect}"], capture_output=True, cwd=REPO, env=env,
                              timeout=120)
        assert proc.returncode == code, (redirect, args, proc.stderr.decode())
        assert b"Traceback" not in proc.stdout + proc.stderr, (redirect, args, proc.stderr.decode())
    lib = Library(fresh)  # the index the ingest made with a stream closed is whole and holds only its image
    assert lib.status()["images"] == {"indexed": 1, "error": 1}, lib.status()
    lib.close()
    full = subprocess.run(["bash", "-c", f"exec {sys.executable} -m zsindex status --index {small['index']} "
                                         ">/dev/full"], capture_output=True, cwd=REPO, env=env, timeout=120)
    assert full.returncode == 1 and b"<stdout>" in full.stderr and b"Traceback" not in full.stderr, full.stderr


def test_messages_name_only_flags_the_command_has(small, monkeypatch):
    monkeypatch.setenv("ZSINDEX_HOME", str(small["base"] / "home"))
    for args, code in provocations(small):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == code, (args, r.output)
        command = command_for(args)
        assert set(FLAG.findall(r.stderr)) <= flags_of(command), (args, r.stderr)
        assert not LEFTOVER_API_NAME.search(r.stderr), (args, r.stderr)
        assert "Traceback" not in r.output


def test_command_help_names_only_its_own_flags():
    for name, command in leaf_commands().items():
        text = command.help or ""
        own = [line for line in text.splitlines() if "zsindex " not in line or f"zsindex {name}" in line]
        used = set(FLAG.findall("\n".join(own)))
        assert used <= flags_of(command), f"zsindex {name} --help names {used - flags_of(command)}"


def test_stored_reasons_name_the_flag_of_the_command_that_takes_it(tmp_path):
    """A skip reason is stored once (naming the library's max_megapixels=); `zsindex errors`, which has no
    such option, names ingest's flag."""
    import shutil

    (tmp_path / "p").mkdir()
    shutil.copy(FIXTURES / "bomb.gif", tmp_path / "p" / "bomb.gif")
    index = str(tmp_path / "i")
    r = CliRunner().invoke(cli, ["ingest", str(tmp_path / "p"), "--index", index, "-m", "demo", "-q"])
    assert r.exit_code == 3 and "--max-megapixels MP" in r.stderr, r.output
    r = CliRunner().invoke(cli, ["errors", "--index", index, "--csv"])
    assert "zsindex ingest --max-megapixels MP" in r.stdout and "max_megapixels=" not in r.stdout, r.stdout


def test_specific_messages(small):
    i = ["--index", small["index"]]
    r = CliRunner().invoke(cli, ["search", "red", "--not", "", *i])
    assert "'--not'" in r.stderr and "is empty" in r.stderr and "query" not in r.stderr  # about --not
    missing = str(small["base"] / "missing.jpg")
    r = CliRunner().invoke(cli, ["search", "--like", missing, *i])
    assert missing in r.stderr and "--like" in r.stderr
    r = CliRunner().invoke(cli, ["classify", str(FIXTURES / "bomb.gif"), "-l", "red,blue", "-m", "demo"])
    assert "--max-megapixels MP" in r.stderr
    r = CliRunner().invoke(cli, ["ingest", str(small["base"] / "empty"), *i])
    assert "no image files found in" in r.stderr and json.loads(r.stdout)["added"] == 0
    r = CliRunner().invoke(cli, ["tag", "-l", "colours", "--path", "/nowhere/*", *i])
    assert "no indexed image matches" in r.stderr and "--path" in r.stderr and r.stdout == ""


def test_usage_errors_show_the_subcommand_usage(small):
    r = CliRunner().invoke(cli, ["search", " ", "--index", small["index"]])
    assert r.exit_code == 2 and "search [OPTIONS] [QUERY]..." in r.output and "search --help" in r.output
    r = CliRunner().invoke(cli, ["labels", "add", "s1", "--index", small["index"]])
    assert r.exit_code == 2 and "labels add [OPTIONS] NAME" in r.output


def _library_strings() -> list[tuple[str, int, str]]:
    """Every string literal of the library modules (not the CLI ones), docstrings left out."""
    out = []
    for path in sorted((REPO / "zsindex").glob("*.py")):
        if path.name in CLI_MODULES or (path.name.startswith("cli") and path.name != "clip_tokenizer.py"):
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                out.append((path.name, node.lineno, node.value))
    return out


def test_library_messages_do_not_name_cli_flags():
    offending = [(f, n, s) for f, n, s in _library_strings() if FLAG.search(s)]
    assert not offending, offending


def test_api_errors_speak_python_and_the_cli_translates(small):
    lib = Library(small["index"])
    for call in (lambda: lib.search(""), lambda: lib.search("red", not_=""), lambda: lib.search(),
                 lambda: lib.search(like=small["base"] / "missing.jpg"), lambda: lib.forget(),
                 lambda: parse_label_list(""), lambda: lib.search("red", tag="nope")):
        with pytest.raises(UsageError) as err:
            call()
        assert "--" not in str(err.value), str(err.value)
    with click.Context(cli.commands["search"]) as ctx:
        shown = cli_text("use model=demo or folder=DIR; like=IMAGE", ctx)
        assert shown == "use --model demo or --index DIR; --like IMAGE"
        assert cli_text("top_k= must be positive, raw_names=True", ctx) == "--top-k must be positive, raw_names=True"


def test_one_name_for_the_number_of_results(small):
    search = flags_of(cli.commands["search"])
    classify = flags_of(cli.commands["classify"])
    assert {"-k", "--top-k"} <= search & classify and "--limit" in search  # --limit stays as an alias
    lib = Library(small["index"])
    assert [h.id for h in lib.search("red", top_k=2)] == [h.id for h in lib.search("red", k=2)]


def test_public_api_is_listed():
    assert "open" in dir(zsindex) and "Library" in dir(zsindex) and callable(zsindex.open)


def test_label_lists_quote_like_csv_and_label_files_say_what_is_wrong(tmp_path):
    assert [x.name for x in parse_label_list('"red, dark", blue,"say ""hi"""')] == ["red, dark", "blue", 'say "hi"']
    f = tmp_path / "l.json"
    f.write_text('[{"lab": "x"}]')
    with pytest.raises(LabelError, match="needs one \"label\" .or \"name\". key.*'lab'"):
        parse_label_file(f)
    f.write_text('[{"label": "x", "descripton": "typo"}]')
    with pytest.raises(LabelError, match="unknown key 'descripton'"):
        parse_label_file(f)
    g = tmp_path / "labels.yaml"
    g.write_text("- red\n")
    with pytest.raises(LabelError, match=r"not \.txt, \.csv or \.json"):
        parse_label_file(g)


@pytest.mark.slow
def test_demo_without_dir_leaves_no_folder_behind(tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    r = CliRunner().invoke(cli, ["demo"])
    assert r.exit_code == 0, r.output
    assert [p.name for p in scratch.iterdir() if "zsindex" in p.name] == [] and "--dir" in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("workers, to_group", [(0, False), (1, True)])
def test_ctrl_c_exits_130_and_status_says_interrupted(tmp_path, workers, to_group):
    """SIGINT to a real ingest (to it alone, or to its process group as a terminal's Ctrl-C does)."""
    _draw(tmp_path / "p", 600, size=160)  # enough work that an idle machine is still busy when the signal comes
    index = tmp_path / "index"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "zsindex", "ingest", str(tmp_path / "p"), "--index", str(index),
                             "-m", "demo", "--batch-size", "1", "--workers", str(workers)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True,
                            # A runner started in the background (CI, `cmd &`) may hand down SIGINT ignored, and
                            # Python then installs no KeyboardInterrupt handler: give the child a terminal's default.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            if (index / "index.sqlite").exists():
                con = sqlite3.connect(index / "index.sqlite", timeout=5)
                try:
                    n = con.execute("SELECT count(*) FROM images").fetchone()[0]
                except sqlite3.OperationalError:
                    n = 0  # tables not made yet
                con.close()
                if n >= 1:  # the first batch is committed: interrupt now, long before the end
                    break
            time.sleep(0.2)
        assert proc.poll() is None, "ingest finished before it could be interrupted"
        if to_group:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err.decode()
    assert b"Traceback" not in err
    status = CliRunner().invoke(cli, ["status", "--index", str(index), "--json"])
    run = json.loads(status.stdout)["last_run"]
    assert run["status"] == "interrupted" and run["finished_at"] is not None
    con = sqlite3.connect(index / "index.sqlite")
    assert con.execute("SELECT status FROM ingest_runs").fetchall() == [("interrupted",)]  # recorded, not guessed
    con.close()


class _DropsCtrlC:
    """Receives Ctrl-C in its ``__del__``, where Python prints the KeyboardInterrupt as "ignored" and drops it."""

    def __del__(self) -> None:
        signal.raise_signal(signal.SIGINT)


def test_a_ctrl_c_that_python_drops_still_stops_the_command(tmp_path, monkeypatch, capfd):
    """SIGINT landing in a finaliser or weakref callback (seen in CI) used to let an ingest run on and exit 0."""
    from zsindex import ingest

    _draw(tmp_path / "p", 12)
    index = tmp_path / "index"
    commit = ingest.Ingester._commit

    def commit_then_ctrl_c(self, *args, **kwargs):
        commit(self, *args, **kwargs)
        _DropsCtrlC()  # made and dropped at once: the signal arrives inside __del__

    monkeypatch.setattr(ingest.Ingester, "_commit", commit_then_ctrl_c)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    result = CliRunner().invoke(cli, ["ingest", str(tmp_path / "p"), "--index", str(index), "-m", "demo",
                                      "--batch-size", "4", "--workers", "0"])
    assert result.exit_code == 130, result.output
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the command's handler is gone again
    con = sqlite3.connect(index / "index.sqlite")
    assert con.execute("SELECT status FROM ingest_runs").fetchall() == [("interrupted",)]
    assert con.execute("SELECT count(*) FROM images").fetchone()[0] == 4  # stopped after the first batch
    con.close()
    assert "Traceback" not in capfd.readouterr().err  # the dropped interrupt is not printed either

    # A command with no progress to report stops at its end: the user pressed Ctrl-C, the shell sees 130.
    from zsindex import store

    session = store.Store.session

    def session_then_ctrl_c(self, *args, **kwargs):
        _DropsCtrlC()
        return session(self, *args, **kwargs)

    monkeypatch.setattr(store.Store, "session", session_then_ctrl_c)
    result = CliRunner().invoke(cli, ["status", "--index", str(index), "--json"])
    assert result.exit_code == 130 and "interrupted" in result.output
    monkeypatch.setattr(store.Store, "session", session)
    assert CliRunner().invoke(cli, ["status", "--index", str(index), "--json"]).exit_code == 0  # no leftover


def test_status_of_a_killed_run_is_interrupted(tmp_path, demo_embedder):
    """A run killed before it could record anything (SIGKILL) is not shown as running forever."""
    _draw(tmp_path / "p", 2)
    lib = Library(tmp_path / "index", embedder=demo_embedder)
    lib.ingest([tmp_path / "p"], workers=0)
    con = sqlite3.connect(lib.folder / "index.sqlite")
    con.execute("UPDATE ingest_runs SET status = 'running', finished_at = NULL")
    con.commit()
    con.close()
    assert lib.status()["last_run"]["status"] == "interrupted"


def _stderr_of(*args: str | bytes, cwd: Path) -> bytes:
    proc = subprocess.run([sys.executable, "-m", "zsindex", *args], cwd=cwd, capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    return proc.stderr


def test_messages_name_a_file_that_is_not_utf8_as_outputs_do(small, tmp_path):
    """A byte of a name that is not UTF-8 appears in every kind of message as \\xff, the escaped form of the
    outputs (README, "File names"): the library's messages, warnings, click's own checks of a path, and an
    index folder's faults; never Python's \\udcff nor click's U+FFFD."""
    index = small["index"]
    (tmp_path / b"file\xff.png".decode("utf-8", "surrogateescape")).write_bytes(b"not an index")
    cases = [
        ("classify", b"gone\xff.png", "-l", "red", "-m", "demo"),                       # the library's message
        ("forget", b"nothing/here\xff", "--index", index),                               # a warning
        ("classify", "x.png", "-l", "red", "-m", "demo", "--labels-file", b"lab\xff.txt"),  # click's path check
        ("eval", b"gone\xff"),
        ("status", "--index", b"file\xff.png"),                                          # a file, not a folder
        ("search", "x", "--index", b"idx\xff/nope"),                                     # no index there
    ]
    for args in cases:
        err = _stderr_of(*args, cwd=tmp_path)
        assert b"\\xff" in err and b"\\udcff" not in err and "\ufffd".encode() not in err, (args, err)


ODD = b"we\nird\t\xff\\dir"  # a newline, a tab, a byte that is not UTF-8 and a backslash in one name


def _odd(base: Path, *parts: bytes) -> str:
    return os.fsdecode(os.path.join(os.fsencode(base), *parts))


def test_every_message_names_an_odd_path_on_one_line_in_the_escaped_form(small, tmp_path):
    """A newline or tab in a path was printed raw in errors, warnings and the commands they suggest, splitting a
    message across lines ("Error: no index at nl" / "idx; ..."), while \\xff in the same message was escaped. Every
    message of every kind (the library's errors, the index folder's faults, warnings, click's path checks) names
    such a path in the escaped form of the outputs, one line a message; a suggested command gives it as one
    shell word that bash reads back as the very name."""
    from zsindex.output import shown

    def odd_index(name: bytes, content: bytes | None) -> str:
        folder = _odd(tmp_path, name)
        os.mkdir(folder)
        if content is not None:
            Path(folder, "index.sqlite").write_bytes(content)
        return folder

    gone = _odd(tmp_path, ODD, b"gone")
    cases = [
        (["search", "x", "--index", odd_index(ODD + b"1", None)], 1),                      # no index there
        (["search", "x", "--index", odd_index(ODD + b"2", b"")], 1),                        # an emptied database
        (["search", "x", "--index", odd_index(ODD + b"3", b"garbage" * 200)], 1),          # not a database
        (["status", "--index", odd_index(ODD + b"4", None) + "/index.sqlite/.."], 1),
        (["forget", gone, "--index", small["index"]], 0),                                    # a warning
        (["classify", gone, "-l", "red", "-m", "demo"], 2),
        (["ingest", gone, "--index", small["index"]], 2),                                    # click's path check
        (["eval", gone, "-l", "x,y", "-m", "demo"], 2),
    ]
    os.mkdir(_odd(tmp_path, ODD + b"5"))
    Path(_odd(tmp_path, ODD + b"5"), "index.sqlite").mkdir()                                # a folder in its place
    cases.append((["search", "x", "--index", _odd(tmp_path, ODD + b"5")], 1))
    if os.geteuid() != 0:  # root writes anywhere
        readonly = _odd(tmp_path, ODD + b"6")
        shutil.copytree(small["index"], readonly)
        for p in [readonly, *(str(x) for x in Path(readonly).iterdir())]:
            os.chmod(p, 0o555 if os.path.isdir(p) else 0o444)
        cases.append((["tag", "--labels", "a,b", "--index", readonly], 1))
    try:
        for args, code in cases:
            proc = subprocess.run([sys.executable, "-m", "zsindex", *(os.fsencode(a) for a in args)], cwd=tmp_path,
                                  capture_output=True, timeout=120,
                                  env={**os.environ, "PYTHONIOENCODING": "utf-8", "PYTHONPATH": str(REPO)})
            err = proc.stderr.decode("utf-8")
            assert proc.returncode == code, (args, proc.returncode, err)
            assert shown(ODD.decode("utf-8", "surrogateescape")) in err, (args, err)
            assert "ird\t" not in err and "\nird" not in err and "\\udc" not in err, (args, err)
            messages = [line for line in err.splitlines() if line.startswith(("Error:", "warning:", "partly done:"))]
            assert messages, (args, err)
            for word in re.findall(r"\$'(?:[^'\\]|\\.)*'", err):  # a suggested command's path, as bash reads it
                said = subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True, check=True).stdout
                assert ODD in said, (args, word, said)
    finally:
        for p in tmp_path.rglob("*"):
            if not p.is_symlink():
                os.chmod(p, 0o755 if p.is_dir() else 0o644)


def test_a_path_given_in_a_message_is_a_shell_word_on_the_command_line_and_a_serve_option_on_the_server():
    from zsindex.errors import given
    from zsindex.service.messages import server_text

    name = "idx\n2 it's"
    message = f"no index; run Library.ingest(PATH) with folder={given(name)}"
    assert message.endswith("folder='idx\\n2 it\\x27s'")
    ctx = click.Context(cli.commands["search"])
    text = cli_text(message, ctx)
    assert "--index $'idx\\n2 it\\'s'" in text and "\n" not in text, text
    said = subprocess.run(["bash", "-c", "printf %s $'idx\\n2 it\\'s'"], capture_output=True, check=True).stdout
    assert said.decode() == name
    assert "zsindex serve --index $'idx\\n2 it\\'s'" in server_text(message)
    assert given("/plain/idx") == "/plain/idx"
    # a read-only index folder (the test above cannot make one when it runs as root): its fault, as the CLI says it
    from zsindex.faults import read_only_error

    said_ro = cli_text(str(read_only_error(Path("ro\nlink"), "tag")), click.Context(cli.commands["tag"]))
    assert "\n" not in said_ro and "ro\\nlink" in said_ro and "chmod -R u+w $'ro\\nlink'" in said_ro, said_ro
