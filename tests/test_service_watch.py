"""`zsindex serve --watch`: new files are ingested after the changes settle, then auto-tagged;
a burst of files costs a bounded number of ingest runs; the real `zsindex serve` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image

import zsindex
from zsindex import shapes
from zsindex.cli import cli
from zsindex.service import create_app

from .conftest import REPO
from .service_world import build_index, free_port


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def indexed(client) -> int:
    return int(client.get("/api/status").json()["images"].get("indexed", 0))


def idle(client) -> bool:
    return not client.get("/api/status").json()["jobs"]


@pytest.fixture
def watched(tmp_path, demo_embedder):
    index, pics = build_index(tmp_path, demo_embedder, copies=1)
    lib = zsindex.open(index, embedder=demo_embedder)
    lib.labels_put("shapes", ["circle", "square", "triangle"], auto=True)
    lib.tag("shapes", mode="multi")
    app = create_app(lib, roots=[pics], watch=True, watch_quiet_seconds=1.0, ingest_workers=0)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        time.sleep(0.5)  # the watcher has started
        yield client, pics, app.state.service


def test_new_files_are_ingested_and_auto_tagged(watched):
    client, pics, svc = watched
    before = indexed(client)
    scenes = [[shapes.Thing("red", "circle")]] * 3
    shapes.save_world(pics / "new", scenes, seed=42)
    wait_until(lambda: indexed(client) == before + 3 and idle(client), 90, "the watched files to be indexed")
    jobs = client.get("/api/jobs").json()["jobs"]
    ingest = [j for j in jobs if j["kind"] == "ingest"]
    assert ingest and ingest[0]["params"]["reason"] == "watch" and ingest[0]["result"]["added"] == 3
    assert ingest[0]["result"]["auto_tagged"]["shapes"]["mode"] == "multi"
    hits = client.get("/api/search", params={"q": "a red circle", "path": "*/new/*", "k": 3}).json()["results"]
    assert len(hits) == 3
    tags = [client.get(f"/api/images/{h['id']}").json()["tags"] for h in hits]
    assert all(any(t["set"] == "shapes" and t["label"] == "circle" for t in image_tags) for image_tags in tags), tags
    (pics / "new" / "000-red-circle.png").unlink()
    wait_until(lambda: indexed(client) == before + 2 and idle(client), 90, "the deleted file to leave the index")


@pytest.mark.slow
def test_a_burst_of_files_costs_few_ingests(watched):
    client, pics, svc = watched
    before = indexed(client)
    runs_before = svc.watcher.ingests_started
    rng = np.random.default_rng(0)
    burst = pics / "burst"
    burst.mkdir()
    for i in range(500):  # distinct tiny images, written as fast as a copy would
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(burst / f"{i:04d}.png")
    wait_until(lambda: indexed(client) == before + 500 and idle(client), 240, "the burst to be indexed")
    time.sleep(2.5)  # longer than the quiet period: no further run is pending
    runs = svc.watcher.ingests_started - runs_before
    print(f"burst of 500 files: {runs} ingest run(s), {svc.watcher.changes_seen} changes seen")
    assert 1 <= runs <= 3, runs
    assert idle(client) and indexed(client) == before + 500


def test_labels_add_auto_from_the_cli(tmp_path):
    index = tmp_path / "index"
    result = CliRunner().invoke(cli, ["labels", "add", "pets", "--labels", "cat,dog", "--auto", "--index", str(index)])
    assert result.exit_code == 0, result.output
    assert zsindex.open(index).label_set("pets")["auto"] is True
    result = CliRunner().invoke(cli, ["labels", "edit", "pets", "--no-auto", "--index", str(index)])
    assert result.exit_code == 0, result.output
    assert zsindex.open(index).auto_label_sets() == []


def test_zsindex_serve_process(tmp_path, demo_embedder):
    index, pics = build_index(tmp_path, demo_embedder, copies=1)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "ZSINDEX_TOKEN": ""}
    proc = subprocess.Popen([sys.executable, "-m", "zsindex", "serve", "--index", str(index), "--port", str(port),
                             "--read-only", "--log-level", "warning"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        def up():
            try:
                return httpx.get(base + "/api/status", timeout=2).status_code == 200
            except httpx.HTTPError:
                return proc.poll() is not None  # stop waiting if it died

        wait_until(up, 120, "zsindex serve to answer")
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        r = httpx.get(base + "/api/search", params={"q": "a red circle", "k": 1}, timeout=120)
        assert r.status_code == 200 and "red-circle" in r.json()["results"][0]["path"]
        assert "server" not in r.headers  # no software banner
        assert httpx.post(base + "/api/ingest", json={}).status_code == 403
        assert httpx.get(base + "/openapi.json").json()["info"]["title"] == "zsindex"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0  # Ctrl-C is a server's normal end: graceful shutdown, exit 0 (README)
