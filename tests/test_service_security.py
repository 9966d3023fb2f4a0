"""Safe by default: tokens, read-only mode, Host check, upload limits, traversal, headers, CORS."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from fastapi.testclient import TestClient

import zsindex
from zsindex.service import create_app
from zsindex.service.security import CSP

from .conftest import REPO
from .service_world import build_index, running_server

TOKEN = "correct horse battery staple"


@pytest.fixture(scope="module")
def built(tmp_path_factory, demo_embedder):
    return build_index(tmp_path_factory.mktemp("sec"), demo_embedder, copies=1)


def make_client(built, embedder, **kwargs):
    app = create_app(zsindex.open(built[0], embedder=embedder), roots=[built[1]], ingest_workers=0, **kwargs)
    return TestClient(app, base_url="http://127.0.0.1", follow_redirects=False)


@pytest.fixture(scope="module")
def open_client(built, demo_embedder):
    with make_client(built, demo_embedder) as c:
        yield c


@pytest.fixture(scope="module")
def token_client(built, demo_embedder):
    with make_client(built, demo_embedder, token=TOKEN) as c:
        yield c


def error(r, status):
    assert r.status_code == status, r.text
    assert r.json()["error"]["status"] == status
    return r.json()["error"]["message"]


MUTATIONS = [
    ("put", "/api/labels/x", {"json": {"labels": ["a", "b"]}}),
    ("delete", "/api/labels/x", {}),
    ("post", "/api/labels/x/tag", {"json": {}}),
    ("delete", "/api/labels/x/tags", {}),
    ("post", "/api/ingest", {"json": {}}),
]


# -- tokens ----------------------------------------------------------------------------------------
def test_token_required_everywhere(token_client):
    for path in ("/api/status", "/api/search?q=x", "/api/images/1", "/api/images/1/thumbnail", "/api/images/1/file",
                 "/api/facets", "/api/labels", "/api/jobs", "/openapi.json"):
        r = token_client.get(path)
        assert "token" in error(r, 401) and r.headers["www-authenticate"].startswith("Bearer")
    for method, path, kwargs in MUTATIONS:
        error(getattr(token_client, method)(path, **kwargs), 401)
    for page in ("/", "/labels", "/status", "/image/1", "/docs"):
        r = token_client.get(page)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    assert token_client.get("/?q=red").headers["location"] == "/login?next=%2F%3Fq%3Dred"
    assert token_client.get("/login").status_code == 200
    assert token_client.get("/static/app.css").status_code in (200, 404)  # assets hold no data


def test_bearer_and_wrong_tokens(token_client):
    ok = token_client.get("/api/status", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    for wrong in ("Bearer nope", f"Bearer {TOKEN}x", f"Basic {TOKEN}", "Bearer ", TOKEN):
        error(token_client.get("/api/status", headers={"Authorization": wrong}), 401)
    error(token_client.get("/api/status", headers={"Cookie": "zsindex_token=nope"}), 401)


def test_login_sets_an_httponly_cookie(built, demo_embedder):
    with make_client(built, demo_embedder, token=TOKEN) as c:
        bad = c.post("/login", data={"token": "nope"})
        assert bad.status_code == 303 and bad.headers["location"] == "/login?error=1"
        assert "set-cookie" not in bad.headers
        good = c.post("/login", data={"token": TOKEN, "next": "/labels"})
        assert good.status_code == 303 and good.headers["location"] == "/labels"
        cookie = good.headers["set-cookie"].lower()
        assert "zsindex_token=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
        assert c.get("/api/status").status_code == 200 and c.get("/").status_code == 200
        for evil in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
            assert c.post("/login", data={"token": TOKEN, "next": evil}).headers["location"] == "/"


def test_host_check_without_token(open_client):
    assert open_client.get("/api/status").status_code == 200
    assert open_client.get("/api/status", headers={"Host": "localhost:8765"}).status_code == 200
    assert open_client.get("/api/status", headers={"Host": "[::1]:8765"}).status_code == 200
    assert "loopback" in error(open_client.get("/api/status", headers={"Host": "evil.example"}), 400)


def test_cli_refuses_a_public_address_without_a_token(built):
    run = subprocess.run([sys.executable, "-m", "zsindex", "serve", "--index", str(built[0]), "--host", "0.0.0.0"],
                         capture_output=True, text=True, timeout=120, cwd=REPO,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(built[0])})
    assert run.returncode == 2 and "--token" in run.stderr and "--no-auth-i-know" in run.stderr


# -- read-only -------------------------------------------------------------------------------------
def test_read_only_refuses_every_change(built, demo_embedder):
    with make_client(built, demo_embedder, read_only=True) as c:
        for method, path, kwargs in MUTATIONS:
            assert "read-only" in error(getattr(c, method)(path, **kwargs), 403)
        assert c.get("/api/search", params={"q": "red circle"}).status_code == 200
        assert c.get("/api/status").json()["read_only"] is True
        png = next(built[1].glob("*.png")).read_bytes()
        assert c.post("/api/search", files={"file": ("a.png", png)}).status_code == 200  # reading by upload is fine
    # every route that changes something is covered above: nothing else takes PUT, DELETE or POST but reads
    app = create_app(zsindex.open(built[0], embedder=demo_embedder))
    changing = {(m.lower(), p) for p, ops in app.openapi()["paths"].items() for m in ops if m != "get"}
    reads = {("post", "/api/search"), ("post", "/api/classify")}
    covered = {(m, p.replace("{name}", "x")) for m, p in changing - reads}
    assert covered == {(m, p) for m, p, _ in MUTATIONS}


# -- uploads ---------------------------------------------------------------------------------------
def test_upload_limits(built, demo_embedder):
    png = next(built[1].glob("*.png")).read_bytes()  # 256x256: 0.066 megapixels
    with make_client(built, demo_embedder, max_upload_bytes=len(png) + 1000, max_upload_megapixels=0.05) as c:
        big = png + b"\0" * 5000
        assert "limit" in error(c.post("/api/search", files={"file": ("a.png", big)}), 413)
        message = error(c.post("/api/search", files={"file": ("a.png", png)}), 422)
        assert "MP" in message and "--max-upload-megapixels" in message and "max_megapixels=" not in message
        message = error(c.post("/api/classify", data={"labels": "a,b"}, files={"file": ("a.png", png)}), 422)
        assert "MP" in message and "--max-upload-megapixels" in message and "max_megapixels=" not in message

        def chunks():  # no Content-Length: the guard counts the bytes as they arrive
            for _ in range(100):
                yield b"x" * 1000

        r = c.post("/api/search", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=zz"})
        error(r, 413)


def test_streamed_body_is_cut_off_on_a_real_server(built, demo_embedder):
    app = create_app(zsindex.open(built[0], embedder=demo_embedder), max_upload_bytes=50_000)
    sent = []

    def chunks():  # a well-formed multipart start, then a file part of 2 MB; the server stops after 50 kB
        yield (b'--zz\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
               b"Content-Type: image/png\r\n\r\n")
        for _ in range(2000):
            sent.append(1)
            yield b"y" * 1000

    with running_server(app) as base:
        try:
            r = httpx.post(base + "/api/search", content=chunks(),
                           headers={"Content-Type": "multipart/form-data; boundary=zz"}, timeout=30)
            assert r.status_code == 413 and r.json()["error"]["status"] == 413
        except httpx.HTTPError:  # the server may close the connection while the client is still sending
            assert len(sent) < 2000  # ... which it did long before the end of the body
        assert httpx.get(base + "/api/status").status_code == 200


# -- traversal -------------------------------------------------------------------------------------
def test_traversal_gets_4xx_and_reveals_nothing(open_client, built):
    attempts = ["/static/../../zsindex/library.py", "/static/..%2f..%2fzsindex%2flibrary.py",
                "/static/%2e%2e/%2e%2e/pyproject.toml", "/api/images/..%2f..%2fetc%2fpasswd/file",
                "/api/images/1%2f..%2f2/file", "/image/..%2f..%2fetc%2fpasswd", "/api/labels/..%2f..%2fetc/images",
                "/api/images/1/thumbnail?size=../../etc/passwd", "/api/jobs/..%2f..%2fetc%2fpasswd"]
    for url in attempts:
        r = open_client.get(url)
        assert 400 <= r.status_code < 500, (url, r.status_code)
        assert "root:" not in r.text and str(built[0]) not in r.text and "zsindex" not in r.text.lower().replace(
            "zsindex_token", ""), (url, r.text[:200])
    r = open_client.get("/api/search", params={"q": "x", "path": "../../../etc/*"})
    assert r.status_code == 200 and r.json()["results"] == []  # a glob over indexed paths, never a file access


# -- headers and CORS ------------------------------------------------------------------------------
def test_security_headers_on_every_kind_of_response(open_client, token_client):
    responses = [open_client.get("/api/status"), open_client.get("/"), open_client.get("/docs"),
                 open_client.get("/api/nothing"), open_client.get("/api/search"), token_client.get("/api/status"),
                 token_client.get("/"), open_client.get("/openapi.json")]
    for r in responses:
        assert r.headers["content-security-policy"] == CSP
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] and r.headers["x-frame-options"] == "DENY"
    assert "'unsafe-inline'" not in CSP and "default-src 'self'" in CSP and "frame-ancestors 'none'" in CSP
    assert "<script" not in open_client.get("/docs").text


def test_no_cors_unless_asked(built, demo_embedder, open_client):
    origin = {"Origin": "https://photos.example"}
    r = open_client.get("/api/status", headers=origin)
    assert "access-control-allow-origin" not in r.headers
    pre = open_client.options("/api/search", headers={**origin, "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in pre.headers
    with make_client(built, demo_embedder, cors_origins=["https://photos.example"], token=TOKEN) as c:
        pre = c.options("/api/search", headers={**origin, "Access-Control-Request-Method": "GET",
                                                "Access-Control-Request-Headers": "authorization"})
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "https://photos.example"
        r = c.get("/api/status", headers={**origin, "Authorization": f"Bearer {TOKEN}"})
        assert r.headers["access-control-allow-origin"] == "https://photos.example"
        other = c.get("/api/status", headers={"Origin": "https://evil.example", "Authorization": f"Bearer {TOKEN}"})
        assert "access-control-allow-origin" not in other.headers


def test_real_server_with_token(built, demo_embedder):
    app = create_app(zsindex.open(built[0], embedder=demo_embedder), token=TOKEN)
    with running_server(app) as base:
        assert httpx.get(base + "/api/status").status_code == 401
        r = httpx.get(base + "/api/search", params={"q": "a red circle", "k": 1},
                      headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200 and "red-circle" in r.json()["results"][0]["path"]
