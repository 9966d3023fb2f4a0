"""The library leaves its caller's process-wide state as it was (issue: logging.disable reset by the quantizer).

The class: logging (logging.disable, the root logger's level, handlers and
filters, every logger's settings: the logging module's functions that open_clip
and ONNX Runtime's quantizer call would configure the root logger), warning
filters, and torch's random generator. Each run starts from a new
ZSINDEX_HOME, so the model is really exported to ONNX and quantized.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from .conftest import REPO

SCRIPT = textwrap.dedent("""
    import json, logging, sys, warnings
    caller_handler = sys.argv[3] == "handler"
    records = []
    if caller_handler:  # a caller that logs everything through a handler of its own
        class Keep(logging.Handler):
            def emit(self, record):
                records.append([record.name, record.pathname, record.getMessage()])
        logging.getLogger().addHandler(Keep())
        logging.getLogger().setLevel(logging.DEBUG)
    else:
        logging.disable(logging.INFO)  # the caller's switch: zsindex must leave it on
    logging.getLogger("app").setLevel(logging.ERROR)
    # third-party modules add warning filters when imported: import them first, then compare
    import torch, torch.onnx, onnxruntime.quantization
    from zsindex._compat import import_open_clip
    import_open_clip()
    import zsindex

    def state():
        root = logging.getLogger()
        loggers = {name: [lg.level, lg.propagate, lg.disabled, len(lg.handlers), len(lg.filters)]
                   for name, lg in logging.root.manager.loggerDict.items() if isinstance(lg, logging.Logger)}
        return {"disable": root.manager.disable, "root": [root.level, [repr(h) for h in root.handlers],
                len(root.filters)], "loggers": loggers, "warnings": [repr(f) for f in warnings.filters],
                "rng": torch.random.get_rng_state().tolist()[:64]}

    before = state()
    lib = zsindex.open(sys.argv[1], model="demo")
    lib.ingest([sys.argv[2]], workers=0)  # exports the demo model to ONNX and quantizes its image tower
    lib.search("a red circle")
    zsindex.load_embedder("ViT-B-32", pretrained="random", runtime="torch")  # seeds its own weights
    after = state()
    after["loggers"] = {k: v for k, v in after["loggers"].items() if k in before["loggers"]}
    print(json.dumps({"before": before, "after": after, "records": records}))
""")


def _run(tmp_path, world, mode: str) -> dict:
    home = tmp_path / f"home-{mode}"
    photos = tmp_path / "photos"
    photos.mkdir(exist_ok=True)
    for path, _ in world[:3]:
        (photos / path.name).write_bytes(path.read_bytes())
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / f"index-{mode}"), str(photos), mode],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO), "ZSINDEX_HOME": str(home)})
    assert done.returncode == 0, done.stderr
    assert list(home.glob("onnx/*/image.int8.onnx")), "the quantizer did not run"
    return json.loads(done.stdout.splitlines()[-1])


def test_the_library_leaves_logging_warnings_and_random_state_as_the_caller_set_them(tmp_path, world):
    out = _run(tmp_path, world, "disable")
    assert out["after"]["disable"] == out["before"]["disable"] == 20  # logging.disable(logging.INFO) kept
    assert out["after"] == out["before"]


def test_a_callers_own_handler_gets_every_record_but_the_quantizers_advice(tmp_path, world):
    out = _run(tmp_path, world, "handler")
    assert out["after"] == out["before"]
    assert not [r for r in out["records"] if "onnxruntime" in r[1] and "quantization" in r[1]], out["records"]
    assert any(r[1].endswith(os.path.join("open_clip", "factory.py")) for r in out["records"])  # open_clip's own
