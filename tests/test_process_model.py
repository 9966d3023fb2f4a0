"""Ingest as an importer meets it, and as a killed process leaves it (issue 10, items 3 and 4).

- The README's Python API example runs as a plain script (no main guard):
  decoding must not start processes that re-import the caller's script.
- No zsindex process outlives the command that started it: killing an ingest
  with SIGTERM or SIGKILL leaves no decode worker or resource tracker behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zsindex import shapes

from .conftest import REPO


def readme_python_example() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Python API"):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's Python API section has no python code block"
    return match.group(1)


def draw_many(folder: Path, n: int, size: int = 64) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    pairs = shapes.seen_pairs()
    for i in range(n):
        colour, shape = pairs[i % len(pairs)]
        Image.fromarray(shapes.draw([shapes.Thing(colour, shape)], size=size, rng=rng)).save(
            folder / f"{i:04d}-{colour}-{shape}.png")


def test_readme_python_example_runs_as_a_plain_script(tmp_path):
    code = readme_python_example()
    assert "__main__" not in code  # as written: a plain script, which spawned workers would re-run
    draw_many(tmp_path / "photos", 6)
    Image.fromarray(shapes.draw([shapes.Thing("red", "circle")], size=64)).save(tmp_path / "query.jpg")
    Image.fromarray(shapes.draw([shapes.Thing("blue", "square")], size=64)).save(tmp_path / "new.jpg")
    (tmp_path / "example.py").write_text(code, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO), "ZSINDEX_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "'added': 6" in done.stdout  # ingest ran, with its default decode workers


def session_members(sid: int) -> list[tuple[int, str]]:
    """Live processes of a session (a process started with start_new_session leads its own)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            out.append((int(entry.name), cmd))
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to follow processes")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_ingest_leaves_no_process_behind(tmp_path, sig):
    draw_many(tmp_path / "p", 400, size=96)
    index = tmp_path / "index"
    cmd = [sys.executable, "-m", "zsindex", "ingest", str(tmp_path / "p"), "--index", str(index), "-m", "demo",
           "--device", "cpu", "--workers", "2", "--batch-size", "1", "-q"]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:  # wait until it is decoding and committing
            try:
                # read-only: a plain connect would make an empty index.sqlite before the ingest does (damage)
                con = sqlite3.connect((index / "index.sqlite").as_uri() + "?mode=ro", uri=True, timeout=1)
                try:
                    if con.execute("SELECT count(*) FROM images").fetchone()[0] >= 2:
                        break
                finally:
                    con.close()
            except sqlite3.Error:
                pass
            time.sleep(0.05)
        assert proc.poll() is None, "the ingest ended before it could be killed mid-run"
        proc.send_signal(sig)
        proc.wait(timeout=30)
        survivors = session_members(proc.pid)
        deadline = time.monotonic() + 5
        while survivors and time.monotonic() < deadline:
            time.sleep(0.2)
            survivors = session_members(proc.pid)
        assert survivors == [], f"left running after {sig.name}: {survivors}"
    finally:
        for pid, _ in session_members(proc.pid):  # whatever this test started, stop it
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()


GLOBALS_SCRIPT = """
import json, multiprocessing, sys, threading, warnings
import PIL.Image, PIL.ImageFile
import alembic, faiss, sqlalchemy, torch  # their own import-time warning filters are theirs
from zsindex._compat import import_open_clip
import_open_clip()  # open_clip and torchvision, likewise
def state():
    return [PIL.Image.MAX_IMAGE_PIXELS, PIL.ImageFile.LOAD_TRUNCATED_IMAGES, repr(warnings.filters)]
before = state()
import zsindex
lib = zsindex.open(sys.argv[1], model="demo", device="cpu")
report = lib.ingest([sys.argv[2]], workers=2)
lib.search("a red circle", k=2)
lib.classify([sys.argv[3]], "red circle,blue square")
print(json.dumps({"same": state() == before, "before": before, "after": state(), "added": report.added,
                  "children": len(multiprocessing.active_children()),
                  "threads": [t.name for t in threading.enumerate() if t is not threading.main_thread()]}))
"""


def test_library_leaves_the_importers_process_as_it_was(tmp_path):
    draw_many(tmp_path / "p", 8)
    done = subprocess.run([sys.executable, "-c", GLOBALS_SCRIPT, str(tmp_path / "index"), str(tmp_path / "p"),
                           str(next((tmp_path / "p").iterdir()))], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["added"] == 8
    assert out["same"], (out["before"], out["after"])  # Pillow's bomb guard and the warning filters untouched
    assert out["children"] == 0
    assert not [t for t in out["threads"] if t.startswith("zsindex")]  # decode threads end with the ingest
