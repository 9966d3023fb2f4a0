"""The ONNX Runtime embedder: an open_clip model exported once per model identity, then run without torch.

Export (the only step that needs torch): both towers of the loaded open_clip
model go to ONNX (opset 18, weights in a file beside each graph) in a folder under ``$ZSINDEX_HOME/onnx``, named
by a hash of the model identity, beside the settings a run needs (image size,
normalisation, context length, logit scale) and the tokenizer's merges file.
Before the folder is kept, the exported towers are run on test inputs and
their vectors must have cosine >= 0.9999 to open_clip's own; otherwise the
export is refused. Later runs read the folder only: images are preprocessed
exactly as open_clip's eval transform does (shortest-side resize, centre
crop, normalise) with Pillow and numpy, texts are tokenized by
``clip_tokenizer``, and each tower's session is created on first use, so a
query never loads the image tower and an ingest never loads the text tower.

``precision="int8"`` runs a dynamically quantized copy of the image tower
(weights int8, activations quantized per batch), made once from the fp32
export. Text stays fp32.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import config
from .errors import ModelError, shown
from .safewrite import create_new, write_new

if TYPE_CHECKING:
    from PIL import Image

    from .embedder import ModelSource, OpenClipEmbedder

EXPORT_FORMAT = 2  # bump when the export layout or settings change: old exports are then ignored
OPSET = 18
MIN_COSINE = 0.9999
PRECISIONS = config.PRECISIONS
META = "meta.json"
MERGES = "bpe_simple_vocab_16e6.txt.gz"
CHECK_TEXTS = ("a photo of a dog", "", "A RED circle, next to a blue square!", "café ünïcode 東京 123",
               "a very long text " * 20)


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def export_dir(identity: str) -> Path:
    key = hashlib.sha256(f"{identity}|format{EXPORT_FORMAT}|opset{OPSET}".encode()).hexdigest()[:32]
    return config.home() / "onnx" / key


def read_export(identity: str) -> dict[str, Any] | None:
    """The settings of this model's export, or None when it has not been exported (or is incomplete)."""
    folder = export_dir(identity)
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
        complete = all(os.access(folder / f, os.R_OK) for f in ("image.onnx", "text.onnx", "image.onnx.data",
                                                                 "text.onnx.data"))
    except (OSError, ValueError):
        return None
    if meta.get("identity") != identity or not complete:
        return None
    return dict(meta)


# -- export (torch) -------------------------------------------------------------------------------
def unsupported(emb: "OpenClipEmbedder") -> str | None:
    """Why this model cannot run here (None when it can): only what is reimplemented without torch."""
    from ._compat import import_open_clip

    open_clip = import_open_clip()
    tok = emb._tokenizer
    if type(tok) is not open_clip.tokenizer.SimpleTokenizer or tok.reduction_fn is not None \
            or getattr(tok.clean_fn, "__name__", "") != "_clean_lower" or len(tok.all_special_ids) != 2:
        return f"its tokenizer ({type(tok).__name__}) is not CLIP's default BPE tokenizer"
    names = [type(t).__name__ for t in emb.preprocess.transforms]
    if names != ["Resize", "CenterCrop", "MaybeConvertMode", "MaybeToTensor", "Normalize"]:
        return f"its image transform ({', '.join(names)}) is not a shortest-side resize and centre crop"
    resize, crop = emb.preprocess.transforms[0], emb.preprocess.transforms[1]
    size = resize.size if isinstance(resize.size, int) else (resize.size[0] if len(resize.size) == 1 else None)
    if size is None or resize.max_size is not None or tuple(crop.size) != (size, size) \
            or resize.interpolation.value not in ("bicubic", "bilinear"):
        return "its image transform is not a square shortest-side resize and centre crop"
    return None


def _settings(emb: "OpenClipEmbedder") -> dict[str, Any]:
    resize, normalize = emb.preprocess.transforms[0], emb.preprocess.transforms[4]
    return {"identity": emb.identity, "format": EXPORT_FORMAT, "opset": OPSET, "dim": emb.dim,
            "logit_scale": emb.logit_scale, "image_size": emb.image_size,
            "interpolation": resize.interpolation.value, "mean": [float(x) for x in normalize.mean],
            "std": [float(x) for x in normalize.std], "context_length": int(emb._tokenizer.context_length)}


def _export_towers(emb: "OpenClipEmbedder", folder: Path) -> None:
    import torch

    class Tower(torch.nn.Module):  # the model as a submodule, so that its weights export as weights
        def __init__(self, model: Any, image: bool) -> None:
            super().__init__()
            self.model, self.image = model, image

        def forward(self, x: Any) -> Any:
            return self.model.encode_image(x) if self.image else self.model.encode_text(x)

    side, ctx = emb.image_size, int(emb._tokenizer.context_length)
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused attention kernel has no ONNX form
    try:
        # The exporter warns about tracing details (e.g. argmax indices used to pick the end token, which are never
        # negative); the numerical check after export is what decides whether the result is kept. Only those
        # warnings are dropped (the tracer's, and those of torch.onnx's own modules), and the filters the caller
        # had come back after: any other warning shows as the caller's filters say.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", module=r"torch\.onnx")
            warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export",
                                    category=DeprecationWarning)  # the exporter chosen here on purpose
            for module, example, name, arg in (
                    (Tower(emb._model, True), torch.zeros(2, 3, side, side), "image", "pixels"),
                    (Tower(emb._model, False), torch.zeros(2, ctx, dtype=torch.long), "text", "tokens")):
                torch.onnx.export(module.eval(), (example,), str(folder / f"{name}.onnx"), input_names=[arg],
                                  output_names=["features"], dynamic_axes={arg: {0: "n"}, "features": {0: "n"}},
                                  opset_version=OPSET, dynamo=False)
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
    _weights_beside(folder)


def _weights_beside(folder: Path) -> None:
    """Move each tower's weights to a file of their own beside the graph.

    ONNX Runtime then reads them as raw tensor data instead of parsing them
    out of one large protobuf message, which made creating the text tower's
    session (254 MB for ViT-B-32) about half of a new query's time.
    """
    import onnx

    for name in ("image", "text"):
        path = folder / f"{name}.onnx"
        model = onnx.load(str(path))
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=f"{name}.onnx.data", size_threshold=1024)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


def _check(emb: "OpenClipEmbedder", folder: Path, meta: dict[str, Any]) -> dict[str, float]:
    """Run the exported towers beside open_clip; refuse the export unless they agree."""
    import torch

    from .clip_tokenizer import ClipTokenizer

    rng = np.random.default_rng(0)
    pixels = rng.standard_normal((4, 3, emb.image_size, emb.image_size)).astype(np.float32)
    ours = ClipTokenizer(folder / MERGES, meta["context_length"])(CHECK_TEXTS)
    theirs = emb._tokenizer(list(CHECK_TEXTS)).numpy()
    if not np.array_equal(ours, theirs):
        raise ModelError("the exported model's tokenizer does not give open_clip's token ids; use runtime=torch")
    with torch.no_grad():
        want_img = emb._model.encode_image(torch.from_numpy(pixels)).float().numpy()
        want_txt = emb._model.encode_text(torch.from_numpy(theirs)).float().numpy()
    runner = OnnxTowers(folder, "fp32")
    got = {"image": _cosines(runner.image([lambda: pixels]), want_img), "text": _cosines(runner.text(ours), want_txt)}
    worst = {k: float(v.min()) for k, v in got.items()}
    if min(worst.values()) < MIN_COSINE:
        raise ModelError(f"the ONNX export of {emb.name} disagrees with open_clip (cosine {worst}, "
                         f"needs >= {MIN_COSINE}); use runtime=torch")
    return worst


def _refusal_file(identity: str) -> Path:
    return export_dir(identity).with_suffix(".refused")


def refused(identity: str) -> str | None:
    """Why an earlier export of this model was refused, so that auto does not try again every run."""
    try:
        return _refusal_file(identity).read_text(encoding="utf-8")
    except OSError:
        return None


def export(emb: "OpenClipEmbedder") -> dict[str, Any]:
    """Export, check and keep this model's towers; returns the export's settings."""
    try:
        return _export(emb)
    except ModelError as e:
        try:
            _refusal_file(emb.identity).parent.mkdir(parents=True, exist_ok=True)
            write_new(_refusal_file(emb.identity), str(e))  # replaced, never written through a link
        except OSError:
            pass
        raise


def _export(emb: "OpenClipEmbedder") -> dict[str, Any]:
    from .clip_tokenizer import shipped_merges

    reason = unsupported(emb)
    if reason:
        raise ModelError(f"runtime=onnx cannot run {emb.name}: {reason}; use runtime=torch")
    final = export_dir(emb.identity)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        started = time.perf_counter()
        meta = _settings(emb)
        shutil.copyfile(shipped_merges(), tmp / MERGES)
        _export_towers(emb, tmp)
        meta["check_min_cosine"] = _check(emb, tmp, meta)
        meta["export_seconds"] = round(time.perf_counter() - started, 1)
        (tmp / META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        try:
            os.rename(tmp, final)
        except OSError:  # another process exported it first (or a stale copy is there): keep that one
            if read_export(emb.identity) is None:
                shutil.rmtree(final, ignore_errors=True)
                os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    found = read_export(emb.identity)
    if found is None:
        raise ModelError(f"could not keep the ONNX export of {emb.name} in {shown(final)}")
    return found


def quantized_image_tower(folder: Path) -> Path:
    """The int8 image tower, made from the fp32 one on first use (dynamic quantization, needs onnx)."""
    target = folder / "image.int8.onnx"
    if target.is_file():
        return target
    from onnxruntime import quantization
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from .logstate import drop_records_from

    tmp = folder / f".image.int8.{os.getpid()}.onnx"
    os.close(create_new(tmp))  # a stale file or link of that name is removed; onnx writes the new file by name
    try:
        with drop_records_from(quantization.__file__):  # its advice to pre-process the graph: only that
            quantize_dynamic(str(folder / "image.onnx"), str(tmp), weight_type=QuantType.QInt8)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _optimized_session(ort: Any, path: Path, options: Any) -> Any:
    """A session on the graph as ONNX Runtime optimizes it, saved beside the export on first use.

    A saved optimized graph (fused operators, folded constants) loads about twice as fast as
    the exported one, which is most of a new query's time. It is saved at the "extended" level,
    which does not depend on the CPU (ONNX Runtime's layout changes of the "all" level do), and
    written into a private folder first, then moved into place, data before graph, so that a
    reader never sees half of it. Where the folder cannot be written, the export itself is run.
    """
    saved = path.with_name(path.stem + ".opt.onnx")
    if saved.is_file():
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return ort.InferenceSession(str(saved), options, providers=["CPUExecutionProvider"])
    try:
        scratch = Path(tempfile.mkdtemp(prefix=".opt-", dir=path.parent))
    except OSError:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    try:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(scratch / saved.name)
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name",
                                         saved.name + ".data")
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for name in (saved.name + ".data", saved.name):
            if (scratch / name).is_file():
                os.replace(scratch / name, saved.parent / name)
        return session
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# -- run (no torch) -------------------------------------------------------------------------------
def image_lanes() -> int:
    """How many image batches run at once: one per core this process may use, each on one thread."""
    return max(1, min(8, config.usable_cores()))


class OnnxTowers:
    """The two exported towers, each session created on first use.

    The image tower runs in *lanes*: its session is single-threaded and a batch
    is split into one part per core, run side by side (ONNX Runtime releases
    the GIL). On a small machine that is much cheaper than one run spread over
    every core, whose many per-operator synchronisations stall whenever a
    decode thread holds a core (measured on 2 cores, int8: 0.050 against 0.058
    CPU seconds per image for the tower alone, and no stalls). The text tower
    keeps ONNX Runtime's own threads: a query is one short sequence.

    The int8 tower quantizes its activations with one scale per run, taken from
    the whole input, so a batch would make an image's vector depend on the
    other images in it. It therefore runs one image at a time (about a fifth
    slower than batches of 4 on one thread), and a file gets the same vector
    whether it is ingested, classified alone or embedded in any other batch.
    """

    def __init__(self, folder: Path, precision: str, lanes: int | None = None) -> None:
        self.folder, self.precision = folder, precision
        self.lanes = lanes or image_lanes()
        self._sessions: dict[str, Any] = {}

    def _session(self, name: str) -> Any:
        if name not in self._sessions:
            from . import warm

            prepared = warm.take(self.folder) if name == "text" else None  # started early by the CLI
            self._sessions[name] = prepared if prepared is not None else self.create_session(name)
        return self._sessions[name]

    def create_session(self, name: str) -> Any:
        import onnxruntime as ort

        path = self.folder / f"{name}.onnx"
        if name == "image" and self.precision == "int8":
            path = quantized_image_tower(self.folder)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initializers are noise here
        if name == "image":
            options.intra_op_num_threads = 1
        return _optimized_session(ort, path, options)

    def image(self, parts: Sequence[Any]) -> np.ndarray:
        """Embed the parts side by side; each part is a callable giving a (n, 3, size, size) array."""
        session = self._session("image")

        def run(part: Any) -> np.ndarray:
            pixels = part()
            if self.precision == "int8":  # one image per run: see the class docstring
                return np.concatenate([session.run(None, {"pixels": pixels[i:i + 1]})[0] for i in range(len(pixels))])
            return session.run(None, {"pixels": pixels})[0]

        if len(parts) == 1:
            return run(parts[0])
        from concurrent.futures import ThreadPoolExecutor

        # Threads for this batch only (cheap next to a model run): none outlives the call.
        with ThreadPoolExecutor(len(parts), thread_name_prefix="zsindex-embed") as pool:
            return np.concatenate(list(pool.map(run, parts)))

    def text(self, tokens: np.ndarray) -> np.ndarray:
        return self._session("text").run(None, {"tokens": tokens})[0]


def preprocess(im: "Image.Image", size: int, interpolation: str, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """open_clip's eval transform with Pillow and numpy: (3, size, size) float32, the same values."""
    from PIL import Image

    w, h = im.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    new = (size, new_long) if w <= h else (new_long, size)
    if new != (w, h):
        resample = Image.Resampling.BICUBIC if interpolation == "bicubic" else Image.Resampling.BILINEAR
        im = im.resize(new, resample)
    w, h = im.size
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    im = im.crop((left, top, left + size, top + size))
    if im.mode != "RGB":
        im = im.convert("RGB")
    arr = np.asarray(im, dtype=np.float32) / np.float32(255)
    return ((arr - mean) / std).transpose(2, 0, 1)


class OnnxEmbedder:
    """The Embedder protocol on ONNX Runtime, from an export folder."""

    runtime = "onnx"

    def __init__(self, identity: str, meta: dict[str, Any], precision: str = "fp32",
                 batch_size: int = config.DEFAULT_BATCH_SIZE) -> None:
        if precision not in PRECISIONS:
            raise ModelError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        self.identity = identity
        self.folder = export_dir(identity)
        self.precision = precision
        self.batch_size = batch_size
        self.dim = int(meta["dim"])
        self.logit_scale = float(meta["logit_scale"])
        self.image_size = int(meta["image_size"])
        self.name: str = identity
        self.pretrained: str | None = None
        self._meta = meta
        self._mean = np.asarray(meta["mean"], np.float32)
        self._std = np.asarray(meta["std"], np.float32)
        self._towers = OnnxTowers(self.folder, precision)
        self._tokenizer: Any = None
        self.image_calls = 0
        self.text_calls = 0

    def embed_images(self, images: Sequence["Image.Image"]) -> np.ndarray:
        self.image_calls += 1
        out = []
        for i in range(0, len(images), self.batch_size):
            chunk = images[i:i + self.batch_size]
            # One part per lane, at least 4 images each; preprocessing runs in the lane too.
            n = max(1, min(self._towers.lanes, len(chunk) // 4))
            bounds = np.linspace(0, len(chunk), n + 1).astype(int)
            parts = [functools.partial(self._pixels, chunk[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
            out.append(_unit(self._towers.image(parts)))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def _pixels(self, images: Sequence["Image.Image"]) -> np.ndarray:
        return np.stack([preprocess(im, self.image_size, self._meta["interpolation"], self._mean, self._std)
                         for im in images])

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.text_calls += 1
        if self._tokenizer is None:
            from .clip_tokenizer import ClipTokenizer

            self._tokenizer = ClipTokenizer(self.folder / MERGES, int(self._meta["context_length"]))
        step = max(self.batch_size, 256)
        out = [_unit(self._towers.text(self._tokenizer(list(texts[i:i + step])))) for i in range(0, len(texts), step)]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32, copy=False)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def load(source: "ModelSource", torch_loader: Any, precision: str, batch_size: int) -> OnnxEmbedder:
    """The ONNX embedder for this model: from its export, made first (with torch_loader()) if there is none."""
    meta = read_export(source.identity)
    if meta is None:
        meta = export(torch_loader())
    return OnnxEmbedder(source.identity, meta, precision, batch_size)
