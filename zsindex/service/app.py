"""The FastAPI application: the library facade behind an HTTP API and the web app's pages."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from starlette.staticfiles import StaticFiles

from .. import __version__
from ..library import Library
from ..params import checked
from .common import SafeJSONResponse, install_error_handlers, text_only
from .pages import STATIC
from .pages import router as pages_router
from .routes_labels import router as labels_router
from .routes_search import router as search_router
from .security import Guard
from .state import Service, Settings

DESCRIPTION = ("Semantic search and zero-shot labelling of an image index. Errors are JSON "
               "`{\"error\": {\"status\": int, \"message\": str}}`; with a token, send `Authorization: Bearer TOKEN`.")


@checked
def create_app(library_or_folder: Library | str | Path, *, token: str | None = None, read_only: bool = False,
               roots: Sequence[str | Path] = (), watch: bool = False, cors_origins: Sequence[str] = (),
               allowed_hosts: Sequence[str] | None = Settings.allowed_hosts,
               max_upload_bytes: int = Settings.max_upload_bytes,
               max_upload_megapixels: float = Settings.max_upload_megapixels,
               ingest_workers: int | None = None, watch_quiet_seconds: float = Settings.watch_quiet_seconds,
               compute_threads: int | None = Settings.compute_threads, model: str | None = None) -> FastAPI:
    """The app over an index (a Library, or a folder opened with ``model``).

    ``watch`` starts a watcher over the roots when the app starts (its lifespan);
    ``allowed_hosts`` applies only when no token is set (None: any Host header);
    ``compute_threads`` caps torch's and FAISS's threads per call (None: their defaults). Numbers out of their
    range (params.RANGES, as `zsindex serve`'s options take them) are a UsageError.
    """
    from ..errors import UsageError

    if read_only and watch:
        raise UsageError("read_only=True and watch=True exclude each other: watching ingests the changes, which "
                         "writes to the index")
    for name, value, means in (("token", token, "no token"), ("model", model, "the default model")):
        if isinstance(value, str) and not value.strip():
            raise UsageError(f"{name}= is empty; an empty text is never taken as {means}: give a value, or leave "
                             f"{name}= out")
    library = library_or_folder if isinstance(library_or_folder, Library) else \
        Library(library_or_folder, model=model, create=False)
    settings = Settings(token=token, read_only=read_only, roots=tuple(str(r) for r in roots), watch=watch,
                        cors_origins=tuple(cors_origins),
                        allowed_hosts=None if allowed_hosts is None else tuple(h.lower() for h in allowed_hosts),
                        max_upload_bytes=max_upload_bytes, max_upload_megapixels=max_upload_megapixels,
                        ingest_workers=ingest_workers, watch_quiet_seconds=watch_quiet_seconds,
                        compute_threads=compute_threads)
    svc = Service(library, settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        threads_before = svc.limit_threads()
        svc.warm_up()
        if settings.watch:
            svc.start_watching()
        try:
            yield
        finally:
            svc.close()
            if threads_before:
                svc.limit_threads(threads_before)

    app = FastAPI(title="zsindex", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None, swagger_ui_oauth2_redirect_url=None,
                  default_response_class=SafeJSONResponse, dependencies=[Depends(text_only)])
    app.state.service = svc
    install_error_handlers(app)
    app.include_router(search_router)
    app.include_router(labels_router)
    app.include_router(pages_router)
    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")
    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT", "DELETE"], allow_headers=["Authorization",
                                                                                          "Content-Type"])
    app.add_middleware(HeadAsGet)
    app.add_middleware(Guard, settings=settings)  # outermost: every response gets the security headers
    return app


class HeadAsGet:
    """HEAD answers as GET does, headers only (FastAPI's routes take GET alone): a link checker or a download
    tool asking for a file's size and type gets them, not 405."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Any) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


def service_of(app: Any) -> Service:
    return app.state.service  # type: ignore[no-any-return]
