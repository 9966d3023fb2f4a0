"""SQLAlchemy 2.0 tables. Changes here need an Alembic revision (tests run ``alembic check``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from .hits import stored_path

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

STATUS_INDEXED = "indexed"
STATUS_ERROR = "error"
STATUS_DELETED = "deleted"


class FsPath(TypeDecorator[str]):
    """A file path that survives names that are not valid UTF-8.

    Python hands such names over with surrogate escapes, which SQLite's UTF-8
    text cannot hold; those few are stored as the raw bytes instead, and read
    back to the very same str, so the file can still be opened.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogateescape")

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else stored_path(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Model(Base):
    """The model whose vectors an index holds."""

    __tablename__ = "models"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    identity: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(500))
    pretrained: Mapped[str | None] = mapped_column(String(500))
    dim: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # How the image vectors were computed (migration 0010): fp32 or int8 image tower, onnx or torch runtime.
    precision: Mapped[str] = mapped_column(String(16), default="fp32", server_default="fp32")
    runtime: Mapped[str | None] = mapped_column(String(16))


class Image(Base):
    """One file path and what is known about it. The id is the FAISS id."""

    __tablename__ = "images"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(FsPath, unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    format: Mapped[str | None] = mapped_column(String(20))
    taken_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    camera_make: Mapped[str | None] = mapped_column(String(200))
    camera_model: Mapped[str | None] = mapped_column(String(200))
    gps_lat: Mapped[float | None] = mapped_column(Float)
    gps_lon: Mapped[float | None] = mapped_column(Float)
    orientation: Mapped[int | None] = mapped_column(Integer)
    # None for a plain still; "raw", "video", or "motion" (a still with a clip inside, see media.py)
    media_kind: Mapped[str | None] = mapped_column(String(16))
    duration: Mapped[float | None] = mapped_column(Float)  # seconds, videos only
    status: Mapped[str] = mapped_column(String(16), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    first_seen: Mapped[datetime] = mapped_column(DateTime)
    last_seen: Mapped[datetime] = mapped_column(DateTime)


class Vector(Base):
    """One embedding per (model, file content): identical files share it, moved files keep it."""

    __tablename__ = "vectors"
    __table_args__ = (UniqueConstraint("model_id", "sha256", name="uq_vectors_model_sha256"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class IngestRun(Base):
    __tablename__ = "ingest_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(16))  # running, finished, failed
    roots: Mapped[str] = mapped_column(Text)  # JSON list
    added: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    changed: Mapped[int] = mapped_column(Integer, default=0)
    moved: Mapped[int] = mapped_column(Integer, default=0)
    deleted: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    ignored: Mapped[str | None] = mapped_column(Text)  # JSON {type: count} of files that are not media


class State(Base):
    """Small key/value facts about the index, e.g. the vector generation."""

    __tablename__ = "state"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)



class TextVector(Base):
    """Cache of query-text embeddings, so a repeated query never runs the text encoder again."""

    __tablename__ = "text_vectors"
    __table_args__ = (UniqueConstraint("model_id", "text", name="uq_text_vectors_model_text"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    last_used: Mapped[datetime] = mapped_column(DateTime)


class LabelSetRow(Base):
    """A named, versioned set of labels; every edit bumps the version."""

    __tablename__ = "label_sets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    version: Mapped[int] = mapped_column(Integer)
    templates: Mapped[str | None] = mapped_column(Text)  # JSON list; None: the default ensemble
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    # Tag new images with this set after every ingest the service runs (zsindex serve --watch).
    auto: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class LabelRow(Base):
    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("set_id", "name", name="uq_labels_set_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    set_id: Mapped[int] = mapped_column(ForeignKey("label_sets.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(500))
    descriptions: Mapped[str] = mapped_column(Text)  # JSON list
    templates: Mapped[str] = mapped_column(Text)  # JSON list; empty: the set's templates
    position: Mapped[int] = mapped_column(Integer)
    # What the label's current tags were computed from (prompts, model, library generation, mode):
    # re-tagging skips labels whose key is unchanged.
    tagged_key: Mapped[str | None] = mapped_column(String(64))


class LabelVector(Base):
    """A label's prompt-ensemble vector for one model, keyed by the hash of its prompts."""

    __tablename__ = "label_vectors"
    __table_args__ = (UniqueConstraint("model_id", "prompts_sha256", name="uq_label_vectors_model_prompts"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    prompts_sha256: Mapped[str] = mapped_column(String(64))
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class Tag(Base):
    """An image carries a label, with the set version, model and mode that decided it."""

    __tablename__ = "tags"
    # The unique constraint's index also serves lookups by image; label_id gets its own.
    __table_args__ = (UniqueConstraint("image_id", "label_id", name="uq_tags_image_label"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"), index=True)
    set_version: Mapped[int] = mapped_column(Integer)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(8))  # single or multi
    score: Mapped[float] = mapped_column(Float)  # probability: softmax (single) or calibrated (multi)
    cosine: Mapped[float] = mapped_column(Float)


class Sidecar(Base):
    """An XMP sidecar zsindex wrote into, and exactly which keywords it put there.

    ``entries`` is a JSON list of [set, property, value, state]: state "written" for
    a keyword zsindex added (it was not there before), "declined" for one the user
    has since taken out by hand (not added again). ``pending`` holds the next record
    while its file is being replaced, so a crash between the two is recognised by
    the file's hash on the next run.
    """

    __tablename__ = "sidecars"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(FsPath, unique=True)
    image_path: Mapped[str] = mapped_column(FsPath, index=True)
    created: Mapped[bool] = mapped_column(Boolean)  # zsindex made the file (it may delete it when empty again)
    sha256: Mapped[str | None] = mapped_column(String(64))  # of the file after zsindex's last write
    entries: Mapped[str] = mapped_column(Text)
    pending: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Keyword(Base):
    """A keyword the user gave an image (sidecar, embedded XMP or IPTC), apart from zsindex's tags."""

    __tablename__ = "keywords"
    __table_args__ = (UniqueConstraint("image_id", "keyword", name="uq_keywords_image_keyword"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    keyword: Mapped[str] = mapped_column(Text)
    folded: Mapped[str] = mapped_column(Text, index=True)  # casefolded, for matching labels and --keyword
    source: Mapped[str] = mapped_column(String(16))  # sidecar, xmp (embedded) or iptc


class KeywordSource(Base):
    """What an image's keywords were read from, so ingest re-reads them only when that changed."""

    __tablename__ = "keyword_sources"
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    image_sha256: Mapped[str | None] = mapped_column(String(64))
    sidecar_path: Mapped[str | None] = mapped_column(FsPath)
    sidecar_size: Mapped[int | None] = mapped_column(BigInteger)
    sidecar_mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)


class Frame(Base):
    """A frame of a video, embedded on its own. Its FAISS id is ``video.FRAME_ID_BASE + id``;
    its vector is stored under ``sha256`` (derived from the video's content hash and the frame's
    position), so identical or moved videos keep their frame vectors like images keep theirs."""

    __tablename__ = "frames"
    # The unique constraint's index also serves lookups by video.
    __table_args__ = (UniqueConstraint("image_id", "position", name="uq_frames_image_position"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    seconds: Mapped[float] = mapped_column(Float)  # time of the frame in the video
    sha256: Mapped[str] = mapped_column(String(64))


class IgnoredFile(Base):
    """A file found under a scanned folder that is not an image or video (or a Live Photo's clip)."""

    __tablename__ = "ignored_files"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(FsPath, unique=True)
    kind: Mapped[str] = mapped_column(String(64))  # its extension, or "live photo clip"
    reason: Mapped[str] = mapped_column(Text)
    run_id: Mapped[int] = mapped_column(Integer)  # the ingest run that last saw it
