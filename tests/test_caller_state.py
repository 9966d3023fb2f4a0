"""The library leaves its caller's process-wide state as it was (issue: logging.disable reset by the quantizer).

The class: logging (logging.disable, the root logger's level, handlers and
filters, every logger's settings: the logging module's functions that open_clip
and ONNX Runtime's quantizer call would configure the root logger), warning
filters, and torch's random generator. Each run starts from a new
ZSINDEX_HOME, so the model is really exported to ONNX and quantized.

Pillow's bomb guard too (issue: the library quoted Pillow's limit, PIL.Image.MAX_IMAGE_PIXELS, and leaked its
DecompressionBombWarning, where the CLI, which lifted that setting, quoted max_megapixels): every decode path
gives zsindex's message with the caller's max_megapixels, without changing the caller's Pillow setting or
warning filters, and Pillow's guard still acts on the caller's own decodes, in every other thread.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest
from PIL import Image

from .conftest import REPO, bomb_png

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


BOMB_SCRIPT = textwrap.dedent("""
    import json, sys, warnings
    from pathlib import Path
    import PIL.Image
    PIL.Image.MAX_IMAGE_PIXELS = 50_000_000  # the caller's own guard for its own decodes
    warnings.simplefilter("default")
    import zsindex
    from zsindex.embedder import load_embedder
    from zsindex.evaluate import evaluate, load_dataset

    index, photos, bombs, dataset = sys.argv[1:5]
    bomb, mid = f"{bombs}/bomb.png", f"{bombs}/mid.png"
    def state():
        return [PIL.Image.MAX_IMAGE_PIXELS, repr(warnings.filters)]
    before = state()
    messages = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every warning from any thread is recorded, none printed
        lib = zsindex.open(index, model="demo")
        lib.ingest([photos], workers=0)
        for workers in (2, 0):  # in decode threads and inline
            messages[f"ingest workers={workers}"] = [r for _, r in sorted(
                lib.ingest([bombs], workers=workers, max_megapixels=100).skipped_files)]
            lib.forget([bombs])
        messages["classify"] = [c.error for c in zsindex.classify([bomb, mid], "a,b", model="demo",
                                                                  max_megapixels=100)]
        messages["similarity"] = [zsindex.similarity([p], ["a"], model="demo", max_megapixels=100).errors[p]
                                  for p in (bomb, mid)]
        for p in (bomb, mid):
            try:
                lib.search(like=p, max_megapixels=100)
            except zsindex.UsageError as e:
                messages.setdefault("search like=", []).append(str(e))
        out = evaluate(load_embedder("demo", device="cpu"), load_dataset(Path(dataset)), None, [], None, 100)
        messages["eval"] = [r for _, r in sorted(zip(out["skipped"], out["skipped_reasons"]),
                                                 key=lambda s: "mid" in s[0])]
    zsindex_warnings = [f"{w.category.__name__}: {w.message}" for w in caught]
    after = state()
    with warnings.catch_warnings(record=True) as theirs:  # the caller's guard, on its own decode, as it was
        warnings.simplefilter("always")
        with PIL.Image.open(f"{bombs}/../caller.png"):
            pass
    try:
        with PIL.Image.open(mid):
            refused = None
    except PIL.Image.DecompressionBombError as e:
        refused = str(e)
    print(json.dumps({"before": before, "after": after, "messages": messages, "warnings": zsindex_warnings,
                      "callers_warning": [w.category.__name__ for w in theirs], "callers_refusal": refused}))
""")


def test_the_bomb_guard_is_zsindexs_with_the_callers_limit_and_pillows_setting_stays(tmp_path, world):
    photos, bombs, dataset = tmp_path / "photos", tmp_path / "bombs", tmp_path / "dataset"
    for folder in (photos, bombs, dataset / "red", dataset / "blue"):
        folder.mkdir(parents=True)
    for (path, _), folder in zip(world[:3], (photos, dataset / "red", dataset / "blue")):
        (folder / path.name).write_bytes(path.read_bytes())
    bomb_png(bombs / "bomb.png", 60000)  # 3600 MP: over Pillow's error limit
    bomb_png(bombs / "mid.png", 12000)  # 144 MP: Pillow warns at its default (89 MP), refuses at the caller's 50
    bomb_png(dataset / "red" / "bomb.png", 60000)
    bomb_png(dataset / "blue" / "mid.png", 12000)
    bomb_png(tmp_path / "caller.png", 8000)  # 64 MP: over the caller's own 50 MP guard
    done = subprocess.run([sys.executable, "-c", BOMB_SCRIPT, str(tmp_path / "index"), str(photos), str(bombs),
                           str(dataset)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert "DecompressionBomb" not in done.stderr, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["after"] == out["before"]  # MAX_IMAGE_PIXELS and the warning filters as the caller set them
    assert not [w for w in out["warnings"] if "DecompressionBomb" in w], out["warnings"]
    assert set(out["messages"]) == {"ingest workers=2", "ingest workers=0", "classify", "similarity",
                                    "search like=", "eval"}
    for path, (big, small) in out["messages"].items():
        assert "60000x60000 is 3600 MP, over the 100 MP limit (max_megapixels=MP)" in big, (path, big)
        assert "12000x12000 is 144 MP, over the 100 MP limit (max_megapixels=MP)" in small, (path, small)
        assert "MAX_IMAGE_PIXELS" not in big + small and "DOS attack" not in big + small, (path, big, small)
    assert out["callers_warning"] == ["DecompressionBombWarning"]  # Pillow's guard, in the caller's own decodes
    assert "exceeds limit of 100000000 pixels" in out["callers_refusal"]


def test_zsindexs_guard_holds_only_in_the_thread_that_decodes(tmp_path):
    """Decoding runs in threads: while one decodes under zsindex's limit, Pillow's own guard holds in the others."""
    from zsindex.images import guarded

    loud, bomb = bomb_png(tmp_path / "loud.png", 12000), bomb_png(tmp_path / "bomb.png", 60000)  # 144, 3600 MP
    inside, leave = threading.Event(), threading.Event()

    def decoding() -> None:
        with guarded(10_000):
            inside.set()
            leave.wait(30)

    thread = threading.Thread(target=decoding)
    thread.start()
    try:
        assert inside.wait(30)
        with pytest.warns(Image.DecompressionBombWarning), Image.open(loud):
            pass
        with pytest.raises(Image.DecompressionBombError), Image.open(bomb):
            pass
    finally:
        leave.set()
        thread.join()
