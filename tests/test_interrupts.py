"""Ctrl-C, whatever it lands on: "interrupted", the run recorded as interrupted, exit 130; never a traceback, never
exit 1 (an exception the interrupt became on its way out) or 134 (native thread pools torn down mid-work).

Real processes and real signals: SIGINT at many moments of a command's life, from its imports to its exit; and
in-process runs where the KeyboardInterrupt is swallowed and what surfaces is another exception.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from zsindex import interrupts
from zsindex.cli import cli

from .conftest import REPO, draw_shapes

ENV = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
BAD = (b"Traceback", b"terminate called", b"Exception ignored", b"Aborted!", b"Fatal Python error")


def _draw(folder: Path, n: int, size: int = 96) -> list[Path]:
    return draw_shapes(folder, n, size, seed=7)


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "zsindex", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=ENV, start_new_session=True,
                            # A runner started in the background may hand down SIGINT ignored: give a terminal's.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[bytes, bytes]:
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:  # hung: the test fails below, and leaves no process behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _startup_s() -> float:
    """How long this machine takes to start Python and import zsindex's Ctrl-C handler (before that, a SIGINT
    is the interpreter's own: nothing of zsindex runs yet)."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import zsindex.interrupts"], env=ENV, check=True)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    base = tmp_path_factory.mktemp("ctrl-c")
    _draw(base / "p", 240)
    index = base / "index"
    done = subprocess.run([sys.executable, "-m", "zsindex", "ingest", str(base / "p"), "--index", str(index), "-m",
                           "demo", "-q"], env=ENV, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    return base


def _commands(base: Path, run: int) -> dict[str, list[str]]:
    fresh = base / f"fresh-{run}"
    return {
        # a text never asked before: the text tower's session is being made in a thread when the signal lands
        "search": ["search", f"a new query {run} {time.time()}", "--index", str(base / "index"), "-k", "1"],
        # a new index: the model is loaded (ONNX Runtime imported) during the first batch
        "ingest": ["ingest", str(base / "p"), "--index", str(fresh), "-m", "demo", "-q", "--batch-size", "4",
                   "--workers", "1"],
        "tag": ["tag", "--labels", f"red,blue,green {run}", "--mode", "multi", "--index", str(base / "index"),
                "-q", "--summary"],
        "classify": ["classify", *[str(p) for p in sorted((base / "p").iterdir())[:60]], "-l", "red,blue",
                     "-m", "demo"],
    }


@pytest.mark.slow
@pytest.mark.parametrize("command, runs", [("search", 16), ("ingest", 16), ("tag", 8), ("classify", 8)])
def test_ctrl_c_at_any_moment_exits_130(pictures, command, runs):
    """SIGINT at moments spread from just after start-up to the end of the command's work."""
    started = time.monotonic()
    proc = _start(_commands(pictures, -1)[command])
    out, err = _finish(proc, 120)
    whole = time.monotonic() - started
    assert proc.returncode == 0, err.decode()
    first = max(0.15, 3 * _startup_s())
    last = max(first + 0.2, 0.9 * whole)
    codes = []
    for run in range(runs):
        delay = first + (last - first) * run / (runs - 1)
        args = _commands(pictures, run)[command]
        proc = _start(args)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, err = _finish(proc)
        seen = f"{command} run {run}, SIGINT after {delay:.2f} s: exit {proc.returncode}\n{err.decode()[-3000:]}"
        assert not any(b in err for b in BAD), seen
        # 0 only when the work was done before the signal came: its output is all there
        assert proc.returncode == 130 or (proc.returncode == 0 and out.strip()), seen
        if proc.returncode == 130:
            assert err.decode().strip().endswith("interrupted"), seen
        codes.append(proc.returncode)
        if command == "ingest" and (pictures / f"fresh-{run}" / "index.sqlite").exists():
            con = sqlite3.connect(pictures / f"fresh-{run}" / "index.sqlite")
            try:
                statuses = [s for (s,) in con.execute("SELECT status FROM ingest_runs")]
            except sqlite3.OperationalError:
                statuses = []  # stopped before its tables were made
            con.close()
            if statuses:
                # What `zsindex status` says of the run: interrupted, or finished just before the Ctrl-C came
                # (the command then stops on its way out). Where the Ctrl-C cut the database's own transaction
                # short, the run's row can stay "running" (as after SIGKILL): status reads it as interrupted
                # once the index's lock is free, which it is when the process has ended.
                index = str(pictures / f"fresh-{run}")
                r = subprocess.run([sys.executable, "-m", "zsindex", "status", "--index", index, "--json"],
                                   capture_output=True, timeout=120, env=ENV)
                shown = json.loads(r.stdout)["last_run"]["status"]
                want = ("interrupted", "finished") if proc.returncode == 130 else ("finished",)
                assert shown in want and statuses[0] in (*want, "running"), (statuses, shown, seen)
    assert codes.count(130) >= runs // 2, codes  # the signal landed during the work in most runs


class _DropsCtrlC:
    """Receives Ctrl-C in its ``__del__``, where Python prints the KeyboardInterrupt as "ignored" and drops it."""

    def __del__(self) -> None:
        signal.raise_signal(signal.SIGINT)


def _pending_rollback() -> BaseException:
    from sqlalchemy.exc import PendingRollbackError

    return PendingRollbackError("This Session's transaction has been rolled back due to a previous exception")


@pytest.mark.parametrize("becomes", [
    lambda: ImportError("initialization failed"),  # a KeyboardInterrupt in a module's initialisation (pybind11)
    _pending_rollback,  # a transaction the KeyboardInterrupt broke off
    lambda: RuntimeError("a worker thread's error"),
    lambda: OSError(5, "Input/output error"),
    lambda: __import__("zsindex").IndexStateError("a library error"),
])
def test_whatever_a_ctrl_c_becomes_is_the_interrupt(tmp_path, monkeypatch, capfd, becomes):
    """The KeyboardInterrupt is lost (raised in a finaliser) and another exception ends the command: still
    "interrupted", exit 130, the ingest run recorded as interrupted, no traceback."""
    from zsindex import ingest

    _draw(tmp_path / "p", 8, size=48)
    commit = ingest.Ingester._commit

    def commit_then_ctrl_c(self, *args, **kwargs):
        commit(self, *args, **kwargs)
        _DropsCtrlC()
        raise becomes()

    monkeypatch.setattr(ingest.Ingester, "_commit", commit_then_ctrl_c)
    result = CliRunner().invoke(cli, ["ingest", str(tmp_path / "p"), "--index", str(tmp_path / "index"), "-m", "demo",
                                      "--batch-size", "4", "--workers", "0"])
    assert result.exit_code == 130, result.output
    assert result.output.strip().endswith("interrupted") and "Error" not in result.output, result.output
    con = sqlite3.connect(tmp_path / "index" / "index.sqlite")
    assert con.execute("SELECT status FROM ingest_runs").fetchall() == [("interrupted",)]
    con.close()
    assert "Traceback" not in capfd.readouterr().err
    status = CliRunner().invoke(cli, ["status", "--index", str(tmp_path / "index"), "--json"])
    assert json.loads(status.stdout)["last_run"]["status"] == "interrupted"
    assert not interrupts.requested()  # the command is over: the library's later work is no interrupt


def test_without_a_ctrl_c_the_same_errors_keep_their_exit_codes(tmp_path, monkeypatch):
    """The mapping is the interrupt's alone: the same exception with no Ctrl-C is still an error (exit 1)."""
    from zsindex import ingest

    _draw(tmp_path / "p", 8, size=48)

    def failing_commit(self, *args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(ingest.Ingester, "_commit", failing_commit)
    result = CliRunner().invoke(cli, ["ingest", str(tmp_path / "p"), "--index", str(tmp_path / "index"), "-m", "demo",
                                      "--workers", "0"])
    assert result.exit_code == 1 and "Input/output error" in result.output and "interrupted" not in result.output
    con = sqlite3.connect(tmp_path / "index" / "index.sqlite")
    assert con.execute("SELECT status FROM ingest_runs").fetchall() == [("failed",)]
    con.close()


def _driver(tmp_path: Path, body: str) -> Path:
    """A script that patches zsindex as body says, then runs the command line as `python -m zsindex` does."""
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent("""
        import signal, sys, threading, time
        from zsindex import interrupts
        """) + textwrap.dedent(body) + textwrap.dedent("""
        from zsindex.__main__ import main
        sys.argv = ["zsindex", *sys.argv[1:]]
        main()
        """))
    return script


@pytest.mark.slow
def test_a_command_stuck_after_a_swallowed_ctrl_c_still_ends_with_130(tmp_path, pictures):
    """A swallowed interrupt can leave a lock taken (the import system's) and the command waiting for ever on a
    thread that needs it; the process ends with 130 anyway, STOP_WITHIN_S after the Ctrl-C."""
    script = _driver(tmp_path, """
        from zsindex import cli
        interrupts.STOP_WITHIN_S = 2.0

        class Drops:
            def __del__(self):
                signal.raise_signal(signal.SIGINT)

        real = cli.open_library

        def stuck(*args, **kwargs):
            Drops()  # the Ctrl-C is swallowed here...
            threading.Event().wait()  # ...and the command waits for ever
            return real(*args, **kwargs)

        cli.open_library = stuck
        """)
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(script), "status", "--index", str(pictures / "index")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _, err = _finish(proc, 60)
    assert proc.returncode == 130 and err.decode().strip().endswith("interrupted"), err.decode()
    assert not any(b in err for b in BAD), err.decode()
    assert time.monotonic() - started < 30


@pytest.mark.slow
def test_a_second_ctrl_c_ends_the_command_at_once(tmp_path, pictures):
    """A command slow to stop after the first Ctrl-C (here: one that ignores it) ends at the second."""
    script = _driver(tmp_path, """
        from zsindex import cli
        interrupts.STOP_WITHIN_S = 600.0
        real = cli.open_library

        def deaf(*args, **kwargs):
            deadline, ready = time.monotonic() + 60, False
            while time.monotonic() < deadline:
                try:
                    while time.monotonic() < deadline:  # the signal lands in here: in the sleep or its loop
                        if not ready:
                            ready = True
                            print("ready", file=sys.stderr, flush=True)
                        time.sleep(0.05)
                except KeyboardInterrupt:
                    pass  # the first Ctrl-C goes unheeded
            return real(*args, **kwargs)

        cli.open_library = deaf
        """)
    proc = subprocess.Popen([sys.executable, str(script), "status", "--index", str(pictures / "index")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline().strip() == b"ready"
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert proc.poll() is None, proc.communicate()  # still running: the first Ctrl-C was swallowed
        proc.send_signal(signal.SIGINT)
        _, err = _finish(proc, 30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130 and err.decode().strip().endswith("interrupted"), err.decode()
