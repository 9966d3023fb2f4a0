"""The server's guard: security headers, Host check, token check and the request-body limit.

A plain ASGI middleware (no response buffering, so event streams pass through).
The token is compared in constant time; it comes as ``Authorization: Bearer``
or as the HttpOnly cookie that ``POST /login`` sets. Static assets and the
login page need no token (they hold no data); every other page redirects to
/login, every other route answers 401.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import quote

from .state import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "zsindex_token"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",  # no address leaves for another site; own forms keep their Origin
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}
OPEN_PREFIXES = ("/static/",)
OPEN_PATHS = ("/login", "/favicon.ico")
PAGE_PREFIXES = ("/image/",)
PAGE_PATHS = ("/", "/labels", "/status", "/docs")


def token_matches(given: str | None, token: str) -> bool:
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode("utf-8", "surrogateescape"))


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def presented_token(headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    raw = headers.get("cookie")
    if raw:
        try:
            morsel = SimpleCookie(raw).get(COOKIE)
        except CookieError:
            return None
        if morsel is not None:
            return morsel.value
    return None


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def own_origin(scope: Scope, headers: dict[str, str]) -> str:
    """This server's origin as the request addressed it: scheme://host[:port] from the Host header."""
    scheme = scope.get("scheme", "http")
    host = headers.get("host", "").strip().lower()
    default = {"http": ":80", "https": ":443"}.get(scheme)
    if default and host.endswith(default):
        host = host[: -len(default)]
    return f"{scheme}://{host}"


def cross_site(scope: Scope, headers: dict[str, str], allowed: tuple[str, ...] = ()) -> str | None:
    """Why a request that changes something must be refused as cross-site (CSRF), or None.

    Every method but GET, HEAD and OPTIONS is refused when the browser says another site sent it
    (Sec-Fetch-Site: cross-site or same-site), or when it names an Origin that is not this server's own (nor one
    of --cors-origin). A client that is not a browser sends neither header and is not affected."""
    if scope.get("method", "GET").upper() in SAFE_METHODS:
        return None
    origin = headers.get("origin")
    if origin is not None and origin.strip().rstrip("/").lower() in {o.rstrip("/").lower() for o in allowed}:
        return None
    site = headers.get("sec-fetch-site", "").strip().lower()
    if site in ("cross-site", "same-site"):
        return f"a request from another site ({site}) cannot change anything here (cross-site request refused)"
    if origin is not None and origin.strip().lower() == "null" and site == "same-origin":
        return None  # a browser hides the origin of its own page's form under a strict referrer policy
    if origin is not None:
        mine = own_origin(scope, headers)
        theirs = origin.strip().lower()
        default = {"http://": ":80", "https://": ":443"}
        for prefix, port in default.items():
            if theirs.startswith(prefix) and theirs.endswith(port):
                theirs = theirs[: -len(port)]
        if theirs != mine:
            return (f"a request from origin {origin.strip()[:200]!r} cannot change anything here; this server's "
                    f"origin is {mine!r} (cross-site request refused)")
    return None


def text_problem(value: bytes | str) -> str | None:
    """Why a request's text value is no text: bytes that are not UTF-8, or a NUL (no name, label or query
    holds one; the command line cannot even pass one). None for text."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return "is not valid UTF-8 text; send text as UTF-8 (percent-encoded in a URL)"
    if "\0" in value:
        return "holds a NUL character, which no text here may hold"
    if any("\ud800" <= ch <= "\udfff" for ch in value):  # a JSON string's lone surrogate escape (\udcff)
        return "is not valid UTF-8 text (it holds a lone surrogate); send text as UTF-8"
    return None


def not_text(scope: Scope) -> str | None:
    """Why a text parameter of the URL (a path segment, a query parameter's name or value) is no text, or None:
    Starlette would decode such bytes to U+FFFD and the route would run with another text than the one sent."""
    from urllib.parse import unquote_to_bytes

    from ..output import escape_text

    for segment in scope.get("raw_path", b"").split(b"/"):
        problem = text_problem(unquote_to_bytes(segment))
        if problem is not None:
            return f"a URL path segment {problem}"
    for pair in scope.get("query_string", b"").split(b"&"):
        raw_name, _, raw_value = pair.partition(b"=")
        name, value = (unquote_to_bytes(x.replace(b"+", b" ")) for x in (raw_name, raw_value))
        shown = escape_text(name.decode("utf-8", "surrogateescape"))
        problem = text_problem(name)
        if problem is not None:
            return f"a query parameter's name ({shown}) {problem}"
        problem = text_problem(value)
        if problem is not None:
            return f"query parameter {shown} {problem}"
    return None


def is_page(path: str) -> bool:
    return path in PAGE_PATHS or path.startswith(PAGE_PREFIXES)


class BodyTooLarge(Exception):
    pass


class Guard:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await refusal(send)
            return
        await self._limited(scope, receive, send, headers)

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> Callable[[Send], Awaitable[None]] | None:
        s = self.settings
        path = scope.get("path", "")
        if b"%2f" in scope.get("raw_path", b"").lower():
            # Starlette decodes %2F before routing: DELETE /api/labels/foo%2Ftags would reach .../foo/tags
            return lambda send: send_json(send, 400, "a URL path segment cannot hold an encoded '/' (%2F); "
                                          "no label set name holds '/'")
        garbled = not_text(scope)
        if garbled is not None:
            return lambda send: send_json(send, 422, garbled)
        cross = cross_site(scope, headers, s.cors_origins)
        if cross is not None:
            return lambda send: send_json(send, 403, cross)
        if s.token is None and s.allowed_hosts is not None:
            host = headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]", 1)[0]
            if name.lower() not in s.allowed_hosts:
                return lambda send: send_json(send, 400, "this server answers only to a loopback host name")
        if s.token is None or path.startswith(OPEN_PREFIXES) or path in OPEN_PATHS:
            return None
        if scope.get("method") == "OPTIONS" and s.cors_origins:
            return None  # CORS preflights carry no credentials; the CORS layer answers them
        if token_matches(presented_token(headers), s.token):
            return None
        if is_page(path) and scope.get("method") in ("GET", "HEAD"):
            target = "/login?next=" + quote(path + ("?" + scope["query_string"].decode("latin-1")
                                                    if scope.get("query_string") else ""), safe="")
            return lambda send: send_redirect(send, target)
        return lambda send: send_json(send, 401, "a token is required: send 'Authorization: Bearer TOKEN'",
                                      [(b"www-authenticate", b'Bearer realm="zsindex"')])

    async def _limited(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]) -> None:
        limit = self.settings.max_upload_bytes
        try:
            declared = int(headers.get("content-length", "0") or 0)
        except ValueError:
            await send_json(send, 400, "bad Content-Length header")
            return
        if declared > limit:
            await send_json(send, 413, f"the request body is larger than the {limit}-byte limit")
            return
        state = {"received": 0, "over": False, "started": False}

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["over"] = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            if state["over"]:
                return  # whatever the app makes of the cut-off body, the client gets the 413 below
            if message["type"] == "http.response.start":
                state["started"] = True
                message["headers"] = with_security_headers(message.get("headers", []))
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            pass
        except Exception:
            if not state["over"]:
                raise
        if state["over"] and not state["started"]:
            await send_json(send, 413, f"the request body is larger than the {limit}-byte limit")


def with_security_headers(raw: Any) -> list[tuple[bytes, bytes]]:
    headers = [(bytes(k), bytes(v)) for k, v in raw]
    present = {k.lower() for k, _ in headers}
    for name, value in SECURITY_HEADERS.items():
        if name.encode() not in present:
            headers.append((name.encode(), value.encode()))
    if b"cache-control" not in present:
        headers.append((b"cache-control", b"no-store"))
    return headers


def error_body(status: int, message: str) -> bytes:
    """The JSON error body, written as every route's error is (common.error_response: compact separators,
    UTF-8; ASCII escapes for what UTF-8 cannot encode)."""
    content = {"error": {"status": status, "message": message}}
    try:
        return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


async def send_json(send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = error_body(status, message)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": with_security_headers(headers)})
    await send({"type": "http.response.body", "body": body})


async def send_redirect(send: Send, location: str) -> None:
    headers = [(b"location", location.encode("latin-1")), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 303, "headers": with_security_headers(headers)})
    await send({"type": "http.response.body", "body": b""})
