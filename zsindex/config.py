"""Settings in one place: flag > environment variable > default. stdlib only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
DEMO_MODEL = "demo"
# The shipped demo model is an ordinary open_clip local directory; "demo" is
# only a short name for it, resolved here and nowhere else.
DEMO_MODEL_DIR = Path(__file__).resolve().parent / "models" / "shapes-tiny"

ENV_MODEL = "ZSINDEX_MODEL"
ENV_PRETRAINED = "ZSINDEX_PRETRAINED"
ENV_DEVICE = "ZSINDEX_DEVICE"
ENV_INDEX = "ZSINDEX_INDEX"
ENV_HOME = "ZSINDEX_HOME"
ENV_DB = "ZSINDEX_DB"
ENV_RUNTIME = "ZSINDEX_RUNTIME"
RUNTIMES = ("auto", "onnx", "torch")
PRECISIONS = ("fp32", "int8")
# The image tower's precision on ONNX Runtime when none is chosen. int8 embeds about twice as fast
# on a CPU; its drift against fp32 is measured in the README ("Precision"). torch runs fp32.
DEFAULT_ONNX_PRECISION = "int8"

DEFAULT_BATCH_SIZE = 32
DEFAULT_MAX_MEGAPIXELS = 180.0


_PARAMETERS = {"ZSINDEX_MODEL": "model", "ZSINDEX_PRETRAINED": "pretrained", "ZSINDEX_DEVICE": "device",
               "ZSINDEX_INDEX": "folder", "ZSINDEX_DB": "db", "ZSINDEX_RUNTIME": "runtime"}


def setting(value: str | None, env: str, default: str | None) -> str | None:
    """Resolve one setting: an explicit value wins, then the environment, then the default.

    An explicit "" (or blank) is refused (UsageError naming the parameter): it would otherwise stand silently
    for the environment's value or the default. An empty environment variable counts as unset, as usual."""
    if value is not None:
        if not str(value).strip():
            from .errors import UsageError

            name = _PARAMETERS.get(env, env)
            raise UsageError(f"{name}= is empty; an empty text is never taken as the default: give a value, or "
                             f"None for ${env} or the default")
        return value
    from_env = os.environ.get(env)
    if from_env:
        return from_env
    return default


def model_spec(model: str | None, pretrained: str | None, device: str | None, runtime: str | None,
               precision: str | None, recorded: tuple[str, str | None, str] | None) -> dict[str, Any]:
    """The load_embedder arguments for an index whose model is ``recorded`` ((name, pretrained,
    precision), None for a new index): flags, then the environment, then the index's own model.
    ``precision`` is the one asked for; ``index_precision`` the one the index's image vectors were made at."""
    if not model and not os.environ.get(ENV_MODEL) and recorded is not None:
        model, pretrained = recorded[0], pretrained or recorded[1]
    return {"model": setting(model, ENV_MODEL, DEFAULT_MODEL),
            "pretrained": setting(pretrained, ENV_PRETRAINED, None),
            "device": setting(device, ENV_DEVICE, None),
            "runtime": setting(runtime, ENV_RUNTIME, None),
            "precision": precision,
            "index_precision": recorded[2] if recorded is not None else None}


# Files the loader takes as weights (a model folder's, or pretrained=FILE), and an architecture's JSON.
CHECKPOINT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
MODEL_ACCEPTS = ("model= takes an open_clip architecture name (ViT-B-32, with pretrained=TAG or a checkpoint "
                 "file), 'hf-hub:ORG/NAME', a model folder holding open_clip_config.json and its weights, an "
                 "architecture .json (with pretrained=FILE), or 'demo'")
PRETRAINED_ACCEPTS = ("pretrained= takes a pretrained tag of the architecture (open_clip.list_pretrained()) or a "
                      "checkpoint file (" + ", ".join(CHECKPOINT_SUFFIXES) + ")")


def names_a_path(value: str, suffixes: tuple[str, ...]) -> bool:
    """Whether a model or pretrained value can only be a path: it holds a path separator, starts with . or ~,
    or ends in one of the suffixes (never an architecture name or a pretrained tag)."""
    seps = [os.sep, "/"] + ([os.altsep] if os.altsep else [])
    return any(sep in value for sep in seps) or value.startswith((".", "~")) or value.lower().endswith(suffixes)


def _check_path_exists(value: str, name: str, env: str, explicit: str | None, accepts: str) -> None:
    """A value that can only be a path must name something: else 'no such file or folder', with what the
    parameter takes (not, say, an architecture without weights)."""
    path = os.path.expanduser(value.removeprefix("local-dir:"))
    if (value.startswith("local-dir:") or names_a_path(value, CHECKPOINT_SUFFIXES + (".json",))) \
            and not os.path.lexists(path):
        from .errors import UsageError, shown

        where = "" if explicit else f" (from ${env})"
        raise UsageError(f"{name}={value!r}{where}: no such file or folder: {shown(path)}; {accepts}")


def resolve_model(model: str | None, pretrained: str | None) -> tuple[str, str | None]:
    """The model name and pretrained tag/file to load, after flags, environment and aliases.

    A model or pretrained value that can only be a path (names_a_path) and names nothing is refused here, as
    'no such file or folder', whatever would try to load it."""
    name = setting(model, ENV_MODEL, DEFAULT_MODEL) or DEFAULT_MODEL
    if name == DEMO_MODEL:
        return f"local-dir:{DEMO_MODEL_DIR}", None
    if not name.startswith("hf-hub:"):
        _check_path_exists(name, "model", ENV_MODEL, model, MODEL_ACCEPTS)
    explicit_name = bool(model) or bool(os.environ.get(ENV_MODEL))
    # A pretrained default only makes sense for the default architecture.
    default_tag = DEFAULT_PRETRAINED if not explicit_name or name == DEFAULT_MODEL else None
    tag = setting(pretrained, ENV_PRETRAINED, default_tag)
    if tag:
        _check_path_exists(tag, "pretrained", ENV_PRETRAINED, pretrained, PRETRAINED_ACCEPTS)
    return name, tag


def home() -> Path:
    """Where zsindex keeps its data: $ZSINDEX_HOME, else the XDG data directory."""
    explicit = os.environ.get(ENV_HOME)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "zsindex"


def default_index_dir() -> Path:
    return home() / "index"


def index_dir(value: str | os.PathLike[str] | None) -> Path:
    if value is not None and not os.fspath(value).strip():
        from .errors import UsageError

        raise UsageError("folder= is empty; give the index folder (for the current folder: '.'), or None for "
                         f"${ENV_INDEX} or the default")
    chosen = setting(str(value) if value is not None else None, ENV_INDEX, None)
    return Path(chosen).expanduser() if chosen else default_index_dir()


def db_url(value: str | None) -> str | None:
    """A database server's SQLAlchemy URL for the store (--db, then $ZSINDEX_DB); None: the index folder's SQLite."""
    return setting(value, ENV_DB, None)


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity, e.g. under taskset or a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
