"""Pages: the web app's static HTML files, the login form's POST, and a self-contained API page.

The HTML, JS and CSS live in ``zsindex/service/static`` and ship in the package.
A page is its own ``page-NAME.html`` (its ``<main>``) inside ``layout.html``
(head, scripts, and ``topbar.html`` on every page but the login form), so the
parts all pages share are written once. A page whose file is missing gets a
small placeholder, so the API works alone.
The API page is rendered here from the OpenAPI schema, with no script and
nothing from another host (FastAPI's own /docs loads its assets from a CDN).
"""

from __future__ import annotations

import html
from pathlib import Path as FsPath
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from .common import service
from .security import COOKIE, token_matches

STATIC = FsPath(__file__).resolve().parent / "static"
PAGES = {"search": "Search", "image": "Image", "labels": "Labels", "status": "Status", "login": "Log in"}
router = APIRouter(include_in_schema=False)


def page_html(name: str) -> str | None:
    """The whole HTML of a page, or None when its files are not installed."""
    try:
        layout, main = (STATIC / "layout.html").read_text("utf-8"), (STATIC / f"page-{name}.html").read_text("utf-8")
        topbar = "" if name == "login" else (STATIC / "topbar.html").read_text("utf-8")
    except OSError:
        return None
    parts = {"title": PAGES[name], "page": name, "body_attributes": ' class="login-body"' if name == "login" else "",
             "topbar": topbar, "main": main}
    for key, value in parts.items():
        layout = layout.replace("{{" + key + "}}", value)
    return layout


def _page(name: str) -> Response:
    body = page_html(name)
    if body is not None:
        return HTMLResponse(body, headers={"Cache-Control": "no-cache"})
    body = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>zsindex</title>"
            f"<link rel=stylesheet href=/static/app.css></head><body><h1>zsindex</h1>"
            f"<p>The {html.escape(name)} page is not installed; the API is at <a href=/docs>/docs</a>.</p>"
            f"</body></html>")
    return HTMLResponse(body)


@router.get("/")
def page_search() -> Response:
    return _page("search")


@router.get("/image/{image_id}")
def page_image(image_id: str) -> Response:
    """Any id: the page asks the API, and says so when there is no such image (a page, never raw JSON)."""
    return _page("image")


@router.get("/favicon.ico")
def favicon() -> Response:
    """Browsers ask for it whatever the page says: the same icon the pages name."""
    return RedirectResponse("/static/favicon.svg", status_code=301)


@router.get("/labels")
def page_labels() -> Response:
    return _page("labels")


@router.get("/status")
def page_status() -> Response:
    return _page("status")


@router.get("/login")
def page_login() -> Response:
    return _page("login")


def _safe_next(target: str | None) -> str:
    """Only a path on this server: never another host (an open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target


@router.post("/login")
def login(request: Request, token: Annotated[str, Form(max_length=1000)] = "",
          next: Annotated[str | None, Form(max_length=2000)] = None) -> Response:  # noqa: A002 - the form's name
    expected = service(request).settings.token
    if expected is None:
        return RedirectResponse(_safe_next(next), status_code=303)
    if not token_matches(token, expected):
        return RedirectResponse("/login?error=1", status_code=303)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                        path="/")
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def _param_rows(op: dict[str, Any]) -> str:
    rows = []
    for p in op.get("parameters", []):
        schema = p.get("schema", {})
        kind = schema.get("type") or "/".join(x.get("type", "") for x in schema.get("anyOf", []) if x.get("type"))
        rows.append(f"<li><code>{html.escape(p['name'])}</code> ({html.escape(p.get('in', ''))}, "
                    f"{html.escape(kind or 'any')}){' required' if p.get('required') else ''}</li>")
    body = op.get("requestBody", {}).get("content", {})
    for media in body:
        rows.append(f"<li>body: <code>{html.escape(media)}</code></li>")
    return f"<ul>{''.join(rows)}</ul>" if rows else ""


def api_page(schema: dict[str, Any]) -> str:
    items = []
    for path, ops in schema.get("paths", {}).items():
        for method, op in ops.items():
            items.append(f"<section><h2><code>{method.upper()} {html.escape(path)}</code></h2>"
                         f"<p>{html.escape(op.get('summary', ''))}</p>{_param_rows(op)}</section>")
    return ("<!doctype html><html lang=en><head><meta charset=utf-8><title>zsindex API</title>"
            "<link rel=stylesheet href=/static/app.css></head><body><main>"
            "<h1>zsindex API</h1><p>JSON over HTTP; errors are <code>{\"error\": {\"status\", \"message\"}}</code>. "
            "The machine-readable schema is <a href=/openapi.json>/openapi.json</a>.</p>"
            + "".join(items) + "</main></body></html>")


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    return HTMLResponse(api_page(request.app.openapi()))
