"""The one place that works around a broken torchvision install.

On machines that have the CPU build of torch next to a torchvision wheel whose
compiled ops were built for CUDA, torchvision's ``_C`` library fails to load
and ``import torchvision`` (and therefore ``import open_clip``) raises
``operator torchvision::nms does not exist``: torchvision registers Python
"fake" kernels for ops whose schemas only its C library defines. open_clip
needs only torchvision's pure-Python transforms, so when (and only when) the
ops are missing we define the two schemas torchvision looks up at import time.
Calling the ops would still fail, which is the honest outcome.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_MISSING_OPS = {
    "torchvision::nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "torchvision::qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_patched: bool | None = None


def _has_schema(torch, name: str) -> bool:  # type: ignore[no-untyped-def]
    return bool(torch._C._jit_get_schemas_for_operator(name))


def _load_native_ops(torch) -> bool:  # type: ignore[no-untyped-def]
    """Try to load torchvision's compiled ops the way torchvision would."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    for lib in sorted(Path(spec.submodule_search_locations[0]).glob("_C*.so")):
        try:
            torch.ops.load_library(str(lib))
        except (OSError, RuntimeError):
            return False
        return _has_schema(torch, "torchvision::nms")
    return False


def ensure_torchvision_importable() -> bool:
    """Make ``import torchvision`` work; return True if the schemas were defined here."""
    global _patched
    if _patched is not None:
        return _patched
    import torch

    _patched = False
    if "torchvision" in sys.modules or _has_schema(torch, "torchvision::nms") or _load_native_ops(torch):
        return _patched
    for name, schema in _MISSING_OPS.items():
        if not _has_schema(torch, name):
            torch.library.define(name, schema)
    _patched = True
    return _patched


def import_open_clip():  # type: ignore[no-untyped-def]
    """Import open_clip after making torchvision importable; every zsindex import of it goes here."""
    ensure_torchvision_importable()
    import open_clip

    return open_clip
