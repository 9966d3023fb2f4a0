"""Ingest on a real two-node Ray cluster started on this machine (issue 15, Ray part).

- The cluster's result equals a local ingest of the same real files (rows,
  report, skipped files; vectors within 1e-5).
- Killing the driver mid-run and running again finishes the job: every file
  indexed once, no duplicate rows or vectors, FAISS holding every vector.
- A node that cannot read the files (a folder hidden from the second node by
  a private mount) stops the run with a message naming the node and the file:
  in the check before the first batch, and (that check left out) in the decode
  task that meets such a file.
- With the store in PostgreSQL the cluster's result equals a local ingest too.
- An address where nothing listens is refused at once.
- Without Ray, --ray says how to install it.
Every Ray process started here is stopped at the end, whatever happened (tests/ray_cluster.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from zsindex.cli import cli
from zsindex.errors import ClusterError
from zsindex.ingest_ray import RaySource
from zsindex.library import Library

from . import postgres_server, ray_cluster
from .conftest import FIXTURES, SHARED_DATA
from .test_process_model import draw_many

needs_ray = pytest.mark.skipif(not ray_cluster.available(), reason="Ray is not installed (pip install 'zsindex[ray]')")


def zsindex(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**ray_cluster.node_env(), "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-m", "zsindex", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def rows(index: Path) -> dict[str, tuple]:
    """What the store holds per path: the image row's columns a user sees, and its vector."""
    con = sqlite3.connect(index / "index.sqlite")
    try:
        out = {}
        for path, status, sha, w, h, fmt, err, vec in con.execute(
                "SELECT i.path, i.status, i.sha256, i.width, i.height, i.format, i.error, v.vector "
                "FROM images i LEFT JOIN vectors v ON v.sha256 = i.sha256"):
            out[path] = ((status, sha, w, h, fmt, err), None if vec is None else np.frombuffer(vec, np.float32))
        return out
    finally:
        con.close()


def same_store(a: Path, b: Path) -> None:
    ra, rb = rows(a), rows(b)
    assert sorted(ra) == sorted(rb)
    for path, (cols, vec) in ra.items():
        assert rb[path][0] == cols, path
        if vec is not None:
            assert np.abs(rb[path][1] - vec).max() <= 1e-5, path


def report_of(done: subprocess.CompletedProcess) -> dict:
    out = json.loads(done.stdout)
    return {k: v for k, v in out.items() if k not in ("run_id", "seconds")}


@pytest.fixture(scope="module")
def cluster():
    if not ray_cluster.available():
        pytest.skip("Ray is not installed (pip install 'zsindex[ray]')")
    with ray_cluster.local_cluster() as address:
        yield address


@needs_ray
@pytest.mark.slow
def test_cluster_ingest_equals_local_ingest(cluster, tmp_path):
    if not SHARED_DATA.is_dir():
        pytest.skip("shared/data is not beside this checkout")
    roots = [str(FIXTURES), str(SHARED_DATA / "photos")]
    common = ["--model", "demo", "--batch-size", "8", "--json", "-q"]
    local = zsindex("ingest", *roots, "--index", str(tmp_path / "local"), *common)
    remote = zsindex("ingest", *roots, "--index", str(tmp_path / "ray"), "--ray", cluster, *common)
    assert local.returncode == 3, local.stderr  # the fixtures' broken files are skipped, the rest indexed
    assert remote.returncode == local.returncode, remote.stderr
    assert report_of(remote) == report_of(local)
    assert report_of(remote)["added"] >= 30
    same_store(tmp_path / "local", tmp_path / "ray")
    assert zsindex("errors", "--index", str(tmp_path / "ray")).stdout == \
        zsindex("errors", "--index", str(tmp_path / "local")).stdout
    again = zsindex("ingest", *roots, "--index", str(tmp_path / "ray"), "--ray", cluster, *common)
    assert report_of(again)["unchanged"] == report_of(local)["added"] + report_of(local)["skipped"]
    assert report_of(again)["added"] == 0


@needs_ray
@pytest.mark.slow
@pytest.mark.skipif(postgres_server.binaries() is None, reason="PostgreSQL is not installed")
def test_cluster_ingest_into_postgresql_equals_local_ingest(cluster, tmp_path):
    from sqlalchemy import select

    from zsindex import schema as s

    with postgres_server.running_server() as server:
        url = postgres_server.new_database(server)
        common = ["--model", "demo", "--batch-size", "4", "--json", "-q"]
        remote = zsindex("--db", url, "ingest", str(FIXTURES), "--index", str(tmp_path / "pg"), "--ray", cluster,
                         *common)
        local = zsindex("ingest", str(FIXTURES), "--index", str(tmp_path / "local"), *common)
        assert remote.returncode == local.returncode == 3, remote.stderr
        assert report_of(remote) == report_of(local)
        # a folder of its own for this reader's vector cache: a second open of the ingest's folder is refused
        # (owned.py sees its vectors.faiss and write.lock beside no index.sqlite; an issue of the PostgreSQL part)
        lib = Library(tmp_path / "reader", db=url)
        try:
            with lib.store.session() as session:
                found = session.execute(
                    select(s.Image.path, s.Image.status, s.Image.sha256, s.Image.width, s.Image.height,
                           s.Image.format, s.Image.error, s.Vector.vector)
                    .outerjoin(s.Vector, s.Vector.sha256 == s.Image.sha256)).all()
        finally:
            lib.close()
    expected = rows(tmp_path / "local")
    assert sorted(r[0] for r in found) == sorted(expected)
    for path, *cols, vec in found:
        assert tuple(cols) == expected[path][0], path
        if vec is not None:
            assert np.abs(np.frombuffer(vec, np.float32) - expected[path][1]).max() <= 1e-5, path


def _wait_for_commits(index: Path, proc: subprocess.Popen, at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            # read-only: a plain connect would make an empty index.sqlite before the ingest does (damage)
            con = sqlite3.connect((index / "index.sqlite").as_uri() + "?mode=ro", uri=True, timeout=1)
            try:
                n = con.execute("SELECT count(*) FROM images").fetchone()[0]
            finally:
                con.close()
            if n >= at_least:
                return int(n)
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    return 0


@needs_ray
@pytest.mark.slow
def test_killed_driver_then_rerun_indexes_every_file_once(cluster, tmp_path):
    n = 240
    draw_many(tmp_path / "p", n, size=96)
    index = tmp_path / "index"
    cmd = [sys.executable, "-m", "zsindex", "ingest", str(tmp_path / "p"), "--index", str(index), "--model", "demo",
           "--batch-size", "4", "--ray", cluster, "-q", "--json"]
    proc = subprocess.Popen(cmd, env=ray_cluster.node_env(), start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        committed = _wait_for_commits(index, proc, 8, timeout=300)
        assert proc.poll() is None and committed, "the ingest ended before it could be killed mid-run"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    before = rows(index)
    assert 0 < len(before) < n
    rerun = zsindex("ingest", str(tmp_path / "p"), "--index", str(index), "--model", "demo", "--batch-size", "4",
                    "--ray", cluster, "-q", "--json")
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["unchanged"] == len(before) and report["added"] == n - len(before)
    con = sqlite3.connect(index / "index.sqlite")
    try:
        assert con.execute("SELECT count(*), count(DISTINCT path) FROM images WHERE status = 'indexed'").fetchone() \
            == (n, n)
        assert con.execute("SELECT count(*), count(DISTINCT sha256) FROM vectors").fetchone()[0] == \
            con.execute("SELECT count(DISTINCT sha256) FROM images").fetchone()[0]
        statuses = [s for (s,) in con.execute("SELECT status FROM ingest_runs ORDER BY id")]
        assert statuses == ["interrupted", "finished"]
    finally:
        con.close()
    lib = Library(index, db=False)
    try:
        assert lib.vectors().ntotal == n  # the FAISS cache, stale after the kill, rebuilt from SQL
    finally:
        lib.close()
    local = zsindex("ingest", str(tmp_path / "p"), "--index", str(tmp_path / "local"), "--model", "demo", "-q")
    assert local.returncode == 0, local.stderr
    same_store(tmp_path / "local", index)


@needs_ray
@pytest.mark.slow
@pytest.mark.skipif(not ray_cluster.can_hide(), reason="needs unshare (a private mount namespace) for one node")
def test_a_node_that_cannot_read_the_files_stops_the_run_naming_it(tmp_path, monkeypatch):
    # The files sit in a folder of /tmp that the second node sees covered by an empty tmpfs.
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"zsray-hidden-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    try:
        draw_many(folder, 40, size=64)
        with ray_cluster.local_cluster(hide=folder) as address:
            done = zsindex("ingest", str(folder), "--index", str(tmp_path / "index"), "--model", "demo",
                           "--ray", address, "-q")
            # Past the sample every node opens first: a decode task on that node meets the file itself.
            monkeypatch.setattr(RaySource, "_check_nodes", lambda self, ray, sample: None)
            lib = Library(tmp_path / "in-run", model="demo", db=False)
            try:
                with pytest.raises(ClusterError, match="Ray node .* shared file system") as caught:
                    lib.ingest([folder], batch_size=2, ray_address=address)
            finally:
                lib.close()
            assert str(folder) in str(caught.value)
        assert done.returncode == 1, done.stderr
        message = done.stderr.strip().splitlines()[-1]
        assert "Ray node" in message and str(folder) in message and "shared file system" in message, message
        assert "Traceback" not in done.stderr
        con = sqlite3.connect(tmp_path / "index" / "index.sqlite")
        try:
            assert con.execute("SELECT count(*) FROM images").fetchone()[0] == 0  # refused before the first batch
            assert con.execute("SELECT status FROM ingest_runs").fetchall() == [("failed",)]
        finally:
            con.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_ray_missing_names_the_extra(tmp_path, monkeypatch):
    draw_many(tmp_path / "p", 2)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails, as where it is not installed
    result = CliRunner().invoke(cli, ["ingest", str(tmp_path / "p"), "--index", str(tmp_path / "i"),
                                      "--model", "demo", "--ray"])
    assert result.exit_code == 1, result.output
    assert "pip install 'zsindex[ray]'" in result.output and "--ray" in result.output



@needs_ray
def test_an_address_nothing_listens_on_is_refused_at_once(tmp_path):
    draw_many(tmp_path / "p", 2)
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    done = zsindex("ingest", str(tmp_path / "p"), "--index", str(tmp_path / "i"), "--model", "demo",
                   "--ray", f"127.0.0.1:{port}", timeout=120)
    assert done.returncode == 1, done.stderr
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port}" in done.stderr and "ray start" in done.stderr
    assert time.monotonic() - started < 60
