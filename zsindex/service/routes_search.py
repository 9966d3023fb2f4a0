"""Read routes: status, search (text, image id, upload), images, thumbnails, files, facets, classify.

Every route parses, calls the library facade, shapes JSON. Routes are plain
functions, so FastAPI runs them on its thread pool: model and FAISS work never
blocks the event loop.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ..errors import UsageError
from ..labels import MAX_LABEL_CHARS
from ..params import field_bounds
from ..tagging import MAX_SET_NAME
from .common import ranged_field, service
from .state import Service
from .uploads import safe_name, saved_upload

router = APIRouter(prefix="/api", tags=["search"])
ImageId = Annotated[int, Path(**field_bounds("image_id", cap=2**62), description="An image id from search results")]
# What one request may ask for, beyond the parameters' own ranges (params.RANGES, which the CLI and the Python
# API share): the server's limits on the work of one request.
MAX_PAGE = 200
MAX_OFFSET = 100_000
MAX_VIDEO_SECONDS = 86_400 * 366
THUMB_CACHE = "private, max-age=3600"


def _query_bool(value: Any) -> Any:
    """A boolean from a query string or form field: true or false (any case), 1 or 0; anything else
    ("yes", "on", "maybe") is refused with 422, as a JSON body's non-boolean is (StrictBool)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "false", "0"):
        return value.strip().lower() in ("true", "1")
    raise ValueError(f"must be true or false, not {value!r}")


QueryBool = Annotated[bool, BeforeValidator(_query_bool)]


class SearchParams(BaseModel):
    """Everything `zsindex search` takes. An empty or blank text is refused (422) as the command line and the
    Python API refuse it: `camera=` is no camera, not "no filter"; leave a parameter out instead."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    q: str | None = Field(None, max_length=1000, description="Query text")
    not_: list[str] = Field(default_factory=list, alias="not", description="Texts to push away from (repeatable)")
    not_weight: float = ranged_field(0.5, "not_weight", allow_inf_nan=False)
    like: int | None = ranged_field(None, "image_id", cap=2**62, description="An image id: more like this one")
    path: str | None = Field(None, max_length=1000, description="Glob over the full path")
    after: str | None = Field(None, max_length=40, description="Taken on or after, e.g. 2024-06-30")
    before: str | None = Field(None, max_length=40, description="Taken before")
    camera: str | None = Field(None, max_length=200)
    format: str | None = Field(None, max_length=20)
    tag: str | None = Field(None, max_length=MAX_SET_NAME + 1 + MAX_LABEL_CHARS,
                            description="Only images tagged with this label (or SET:LABEL)")
    keyword: str | None = Field(None, max_length=500, description="Only images the user keyworded so")
    group_stems: QueryBool = Field(False, description="One hit per shot: IMG_1.CR2 + IMG_1.JPG count once "
                                   "(true or false)")
    k: int = ranged_field(24, "k", cap=MAX_PAGE)
    offset: int = ranged_field(0, "offset", cap=MAX_OFFSET)
    min_score: float | None = ranged_field(None, "min_score", allow_inf_nan=False)

# Media types of what Pillow does not name (its MIME table covers JPEG, PNG, HEIF through pillow-heif, ...):
# videos, JPEG XL, camera RAW. Looked up by format, then by the file's extension, then Python's mimetypes.
MEDIA_TYPES = {
    "mp4": "video/mp4", "m4v": "video/x-m4v", "mov": "video/quicktime", "qt": "video/quicktime",
    "webm": "video/webm", "mkv": "video/x-matroska", "avi": "video/x-msvideo", "3gp": "video/3gpp",
    "3g2": "video/3gpp2", "mpg": "video/mpeg", "mpeg": "video/mpeg", "m2ts": "video/mp2t", "mts": "video/mp2t",
    "wmv": "video/x-ms-wmv", "ogv": "video/ogg",
    "jxl": "image/jxl", "dng": "image/x-adobe-dng", "cr2": "image/x-canon-cr2", "cr3": "image/x-canon-cr3",
    "crw": "image/x-canon-crw", "nef": "image/x-nikon-nef", "nrw": "image/x-nikon-nrw", "arw": "image/x-sony-arw",
    "sr2": "image/x-sony-sr2", "srf": "image/x-sony-srf", "raf": "image/x-fuji-raf", "rw2": "image/x-panasonic-rw2",
    "orf": "image/x-olympus-orf", "pef": "image/x-pentax-pef", "srw": "image/x-samsung-srw",
    "x3f": "image/x-sigma-x3f", "kdc": "image/x-kodak-kdc", "dcr": "image/x-kodak-dcr", "3fr": "image/x-hasselblad-3fr",
    "iiq": "image/x-phaseone-iiq", "mos": "image/x-leaf-mos", "mrw": "image/x-minolta-mrw",
}


def media_type(path: str | os.PathLike[str], fmt: str | None, pillow: dict[str, str]) -> str:
    """The Content-Type of an indexed file: by the format ingest recorded (what its content is), else by its
    extension; application/octet-stream only for what nothing names."""
    import mimetypes

    if fmt and fmt in pillow:
        return pillow[fmt]
    ext = os.path.splitext(os.fspath(path))[1].lstrip(".").lower()
    for key in ((fmt or "").lower(), ext):
        if key in MEDIA_TYPES:
            return MEDIA_TYPES[key]
    guessed, _ = mimetypes.guess_type(os.fspath(path), strict=False)
    if guessed and guessed.startswith(("image/", "video/")) and "svg" not in guessed:  # never a page or a script
        return guessed
    return "application/octet-stream"


def _results(svc: Service, hits: list[Any]) -> list[dict[str, Any]]:
    """Result rows; a video's hit carries the time of its best frame, a grouped shot its other files' names."""
    meta = svc.reader.describe([h.id for h in hits], svc.roots())
    out = []
    for hit in hits:
        m = meta.get(hit.id)
        if m is None:
            continue
        row = {**{k: m[k] for k in ("id", "path", "width", "height", "taken", "format", "camera")},
               "score": round(float(hit.score), 6), "thumbnail": f"/api/images/{hit.id}/thumbnail?size=256"}
        if getattr(hit, "seconds", None) is not None:
            row["time"] = round(float(hit.seconds), 3)
            row["thumbnail"] += f"&t={row['time']:g}"  # a video's thumbnail shows its best frame
        if getattr(hit, "also", ()):
            row["also"] = [os.path.basename(p) for p in hit.also]  # same folder: the name says which file
        out.append(row)
    return out


def run_search(svc: Service, p: SearchParams, upload: Any = None) -> dict[str, Any]:
    from ..search import Filters, parse_date

    if p.q is None and p.like is None and upload is None:
        raise UsageError("give a query text q, an image id like, or upload an image")
    filters = Filters(path=p.path, after=parse_date(p.after, "after"), before=parse_date(p.before, "before"),
                      camera=p.camera, format=p.format, tag=p.tag, keyword=p.keyword)
    likes = [svc.reader.image_source(p.like)] if p.like is not None else []

    def search(extra: list[Any]) -> list[Any]:
        return svc.reader.search(p.q, like=likes + extra, not_=p.not_, not_weight=p.not_weight, k=p.k + 1,
                                 offset=p.offset, min_score=p.min_score, filters=filters,
                                 group_stems=p.group_stems,  # one more than a page: is there a next one?
                                 max_megapixels=svc.settings.max_upload_megapixels)  # the upload's own guard

    if upload is not None:
        with saved_upload(upload, svc.settings.max_upload_megapixels) as path:
            hits = search([path])
    else:
        hits = search([])
    query = p.model_dump(by_alias=True, exclude_none=True)
    if upload is not None:
        query["upload"] = safe_name(upload.filename)
    return page(svc, hits, p.k, p.offset, query)


def page(svc: Service, hits: list[Any], k: int, offset: int, query: dict[str, Any]) -> dict[str, Any]:
    """A page of results from up to k + 1 hits: ``more`` says whether a next page has any."""
    return {"results": _results(svc, hits[:k]), "k": k, "offset": offset, "more": len(hits) > k, "query": query}


@router.get("/status", summary="Model, counts, sizes, recent runs, label sets, server mode")
def status(svc: Service = Depends(service)) -> dict[str, Any]:
    out = svc.reader.status()
    out["sizes"] = out.get("bytes", {})
    out["runs"] = svc.reader.runs(10)
    out["label_sets"] = svc.reader.label_sets()
    out["read_only"] = svc.settings.read_only or svc.reader.store.read_only  # --read-only, or the folder's rights
    out["watch"] = svc.settings.watch
    out["jobs"] = [j.to_dict() for j in svc.jobs.pending()]
    return out


@router.get("/search", summary="Search by text and/or an indexed image (more like this)")
def search_get(params: Annotated[SearchParams, Query()], svc: Service = Depends(service)) -> dict[str, Any]:
    return run_search(svc, params)


@router.post("/search", summary="Search by an uploaded image (multipart field 'file'), plus any GET field")
def search_post(params: Annotated[SearchParams, Form()], file: UploadFile = File(...),
                svc: Service = Depends(service)) -> dict[str, Any]:
    return run_search(svc, params, file)


@router.get("/images/{image_id}", summary="Metadata and tags of one indexed image")
def image(image_id: ImageId, svc: Service = Depends(service)) -> dict[str, Any]:
    out = svc.reader.image(image_id, svc.roots())
    out["thumbnail"] = f"/api/images/{image_id}/thumbnail?size=256"
    out["file"] = f"/api/images/{image_id}/file"
    return out


def etag_matches(if_none_match: str, etag: str) -> bool:
    """If-None-Match compared weakly (RFC 9110 13.1.2): W/"x" matches "x"; "*" matches any."""
    def opaque(tag: str) -> str:
        tag = tag.strip()
        return tag[2:] if tag[:2].upper() == "W/" else tag

    tags = [opaque(t) for t in if_none_match.split(",")]
    return "*" in tags or opaque(etag) in tags


@router.get("/images/{image_id}/thumbnail", summary="A JPEG thumbnail (cached; ETag, 304 on If-None-Match)",
            response_class=Response, responses={200: {"content": {"image/jpeg": {}}}, 304: {}})
def thumbnail(request: Request, image_id: ImageId, size: Annotated[int, Query(**field_bounds("size", cap=4096))] = 256,
              t: Annotated[float | None, Query(**field_bounds("at", cap=MAX_VIDEO_SECONDS), allow_inf_nan=False,
                                               description="a video: show the sampled frame nearest "
                                                           "these seconds (a hit's `time`)")] = None,
              svc: Service = Depends(service)) -> Response:
    key = svc.reader.thumbnail_key(image_id, size, at=t)
    etag = f'"{key}"'
    headers = {"ETag": etag, "Cache-Control": THUMB_CACHE}
    if etag_matches(request.headers.get("if-none-match", ""), etag):
        return Response(status_code=304, headers=headers)
    # Thumbnails are small: read here, on the worker thread, instead of streaming the file through
    # several more thread hops (FileResponse), which cost more than the read itself.
    jpeg, _ = svc.reader.thumbnail(image_id, size, key=key, at=t)
    return Response(jpeg, media_type="image/jpeg", headers=headers)


@router.get("/images/{image_id}/file", summary="The original file of an indexed image",
            response_class=Response, responses={200: {"content": {"image/*": {}}}})
def image_file(image_id: ImageId, svc: Service = Depends(service)) -> Response:
    from PIL import Image

    path, fmt = svc.reader.image_file(image_id)
    media = media_type(path, fmt, Image.MIME)
    name = os.fsencode(os.path.basename(path)).decode("utf-8", "replace")  # any name, as valid text
    return FileResponse(path, media_type=media, content_disposition_type="inline", filename=name,
                        headers={"Cache-Control": "private, max-age=3600"})


@router.get("/facets", summary="Counts for filters: tags, cameras, formats")
def facets(svc: Service = Depends(service)) -> dict[str, Any]:
    return svc.reader.facets()


@router.post("/classify", summary="Classify an uploaded image against labels or a label set")
def classify(file: UploadFile = File(...), labels: Annotated[str | None, Form(max_length=20_000)] = None,
             label_set: Annotated[str | None, Form(max_length=MAX_SET_NAME)] = None,
             svc: Service = Depends(service)) -> dict[str, Any]:
    labels = labels if labels and labels.strip() else None
    label_set = label_set if label_set and label_set.strip() else None
    if (labels is None) == (label_set is None):
        raise UsageError("give exactly one of labels ('a,b,c') or label_set (a set's name)")
    chosen: Any = labels if labels is not None else svc.reader.stored_label_set(label_set or "")
    with saved_upload(file, svc.settings.max_upload_megapixels) as path:
        result = svc.reader.classify([path], chosen, max_megapixels=svc.settings.max_upload_megapixels)[0]
    out = result.to_dict()
    out["path"] = safe_name(file.filename)
    if result.error is not None:
        raise UsageError(f"cannot classify the upload: {result.error}")
    return out
