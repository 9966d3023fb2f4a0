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
    "referrer-policy": "no-referrer",
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


async def send_json(send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": {"status": status, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": with_security_headers(headers)})
    await send({"type": "http.response.body", "body": body})


async def send_redirect(send: Send, location: str) -> None:
    headers = [(b"location", location.encode("latin-1")), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 303, "headers": with_security_headers(headers)})
    await send({"type": "http.response.body", "body": b""})
