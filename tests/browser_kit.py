"""Fixtures and helpers of the browser tests (tests/test_browser.py).

A real `zsindex serve` subprocess with a token on a free 127.0.0.1 port over an index of
drawn shapes made with the demo model, and Debian's headless Chromium driven by selenium
through /usr/bin/chromedriver (named explicitly, so selenium never downloads a driver).
Importing this module skips the importing test module where any of them is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from zsindex import shapes

from .conftest import REPO

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = REPO / "test-artifacts" / "browser"
TOKEN = "browser-test-token-8f3a"
CAMERA_FILE, CAMERA = "camera-green-square.jpg", "Zeiss Ikon 35"
ODD_NAME = "<b>odd <img src=x> & \"quoted\" 'name'.png"  # no "/": that would be a folder
WAIT_S = 60  # generous: a wait ends as soon as its condition holds, and CI machines can be busy

if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
    pytest.skip("needs /usr/bin/chromium and /usr/bin/chromedriver (Debian chromium, chromium-driver)",
                allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402, F401 - Select: for the tests

# The tests take By, Keys and Select from here, so that no selenium import runs before the skips above.


# -- the library, the servers and the browser -------------------------------------------------------
def make_library(root: Path, embedder: object) -> dict[str, Path]:
    """Two drawn images of every seen colour+shape pair (one in a sub-folder) and one with a
    name full of HTML, ingested with the demo model."""
    import zsindex

    photos = root / "photos"
    scenes = [[shapes.Thing(c, s)] for c, s in shapes.seen_pairs()] * 2
    paths = shapes.save_world(photos, scenes, size=192, seed=21)
    (photos / "holiday 2024").mkdir()
    paths[1].rename(photos / "holiday 2024" / paths[1].name)
    odd = shapes.save_world(root / "odd", [[shapes.Thing("purple", "star")]], size=192, seed=5)[0]
    odd.rename(photos / ODD_NAME)
    _camera_jpeg(root / "extra", photos / "holiday 2024" / CAMERA_FILE)
    lib = zsindex.open(root / "index", embedder=embedder)
    report = lib.ingest([photos], workers=0)
    lib.close()
    assert report.added == len(scenes) + 2
    return {"root": root, "photos": photos, "index": root / "index"}


def _camera_jpeg(scratch: Path, path: Path) -> None:
    """A green square as a JPEG with a camera and a date taken in its EXIF."""
    from PIL import Image

    drawn = shapes.save_world(scratch, [[shapes.Thing("green", "square")]], size=192, seed=9)[0]
    exif = Image.Exif()
    exif[271], exif[272], exif[306] = "Zeiss", "Ikon 35", "2019:05:04 10:00:00"
    Image.open(drawn).convert("RGB").save(path, "JPEG", quality=90, exif=exif)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(index: Path, photos: Path, log: Path, *extra: str) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("ZSINDEX_TOKEN", None)
    cmd = [sys.executable, "-m", "zsindex", "serve", "--index", str(index), "--host", "127.0.0.1",
           "--port", str(port), "--root", str(photos), "--log-level", "warning", *extra]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"zsindex serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(base + "/static/app.css", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"zsindex serve did not answer:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.25)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@contextlib.contextmanager
def browser_session() -> Iterator[webdriver.Chrome]:
    """Headless Chromium at laptop size, with its console log kept for the tests to read.

    Its profile and its temporary files live in a folder of this session, removed after the browser quits:
    Chromium otherwise leaves an org.chromium.Chromium.* folder in /tmp whenever it is stopped hard.
    """
    import shutil
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="zsindex-browser-"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--hide-scrollbars", "--no-first-run", "--disable-extensions",
                f"--user-data-dir={home / 'profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    env = {**os.environ, "TMPDIR": str(home)}
    try:
        try:
            driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER), env=env), options=options)
        except WebDriverException as e:
            pytest.skip(f"chromium does not start here: {e.msg}")
        try:
            driver.set_page_load_timeout(WAIT_S)
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def log_in_by_cookie(driver: webdriver.Chrome, base: str) -> None:
    driver.get(base + "/login")  # a page of the server's origin that is open without a token
    driver.delete_all_cookies()
    driver.add_cookie({"name": "zsindex_token", "value": TOKEN, "path": "/", "httpOnly": True})


def console_errors(driver: webdriver.Chrome) -> list[str]:
    """Script errors, CSP violations and failed requests logged since the last call (401s aside)."""
    return [e["message"] for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and "status of 401" not in e["message"]]


# -- helpers ---------------------------------------------------------------------------------------
def wait(driver, condition, timeout: float = WAIT_S):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(d))


def visit(driver, url: str) -> None:
    """Load a page of the app and wait until its script has wired the controls and drawn the page
    (app.js marks <html data-ready>): typing or picking a file any sooner can be lost."""
    driver.get(url)
    wait(driver, lambda d: d.execute_script("return document.documentElement.dataset.ready === 'true'"))


def shot(driver, name: str) -> Path:
    time.sleep(0.3)  # let thumbnails finish painting
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def tiles(driver, grid: str = "results") -> list[dict[str, str]]:
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' .tile')].map(t => ({id: t.dataset.id,"
        " path: t.dataset.path, name: t.querySelector('.tile-name').textContent,"
        " score: (t.querySelector('.tile-score') || {}).textContent || ''}))", f"#{grid}")


def loaded_thumbnails(driver, grid: str) -> int:
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' .tile img')]"
        ".filter(i => i.complete && i.naturalWidth > 0).length", f"#{grid}")


def api(base: str, path: str, token: str | None = TOKEN):
    request = urllib.request.Request(base + path)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def no_horizontal_overflow(driver) -> bool:
    return driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")


def search_for(driver, text: str) -> list[dict[str, str]]:
    box = driver.find_element(By.ID, "q")
    box.clear()
    box.send_keys(text, Keys.ENTER)
    wait(driver, lambda d: parse_qs(urlparse(d.current_url).query).get("q") == [text] and tiles(d))
    wait(driver, lambda d: not d.execute_script("return document.body.classList.contains('busy')"))
    return tiles(driver)


def wait_for_job(base: str, job: dict, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while job["state"] not in ("done", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
        job = api(base, f"/api/jobs/{job['id']}")
    return job


def call(base: str, method: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def tag_colours(server: str) -> dict[str, int]:
    """The "colours" set, tagged in multi mode through the API: images per label."""
    call(server, "PUT", "/api/labels/colours",
         {"labels": ["red", "green", "blue", "yellow", "purple", "orange"], "templates": None, "auto": False})
    job = wait_for_job(server, call(server, "POST", "/api/labels/colours/tag", {"mode": "multi", "threshold": None}))
    assert job["state"] == "done", job
    counts = {c["label"]: c["count"] for c in api(server, "/api/labels/colours")["counts"]}
    assert counts["red"] > 0
    return counts
