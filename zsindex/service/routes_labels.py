"""Label sets, tag and ingest jobs (with progress by polling or server-sent events)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from ..labels import MAX_LABEL_CHARS, MAX_SET_LABELS, MAX_TEMPLATES
from ..params import field_bounds
from ..tagging import MAX_SET_NAME
from .common import SafeJSONResponse, ranged_field, service, writable
from .jobs import FINISHED, Job
from .routes_search import MAX_OFFSET, MAX_PAGE, page
from .state import Service

router = APIRouter(prefix="/api", tags=["labels and jobs"])
SetName = Annotated[str, Path(min_length=1, max_length=MAX_SET_NAME, description="A label set's name")]
JobId = Annotated[str, Path(min_length=1, max_length=64)]
STREAM_POLL_S = 0.2
STREAM_KEEPALIVE_S = 15.0


class LabelSetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # the sizes every front end takes (labels.py): a set made with the CLI can be saved from the web app's form
    labels: list[Annotated[str, Field(min_length=1, max_length=MAX_LABEL_CHARS)]] = Field(
        ..., min_length=1, max_length=MAX_SET_LABELS)
    templates: list[Annotated[str, Field(max_length=MAX_LABEL_CHARS)]] | None = Field(None, max_length=MAX_TEMPLATES)
    auto: StrictBool | None = None  # true or false: "yes", 1 or "true" is refused (422), not read as true


class TagBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["single", "multi"] = "single"
    threshold: float | None = ranged_field(None, "threshold", allow_inf_nan=False)


class IngestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    paths: list[Annotated[str, Field(min_length=1, max_length=4096)]] | None = Field(None, max_length=100)


@router.get("/labels", summary="Every label set")
def labels_list(svc: Service = Depends(service)) -> dict[str, Any]:
    return {"label_sets": svc.reader.label_sets()}


@router.get("/labels/{name}", summary="One label set with its tag counts")
def labels_show(name: SetName, svc: Service = Depends(service)) -> dict[str, Any]:
    return svc.reader.label_set(name)


@router.put("/labels/{name}", summary="Create a label set or make it hold exactly these labels",
            dependencies=[Depends(writable)], status_code=200, responses={201: {"description": "Created"}})
def labels_put(name: SetName, body: LabelSetBody, svc: Service = Depends(service)) -> SafeJSONResponse:
    shown, created = svc.reader.labels_put(name, [lab.strip() for lab in body.labels], body.templates, body.auto)
    return SafeJSONResponse(shown, status_code=201 if created else 200)


@router.delete("/labels/{name}", summary="Remove a label set and its tags", status_code=204,
               dependencies=[Depends(writable)], response_class=Response)
def labels_delete(name: SetName, svc: Service = Depends(service)) -> Response:
    svc.reader.label_set(name)  # 404 for an unknown set
    svc.reader.labels_remove(name)
    return Response(status_code=204)


@router.post("/labels/{name}/tag", summary="Start a tag run (a job)", status_code=202,
             dependencies=[Depends(writable)])
def labels_tag(name: SetName, body: TagBody | None = None, svc: Service = Depends(service)) -> dict[str, Any]:
    body = body or TagBody(mode="single", threshold=None)
    return svc.submit_tag(name, body.mode, body.threshold).to_dict()


@router.delete("/labels/{name}/tags", summary="Remove every tag of a label set", dependencies=[Depends(writable)])
def labels_untag(name: SetName, svc: Service = Depends(service)) -> dict[str, Any]:
    svc.reader.label_set(name)
    return {"removed": svc.reader.untag(name)}


@router.get("/labels/{name}/images", summary="Images a label set (or one label of it) tags, best first")
def labels_images(name: SetName, label: Annotated[str | None, Query(max_length=MAX_LABEL_CHARS)] = None,
                  k: Annotated[int, Query(**field_bounds("k", cap=MAX_PAGE))] = 24,
                  offset: Annotated[int, Query(**field_bounds("offset", cap=MAX_OFFSET))] = 0,
                  svc: Service = Depends(service)) -> dict[str, Any]:
    pairs = svc.reader.label_images(name, label or None, k + 1, offset)  # one more: is there a next page?
    hits = [SimpleNamespace(id=i, score=s) for i, s in pairs]
    return page(svc, hits, k, offset, {"label_set": name, "label": label})


@router.post("/ingest", summary="Start an incremental ingest of the served roots (a job)", status_code=202,
             dependencies=[Depends(writable)])
def ingest(body: IngestBody | None = None, svc: Service = Depends(service)) -> dict[str, Any]:
    return svc.submit_ingest(body.paths if body else None).to_dict()


@router.get("/jobs", summary="Recent jobs, newest first")
def jobs_list(svc: Service = Depends(service)) -> dict[str, Any]:
    return {"jobs": [j.to_dict() for j in svc.jobs.all()]}


@router.get("/jobs/{job_id}", summary="One job: state, progress, result or error")
def jobs_show(job_id: JobId, svc: Service = Depends(service)) -> dict[str, Any]:
    return svc.jobs.get(job_id).to_dict()


@router.get("/jobs/{job_id}/events", summary="A job's progress as server-sent events, until it ends",
            response_class=StreamingResponse, responses={200: {"content": {"text/event-stream": {}}}})
async def jobs_events(request: Request, job_id: JobId, svc: Service = Depends(service)) -> StreamingResponse:
    job = svc.jobs.get(job_id)
    return StreamingResponse(job_events(job, request.is_disconnected), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def job_events(job: Job, disconnected: Callable[[], Awaitable[bool]]) -> AsyncIterator[str]:
    """A job's states as server-sent events, until one that ends it has been sent. Whether it ended is read
    from the state that was sent: the job's thread can finish it between the two, and the stream then ended
    with "running" as its last word."""
    sent, idle = -1, 0.0
    while True:
        if job.version != sent:
            sent = job.version
            idle = 0.0
            state = job.to_dict()
            yield f"data: {json.dumps(state)}\n\n"
            if state["state"] in FINISHED:
                return
        elif idle >= STREAM_KEEPALIVE_S:
            idle = 0.0
            yield ": keep-alive\n\n"
        if await disconnected():
            return
        await asyncio.sleep(STREAM_POLL_S)
        idle += STREAM_POLL_S
