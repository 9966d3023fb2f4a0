"""A non-editable install works: build the wheel, install it into a fresh venv, run --help and demo."""

import os
import subprocess
import sys
import zipfile

import pytest

from .conftest import REPO


@pytest.mark.slow
def test_wheel_installs_and_runs_demo(tmp_path):
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist),
                            str(REPO)], check=True, capture_output=True, text=True, timeout=300)
    log = built.stdout + built.stderr
    assert "Deprecat" not in log and "WARNING" not in log, log  # `make demo` stays quiet: no setuptools warnings
    [wheel] = dist.glob("zsindex-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "zsindex/models/shapes-tiny/open_clip_model.safetensors" in names
    assert "zsindex/migrations/env.py" in names and "zsindex/migrations/versions/0001_initial_schema.py" in names
    venv = tmp_path / "venv"
    # The fresh venv must not see the checkout: with PYTHONPATH pointing at it (as when testing a worktree),
    # pip takes zsindex for installed already (the build leaves zsindex.egg-info there) and skips the wheel.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120, env=env)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    # As the Makefile does: the pip bundled with Python 3.11.7 (23.2) installs a wheel with an SPDX
    # License-Expression but silently leaves out its console script.
    for args in (["--upgrade", "pip"], ["torch==2.13.0", "torchvision==0.28.0"], [str(wheel)]):
        subprocess.run([*pip, *args], check=True, timeout=900, env=env, cwd=tmp_path)
    exe = str(venv / "bin" / "zsindex")
    help_out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert help_out.returncode == 0 and "classify" in help_out.stdout
    demo = subprocess.run([exe, "demo", "--dir", str(tmp_path / "demo"), "--json"], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env=env)
    assert demo.returncode == 0, demo.stderr
    assert len(demo.stdout.splitlines()) == 8
    assert (tmp_path / "demo" / "index" / "index.sqlite").is_file()
