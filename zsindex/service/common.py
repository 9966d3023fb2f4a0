"""Pieces every route module shares: the Service from the request, the read-only guard, error mapping."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    ImageError,
    IndexLockedError,
    IndexStateError,
    ModelError,
    ModelMismatchError,
    NotFoundError,
    UsageError,
    ZsindexError,
)
from ..faults import read_only_error
from .messages import server_text
from .security import SECURITY_HEADERS
from .state import OutsideRoots, Service

log = logging.getLogger("zsindex.service")

# Most specific first: the first class an error is an instance of decides its status.
STATUS_OF: tuple[tuple[type[BaseException], int], ...] = (
    (NotFoundError, 404),
    (UsageError, 422),
    (ImageError, 422),
    (IndexLockedError, 409),
    (ModelMismatchError, 409),
    (IndexStateError, 409),
    (ModelError, 503),
    (OutsideRoots, 403),
    (PermissionError, 403),
)


class SafeJSONResponse(JSONResponse):
    """JSON for any file name: names that are not UTF-8 reach Python with surrogate escapes, which
    UTF-8 cannot encode; such a body is written with ASCII escapes (\\udcXX), which JSON parsers accept
    and which give back the very same str in Python (``os.fsencode`` then gives the original bytes)."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def ranged_field(default: Any, name: str, cap: float | None = None, **extra: Any) -> Any:
    """A model field whose bounds are the parameter's range (params.RANGES, shared with the CLI and the Python
    API), ``cap`` the server's own limit on one request."""
    from pydantic import Field

    from ..params import field_bounds

    return Field(default, **field_bounds(name, cap=cap), **extra)


def service(request: Request) -> Service:
    return request.app.state.service  # type: ignore[no-any-return]


def writable(request: Request) -> None:
    """Dependency of every route that changes something: refused in --read-only mode."""
    svc = service(request)
    if svc.settings.read_only:
        raise HTTPException(403, "the server runs with --read-only; this route changes the index")
    if svc.reader.store.read_only:  # the folder's rights: refused now, not as a job that fails later
        fault = svc.reader.store.write_fault
        raise HTTPException(403, str(fault) if fault else str(read_only_error(svc.reader.folder, "change the index")))


def _strings(value: Any) -> Any:
    """Every str in a JSON value (keys too)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


async def text_only(request: Request) -> None:
    """Dependency of every route: each text a request's body carries (a JSON string, a form field) is text, as
    the URL's are (security.not_text): a NUL or a JSON string's lone surrogate (\\udcff) is refused with 422, as
    the command line refuses a query that is not UTF-8, instead of a search or a label made of another text."""
    from .security import text_problem

    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            values = list(_strings(json.loads(await request.body())))
        except ValueError:  # not JSON (nor UTF-8): the route's own parsing says so
            return
    elif kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        values = [v for item in (await request.form()).multi_items() for v in item if isinstance(v, str)]
    else:
        return
    for value in values:
        problem = text_problem(value)
        if problem is not None:
            raise HTTPException(422, f"a text in the request body {problem}")


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> SafeJSONResponse:
    return SafeJSONResponse({"error": {"status": status, "message": message}}, status_code=status, headers=headers)


def _message(exc: BaseException, status: int) -> str:
    if isinstance(exc, OutsideRoots):
        return "forbidden: the path is outside what this server serves"  # says nothing about the file system
    if isinstance(exc, PermissionError):  # the file system's refusal: the server's user may not read a file
        return f"the server may not read or write a file it needs ({exc.strerror or 'permission denied'})"
    return server_text(str(exc) or type(exc).__name__)


async def on_zsindex_error(_request: Request, exc: Exception) -> JSONResponse:
    for cls, status in STATUS_OF:
        if isinstance(exc, cls):
            return error_response(status, _message(exc, status))
    log.error("unmapped zsindex error: %s", exc)
    return error_response(500, str(exc))


async def on_http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))


async def on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors()[:5]:
        if err.get("type") == "json_invalid":  # pydantic says "0: JSON decode error"
            reason = (err.get("ctx") or {}).get("error", "")
            parts.append(f"the request body is not valid JSON{f' ({reason})' if reason else ''}")
            continue
        where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("query", "body", "path", "form"))
        parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return error_response(422, "; ".join(parts) or "invalid request")


async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
    """The last resort: a JSON 500 that never carries a stack trace (that goes to the server log)."""
    log.error("unexpected error: %r", exc, exc_info=exc)
    response = error_response(500, "internal server error (see the server log)")
    response.headers.update(SECURITY_HEADERS)
    return response


def install_error_handlers(app: Any) -> None:
    app.add_exception_handler(ZsindexError, on_zsindex_error)
    app.add_exception_handler(OutsideRoots, on_zsindex_error)
    app.add_exception_handler(PermissionError, on_zsindex_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected)
