"""The Embedder protocol and its open_clip implementation.

torch and open_clip are imported only when a model is loaded, so that the CLI
and the rest of the package stay fast to import.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlparse

import numpy as np

from . import config
from .errors import ModelError, ModelMismatchError, ModelUnavailableError, UsageError, shown
from .filehash import cached_sha256, sha256_file  # noqa: F401 - sha256_file kept importable from here
from .logstate import root_logging_kept

if TYPE_CHECKING:
    from PIL import Image


class Embedder(Protocol):
    """Maps images and texts into one space; rows are unit-length float32."""

    identity: str
    dim: int
    logit_scale: float
    image_size: int  # the short side the model looks at; decoders need no more

    def embed_images(self, images: Sequence["Image.Image"]) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class ModelSource:
    """Where a model's config and weights come from, and its stable identity."""

    model: str  # what open_clip's create_model gets as model_name
    pretrained: str | None  # tag, checkpoint path, "random" or None
    identity: str
    hub_files: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (repo, candidate filenames) fetched from the hub
    url: str | None = None  # a direct download URL (older open_clip tags)
    config_file: str | None = None  # an architecture JSON to register with open_clip first

    @property
    def needs_download(self) -> bool:
        return bool(self.hub_files or self.url)


WEIGHT_FILES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
)
RANDOM = "random"  # untrained weights: only for benchmarks, where cost is what is measured


def _find_weights(folder: Path) -> Path:
    for name in WEIGHT_FILES + ("model.safetensors", "pytorch_model.bin", "model.pth"):
        if (folder / name).is_file():
            return folder / name
    found = sorted(p for ext in ("*.safetensors", "*.bin", "*.pth", "*.pt") for p in folder.glob(ext))
    if not found:
        raise ModelError(f"{shown(folder)} has open_clip_config.json but no weights file (.safetensors, .bin, .pt)")
    return found[0]


def resolve_source(model: str, pretrained: str | None, check_tag: bool = True) -> ModelSource:
    """Work out what to load without loading it (no torch needed).

    With ``check_tag=False`` a pretrained tag is taken as given instead of being
    looked up in open_clip (which imports torch); loading checks it later.
    """
    if model.startswith("local-dir:") or (not model.startswith("hf-hub:") and Path(model).is_dir()):
        folder = Path(model.removeprefix("local-dir:")).expanduser()
        if not (folder / "open_clip_config.json").is_file():
            raise ModelError(f"{shown(folder)} is not an open_clip model folder: it has no open_clip_config.json")
        return ModelSource(f"local-dir:{folder}", None, f"sha256:{cached_sha256(_find_weights(folder))}")
    if model.startswith("hf-hub:"):
        repo = model.removeprefix("hf-hub:")
        return ModelSource(model, None, model, hub_files=((repo, ("open_clip_config.json",)), (repo, WEIGHT_FILES)))
    config_file = None
    if model.endswith(".json") and Path(model).expanduser().is_file():
        config_file = str(Path(model).expanduser())
        model = Path(model).stem
    if pretrained and pretrained != RANDOM and Path(pretrained).expanduser().is_file():
        path = Path(pretrained).expanduser()
        return ModelSource(model, str(path), f"sha256:{cached_sha256(path)}", config_file=config_file)
    if config_file:
        raise ModelError(f"model={config_file} is an architecture file; give its weights with pretrained=PATH")
    if not pretrained:
        raise untrained_error(model)
    if pretrained == RANDOM:  # asked for by name: untrained weights, for benchmarks
        return ModelSource(model, RANDOM, f"{model}/{RANDOM}")
    if not check_tag:
        return ModelSource(model, pretrained, f"{model}/{pretrained}")
    return _tag_source(model, pretrained)


def has_weights(model: str, pretrained: str | None) -> bool:
    """False for an open_clip architecture name given without weights (no pretrained tag or file): open_clip
    would build it with random weights, and every score would be noise. Needs no torch (no lookup)."""
    if pretrained or model.startswith(("local-dir:", "hf-hub:")) or model.endswith(".json"):
        return True
    return Path(model).expanduser().is_dir()


def untrained_error(model: str) -> ModelError:
    """The refusal of an architecture given without weights, naming its pretrained tags and the other ways."""
    try:
        from ._compat import import_open_clip

        tags = list(import_open_clip().list_pretrained_tags_by_model(model))
    except Exception:  # noqa: BLE001 - the message is still right without the list
        tags = []
    known = (f"its pretrained tags: {', '.join(tags)}" if tags else
             f"open_clip knows no pretrained tag of {model!r}; check the name (open_clip.list_models())")
    return ModelError(
        f"model {model!r} names an architecture without weights, and would run with random weights; give "
        f"them with pretrained=TAG ({known}), a checkpoint file (pretrained=/path/to/weights.pt), or name a "
        f"model with weights (model='hf-hub:ORG/NAME', a model folder, or model='demo')")


def check_weights(model: str | None, pretrained: str | None) -> None:
    """Refuse, before anything is loaded, downloaded or written, a chosen model that has no weights."""
    name, tag = config.resolve_model(model, pretrained)
    if not has_weights(name, tag):
        raise untrained_error(name)


def check_obtainable(model: str | None, pretrained: str | None, runtime: str | None = None,
                     device: str | None = None) -> None:
    """Refuse, without loading anything, a model load_embedder could not load here: no weights at all, or
    weights neither on this machine nor downloadable (ModelUnavailableError). An ONNX export made before
    needs no weights."""
    check_weights(model, pretrained)
    name, tag = config.resolve_model(model, pretrained)
    if pick_runtime(runtime, device) == "onnx":
        from . import runtime_onnx

        if runtime_onnx.read_export(resolve_source(name, tag, check_tag=False).identity) is not None:
            return
    check_available(resolve_source(name, tag))


def _tag_source(model: str, tag: str) -> ModelSource:
    from ._compat import import_open_clip

    open_clip = import_open_clip()
    cfg = open_clip.get_pretrained_cfg(model, tag)
    if not cfg:
        known = ", ".join(open_clip.list_pretrained_tags_by_model(model)) or "none"
        raise ModelError(
            f"{tag!r} is neither a pretrained tag of {model} nor a checkpoint file. "
            f"Known tags: {known}. Pass a file path with pretrained=PATH."
        )
    hub = cfg.get("hf_hub", "")
    if hub:
        # open_clip writes hub entries as 'org/name/' (default weights file) or 'org/name/file'.
        repo, filename = os.path.split(hub)
        names = (filename,) if filename else ("open_clip_pytorch_model.bin", "open_clip_model.safetensors")
        return ModelSource(model, tag, f"{model}/{tag}", hub_files=((repo, names),))
    return ModelSource(model, tag, f"{model}/{tag}", url=cfg.get("url") or None)


def _hub_cached(repo: str, names: Sequence[str]) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo, n), str) for n in names)


def _url_cached(url: str) -> bool:
    return (Path.home() / ".cache" / "clip" / os.path.basename(urlparse(url).path)).is_file()


_reachable: dict[str, bool] = {}


def _reachable_host(url: str, timeout: float = 3.0) -> bool:
    """One quick TCP connect: tells 'offline' apart in seconds, not minutes of retries."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80)
    if host not in _reachable:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            _reachable[host] = True
        except OSError:
            _reachable[host] = False
    return _reachable[host]


def _hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def _env_offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def check_available(source: ModelSource) -> bool:
    """Raise ModelUnavailableError fast if weights are neither cached nor downloadable.

    Returns True when loading must run offline (weights cached, network absent).
    """
    if not source.needs_download:
        return False
    cached = all(_hub_cached(repo, names) for repo, names in source.hub_files) and (
        source.url is None or _url_cached(source.url)
    )
    offline = _env_offline() or not _reachable_host(source.url or _hub_endpoint())
    if offline and not cached:
        host = urlparse(source.url or _hub_endpoint()).hostname
        why = "HF_HUB_OFFLINE is set" if _env_offline() else f"{host} cannot be reached"
        asked = source.model + (f" (pretrained={source.pretrained})" if source.pretrained else "")
        raise ModelUnavailableError(
            f"model {asked} is not on this machine and cannot be downloaded ({why}). "
            "Copy the weights here and use them locally: model=ARCH pretrained=/path/to/checkpoint.pt, "
            "or model=/path/to/folder (with open_clip_config.json and weights), "
            "or set HF_HUB_CACHE to a Hugging Face cache that holds it. "
            "To try zsindex without any download, use model=demo."
        )
    return offline


@contextlib.contextmanager
def _hub_offline(enabled: bool) -> Iterator[None]:
    """Make huggingface_hub use its cache without asking the network.

    huggingface_hub reads HF_HUB_OFFLINE once, at import, into a module
    constant; setting the environment variable later has no effect, so the
    constant is switched for the duration of the load.
    """
    if not enabled:
        yield
        return
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def pick_device(device: str | None = None) -> str:
    chosen = config.setting(device, config.ENV_DEVICE, "auto")
    if chosen != "auto":
        return str(chosen)
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


class OpenClipEmbedder:
    """An open_clip model behind the Embedder protocol."""

    runtime = "torch"
    precision = "fp32"
    images_refused: str | None = None  # why this model may not embed images for the index at hand

    def __init__(self, source: ModelSource, device: str, batch_size: int = config.DEFAULT_BATCH_SIZE) -> None:
        offline = check_available(source)  # before importing torch: weights that cannot be had fail in a moment
        import torch

        from ._compat import import_open_clip

        open_clip = import_open_clip()
        started = time.perf_counter()
        try:
            if source.config_file:
                open_clip.add_model_config(source.config_file)
            # torch's random generator as the caller left it (untrained weights are drawn from a seed of
            # their own); open_clip's logging.info(...) calls leave the root logger unconfigured (logstate.py).
            with _hub_offline(offline), torch.random.fork_rng(devices=[]), root_logging_kept():
                if source.pretrained == RANDOM:
                    torch.manual_seed(0)  # untrained weights, but the same ones every time
                model, _, preprocess = open_clip.create_model_and_transforms(
                    source.model, pretrained=None if source.pretrained == RANDOM else source.pretrained, device=device
                )
                self._tokenizer = open_clip.get_tokenizer(source.model)
        except ModelError:
            raise
        except Exception as e:  # open_clip raises bare RuntimeError/ValueError/OSError
            raise ModelError(f"could not load model {source.model}: {e}") from e
        model.eval()
        self._torch = torch
        self._model = model
        self.preprocess = preprocess
        self.source = source
        self.name: str = source.model
        self.pretrained: str | None = source.pretrained
        self.identity = source.identity
        self.device = device
        self.batch_size = batch_size
        self.logit_scale = float(model.logit_scale.exp().item())
        size = getattr(model.visual, "image_size", 224)
        self.image_size = int(max(size) if isinstance(size, (tuple, list)) else size)
        self.load_seconds = time.perf_counter() - started
        self.image_calls = 0
        self.text_calls = 0
        self.dim = 0
        self.dim = int(self.embed_texts([""]).shape[1])  # every architecture answers this the same way
        self.text_calls = 0

    def _finish(self, features: Any) -> np.ndarray:
        features = features.float()
        features = features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return features.cpu().numpy().astype(np.float32, copy=False)

    def embed_pixels(self, pixels: Any) -> np.ndarray:
        """Embed a preprocessed (N, 3, H, W) tensor in batches."""
        if self.images_refused:
            raise ModelMismatchError(self.images_refused)
        self.image_calls += 1
        out = []
        with self._torch.inference_mode():
            for i in range(0, len(pixels), self.batch_size):
                batch = pixels[i : i + self.batch_size].to(self.device)
                out.append(self._finish(self._model.encode_image(batch)))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def embed_images(self, images: Sequence["Image.Image"]) -> np.ndarray:
        if self.images_refused:
            raise ModelMismatchError(self.images_refused)
        if not images:
            return np.zeros((0, self.dim), np.float32)
        return self.embed_pixels(self._torch.stack([self.preprocess(im) for im in images]))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.text_calls += 1
        out = []
        with self._torch.inference_mode():
            for i in range(0, len(texts), max(self.batch_size, 256)):
                tokens = self._tokenizer(list(texts[i : i + max(self.batch_size, 256)])).to(self.device)
                out.append(self._finish(self._model.encode_text(tokens)))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


def images_refused(precision: str | None, index_precision: str | None, runtime: str) -> str | None:
    """Why a model run on ``runtime`` may not embed images into an index whose image vectors were made at
    ``index_precision`` (None: it may). Texts are fp32 on every runtime, so only images are refused."""
    if precision is None and index_precision not in (None, "fp32") and runtime != "onnx":
        return (f"this index holds {index_precision} image vectors, made on ONNX Runtime; the {runtime} runtime "
                f"chosen here makes fp32 ones, which would not match them. Use runtime=onnx (on the CPU) to embed "
                f"images into this index; text queries and tagging work with either runtime.")
    return None


def chosen_model(model: str | None = None, pretrained: str | None = None) -> tuple[str, str, str | None]:
    """(identity, name as the user gave it, pretrained) of the model that would be loaded, without loading it.

    A checkpoint's hash comes from the file-hash cache while the file is
    unchanged; a pretrained tag is not checked here (loading checks it).
    """
    name, tag = config.resolve_model(model, pretrained)
    source = resolve_source(name, tag, check_tag=False)
    return source.identity, config.setting(model, config.ENV_MODEL, config.DEFAULT_MODEL) or name, tag


def pick_runtime(runtime: str | None = None, device: str | None = None) -> str:
    """onnx or torch: flag > ZSINDEX_RUNTIME > auto (ONNX Runtime on the CPU when it is installed)."""
    chosen = config.setting(runtime, config.ENV_RUNTIME, "auto")
    if chosen not in config.RUNTIMES:
        raise UsageError(f"runtime= must be one of {', '.join(config.RUNTIMES)}, not {chosen!r}")
    if chosen != "auto":
        return str(chosen)
    if config.setting(device, config.ENV_DEVICE, "auto") not in ("auto", "cpu"):
        return "torch"  # a GPU was asked for: only torch runs there
    from .runtime_onnx import available

    return "onnx" if available() else "torch"


def _load_onnx(name: str, tag: str | None, batch_size: int, precision: str | None, strict: bool) -> Any:
    """The ONNX embedder, exporting the model first if needed; the torch model where auto cannot export it.

    Without a chosen precision the image tower runs in int8 (``config.DEFAULT_ONNX_PRECISION``; its
    drift is measured in the README), and a model that cannot be exported runs on torch in fp32.
    """
    from . import runtime_onnx

    quick = resolve_source(name, tag, check_tag=False)
    meta = runtime_onnx.read_export(quick.identity)
    if meta is None:
        reason = runtime_onnx.refused(quick.identity)
        if reason and not strict:  # auto, refused before: torch, unless a precision only ONNX has was asked for
            if precision in (None, "fp32"):
                return None
            raise ModelError(f"cannot run {name} on ONNX Runtime: {reason}")
        torch_model = OpenClipEmbedder(resolve_source(name, tag), "cpu", batch_size)
        try:
            meta = runtime_onnx.export(torch_model)
        except (ModelError, OSError) as e:  # refused, or no writable ZSINDEX_HOME to keep the export in
            if strict or precision not in (None, "fp32"):
                raise ModelError(f"cannot run {name} on ONNX Runtime: {e}") from e
            return torch_model  # auto: this model runs on torch
        del torch_model
    return runtime_onnx.OnnxEmbedder(quick.identity, meta, precision or config.DEFAULT_ONNX_PRECISION, batch_size)


def load_embedder(
    model: str | None = None,
    pretrained: str | None = None,
    device: str | None = None,
    batch_size: int = config.DEFAULT_BATCH_SIZE,
    runtime: str | None = None,
    precision: str | None = None,
    index_precision: str | None = None,
) -> Any:
    """Load an open_clip model: flag > ZSINDEX_MODEL/ZSINDEX_PRETRAINED > default.

    ``model`` may be a built-in architecture (with ``pretrained`` a tag or a
    checkpoint file), ``hf-hub:org/name``, ``local-dir:PATH``, a folder holding
    ``open_clip_config.json`` and weights, or ``demo`` for the shipped model.
    ``runtime`` is onnx (the model exported once and cached), torch (open_clip
    itself) or auto; ``precision`` int8 (image tower only) needs onnx.

    ``index_precision`` is what an existing index's image vectors were made
    at, used when no precision is asked for. A runtime that cannot make image
    vectors at that precision (torch, for an int8 index: chosen by runtime=, by
    a GPU device=, or where ONNX Runtime is missing) still embeds texts, which
    are fp32 either way, but refuses images: they would not match the index.
    """
    with root_logging_kept():  # open_clip, torch's exporter and ONNX Runtime's quantizer log through logging.info()
        return _load(model, pretrained, device, batch_size, runtime, precision, index_precision)


def _load(model: str | None, pretrained: str | None, device: str | None, batch_size: int, runtime: str | None,
          precision: str | None, index_precision: str | None) -> Any:
    name, tag = config.resolve_model(model, pretrained)
    chosen = pick_runtime(runtime, device)
    if precision is not None and precision not in config.PRECISIONS:
        raise UsageError(f"precision= must be one of {', '.join(config.PRECISIONS)}, not {precision!r}")
    if precision not in (None, "fp32") and chosen != "onnx":
        raise UsageError(f"precision={precision} runs on ONNX Runtime only; use runtime=onnx")
    embedder = None
    if chosen == "onnx":
        embedder = _load_onnx(name, tag, batch_size, precision or index_precision, strict=config.setting(
            runtime, config.ENV_RUNTIME, "auto") == "onnx")
    if embedder is None:
        embedder = OpenClipEmbedder(resolve_source(name, tag), pick_device(device), batch_size)
        embedder.images_refused = images_refused(precision, index_precision, "torch")
        if embedder.images_refused and index_precision is not None:
            embedder.precision = index_precision  # the index's: its texts match, its images would not
    # What the user calls it ("demo", "ViT-B-32"): recorded in an index so the same model is found again.
    embedder.name = str(config.setting(model, config.ENV_MODEL, config.DEFAULT_MODEL) or name)
    embedder.pretrained = tag
    return embedder
