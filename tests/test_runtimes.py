"""Both runtimes give open_clip's zero-shot scores; the ONNX export is made once, checked, and needs no torch."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zsindex import runtime_onnx
from zsindex.clip_tokenizer import ClipTokenizer, shipped_merges
from zsindex.embedder import OpenClipEmbedder, load_embedder
from zsindex.errors import ModelError, ModelMismatchError
from zsindex.images import load_pixels
from zsindex.labels import DEFAULT_TEMPLATES
from zsindex.library import Library, classify

from .conftest import REPO
from .test_ingest import draw

TEXTS = ["a photo of a dog", "", "   ", "A RED Circle!!", "it's o'clock, they'll've", "café ÜNÏCODE 東京 ½ 123",
         "&amp;lt; html &quot;x&quot;", "<start_of_text> and <end_of_text>", "tab\tnew\nline", "ﬁ ligature",
         "word " * 100, "🙂 emoji 🙃🙃", "a\u00a0b\u200bc", "x" * 300]


@pytest.fixture(scope="module")
def torch_demo() -> OpenClipEmbedder:
    return load_embedder("demo", runtime="torch")


@pytest.mark.parametrize("context", [77, 32])
def test_tokenizer_gives_open_clip_ids(context):
    from zsindex._compat import import_open_clip

    theirs = import_open_clip().tokenizer.SimpleTokenizer(context_length=context)
    ours = ClipTokenizer(shipped_merges(), context)
    assert np.array_equal(ours(TEXTS), theirs(TEXTS).numpy())


@functools.lru_cache(maxsize=1)
def tokenizer_pair() -> tuple:
    from zsindex._compat import import_open_clip

    return ClipTokenizer(shipped_merges(), 32), import_open_clip().tokenizer.SimpleTokenizer(context_length=32)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(max_size=60), min_size=1, max_size=4))
def test_tokenizer_gives_open_clip_ids_for_any_text(texts):
    ours, theirs = tokenizer_pair()
    assert np.array_equal(ours(texts), theirs(texts).numpy())


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_zero_shot_scores_equal_open_clip_classifier(runtime, torch_demo, world):
    """open_clip's build_zero_shot_classifier on its own model, against zsindex classify on each runtime."""
    import torch

    from zsindex._compat import import_open_clip

    open_clip = import_open_clip()
    names = ["red circle", "blue square", "green triangle", "yellow star", "purple circle"]
    paths = [p for p, _ in world[:12]]
    model, preprocess = torch_demo._model, torch_demo.preprocess
    with torch.no_grad():
        weights = open_clip.build_zero_shot_classifier(model, torch_demo._tokenizer, names, DEFAULT_TEMPLATES)
        pixels = torch.stack([preprocess(load_pixels(p, torch_demo.image_size)) for p in paths])
        feats = model.encode_image(pixels, normalize=True)
        want = (model.logit_scale.exp() * feats @ weights).softmax(dim=-1).numpy()
    emb = load_embedder("demo", runtime=runtime, precision="fp32")
    assert emb.runtime == runtime
    got = classify(paths, names, embedder=emb)
    for row, result in zip(want, got):
        scores = {s.label: s.score for s in result.labels}
        assert np.allclose([scores[n] for n in names], row, atol=1e-5, rtol=0)


def test_onnx_export_is_made_once_and_ingest_and_query_run_without_torch(torch_demo, tmp_path):
    emb = load_embedder("demo", runtime="onnx")
    folder = runtime_onnx.export_dir(emb.identity)
    meta = runtime_onnx.read_export(emb.identity)
    assert meta is not None and min(meta["check_min_cosine"].values()) >= runtime_onnx.MIN_COSINE
    stamp = (folder / "image.onnx").stat().st_mtime_ns
    draw(tmp_path / "photos", ["red-circle", "blue-square"])
    code = ("import sys\nfrom zsindex.library import Library\n"
            "lib = Library(sys.argv[1], model='demo')\nlib.ingest([sys.argv[2]], workers=0)\n"
            "hits = lib.search('a red circle')\n"
            "heavy = sorted(m for m in ('torch', 'open_clip') if m in sys.modules)\n"
            "print(type(lib.embedder).__name__, len(hits), heavy)\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "index"), str(tmp_path / "photos")],
                         capture_output=True, text=True, timeout=120, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["OnnxEmbedder", "2", "[]"]
    assert (folder / "image.onnx").stat().st_mtime_ns == stamp  # not exported again
    assert np.allclose(emb.embed_texts(["a red circle"]), torch_demo.embed_texts(["a red circle"]), atol=1e-5)


def test_an_export_that_disagrees_is_refused(torch_demo, monkeypatch, tmp_path):
    monkeypatch.setenv("ZSINDEX_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(runtime_onnx, "MIN_COSINE", 1.5)  # no export can pass: shows the check runs and binds
    with pytest.raises(ModelError, match="disagrees with open_clip"):
        runtime_onnx.export(torch_demo)
    assert runtime_onnx.read_export(torch_demo.identity) is None
    assert runtime_onnx.refused(torch_demo.identity)
    # auto then runs the model on torch, without trying again
    assert load_embedder("demo").runtime == "torch"
    with pytest.raises(ModelError):
        load_embedder("demo", runtime="onnx")


def test_precision_is_recorded_kept_and_int8_by_default_on_onnx(tmp_path):
    photos = tmp_path / "photos"
    draw(photos, ["red-circle", "blue-square"])
    lib = Library(tmp_path / "index", model="demo")  # no choice: ONNX Runtime, int8 image tower
    lib.ingest([photos], workers=0)
    assert (lib.embedder.runtime, lib.embedder.precision) == ("onnx", "int8")
    assert lib.status()["model"]["precision"] == "int8"
    with pytest.raises(ModelMismatchError, match="int8"):
        Library(tmp_path / "index", model="demo", precision="fp32").ingest([photos], workers=0)
    exact = Library(tmp_path / "fp32", model="demo", precision="fp32")
    exact.ingest([photos], workers=0)
    assert exact.status()["model"]["precision"] == "fp32"
    draw(photos, ["green-star"], seed=2)
    again = Library(tmp_path / "fp32", model="demo")  # no flag: the index's own precision, not the default
    again.ingest([photos], workers=0)
    assert again.embedder.precision == "fp32" and again.status()["model"]["precision"] == "fp32"
    assert load_embedder("demo", runtime="torch").precision == "fp32"
    with pytest.raises(Exception, match="onnx"):
        load_embedder("demo", runtime="torch", precision="int8")


@pytest.mark.parametrize("how", ["runtime", "environment", "no onnxruntime"])
def test_torch_on_an_int8_index_answers_texts_and_refuses_images(tmp_path, monkeypatch, how):
    """However torch comes to be chosen for an int8 index, its texts serve it and its fp32 images are refused."""
    from click.testing import CliRunner

    from zsindex.cli import cli
    from zsindex.errors import ModelMismatchError

    photos = tmp_path / "photos"
    draw(photos, ["red-circle", "blue-square", "green-star"])
    onnx_lib = Library(tmp_path / "index", model="demo")
    onnx_lib.ingest([photos], workers=0)
    assert onnx_lib.status()["model"]["precision"] == "int8"
    expected = [(h.path, round(h.score, 4)) for h in onnx_lib.search("a red circle", k=3)]
    monkeypatch.setenv("ZSINDEX_HOME", str(tmp_path / "home"))  # no cached query texts from the run above
    if how == "runtime":
        lib, flags = Library(tmp_path / "index", model="demo", runtime="torch"), ["--runtime", "torch"]
    else:
        if how == "environment":
            monkeypatch.setenv("ZSINDEX_RUNTIME", "torch")
        else:
            monkeypatch.setattr(runtime_onnx, "available", lambda: False)
        lib, flags = Library(tmp_path / "index", model="demo"), []
    hits = lib.search("a blue square", k=3)  # a new text: embedded by torch's fp32 text tower, as ONNX's is
    assert lib.embedder.runtime == "torch" and len(hits) == 3
    assert [(h.path, round(h.score, 4)) for h in lib.search("a red circle", k=3)] == expected
    assert lib.tag("red,blue", mode="multi").label_set == "red,blue"
    before = lib.status()["images"]
    draw(photos, ["yellow-triangle"], seed=3)
    runs = lib.status()["last_run"]
    with pytest.raises(ModelMismatchError, match="int8 image vectors.*runtime=onnx"):
        lib.ingest([photos], workers=0)
    with pytest.raises(ModelMismatchError, match="int8 image vectors"):
        lib.search(like=photos / "yellow-triangle.png")
    assert lib.status()["images"] == before  # nothing fp32 got in
    assert lib.status()["last_run"] == runs  # refused before a run began: none recorded as failed
    runner = CliRunner()
    result = runner.invoke(cli, ["search", "a green star", "--index", str(tmp_path / "index"), "-m", "demo", *flags])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["ingest", str(photos), "--index", str(tmp_path / "index"), "-m", "demo", *flags])
    assert result.exit_code == 1 and "--runtime onnx" in result.output and "Traceback" not in result.output
    assert "Usage:" not in result.output  # not a usage error: the index and the runtime do not match


def test_a_refused_export_runs_torch_fp32_unless_int8_was_asked_for(torch_demo, monkeypatch, tmp_path):
    monkeypatch.setenv("ZSINDEX_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(runtime_onnx, "MIN_COSINE", 1.5)
    with pytest.raises(ModelError):
        runtime_onnx.export(torch_demo)
    emb = load_embedder("demo")
    assert (emb.runtime, emb.precision) == ("torch", "fp32")  # the default int8 is not forced on it
    with pytest.raises(ModelError, match="ONNX Runtime"):
        load_embedder("demo", precision="int8")  # never fp32 in silence when int8 was chosen


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_image_lanes_give_the_vectors_of_one_run(precision, world):
    """A batch split over lanes (one single-threaded run per core, side by side) embeds as one run does."""
    emb = load_embedder("demo", runtime="onnx", precision=precision)
    images = [load_pixels(p, emb.image_size) for p, _ in world[:19]]
    one = runtime_onnx.OnnxEmbedder(emb.identity, emb._meta, precision, batch_size=64)
    one._towers.lanes = 1
    many = runtime_onnx.OnnxEmbedder(emb.identity, emb._meta, precision, batch_size=64)
    many._towers.lanes = 4  # 19 images: parts of 4 or 5, run by 4 threads
    threads: set[str] = set()
    session = many._towers._session("image")
    plain_run = session.run
    session.run = lambda *a, **k: (threads.add(threading.current_thread().name), plain_run(*a, **k))[1]
    want, got = one.embed_images(images), many.embed_images(images)
    assert len(threads) >= 2 and all(t.startswith("zsindex-embed") for t in threads)  # really side by side
    assert not [t for t in threading.enumerate() if t.name.startswith("zsindex-embed")]  # and gone after
    assert got.shape == want.shape == (19, emb.dim)
    assert np.allclose(got, want, atol=1e-6)
    alone = np.concatenate([one.embed_images([im]) for im in images[:3]])
    assert np.allclose(alone, want[:3], atol=1e-6)  # an image's vector does not depend on its batch


def test_optimized_graph_is_saved_once_and_gives_the_same_vectors(monkeypatch, tmp_path):
    monkeypatch.setenv("ZSINDEX_HOME", str(tmp_path / "home"))
    emb = load_embedder("demo", runtime="onnx", precision="fp32")
    folder = runtime_onnx.export_dir(emb.identity)
    texts = ["a red circle", "a blue square"]
    first = emb.embed_texts(texts)
    saved = folder / "text.opt.onnx"
    assert saved.is_file() and not list(folder.glob(".opt-*"))  # moved into place, scratch removed
    stamp = saved.stat().st_mtime_ns
    again = runtime_onnx.OnnxEmbedder(emb.identity, emb._meta, "fp32")
    assert np.allclose(again.embed_texts(texts), first, atol=1e-6)
    assert saved.stat().st_mtime_ns == stamp  # read, not written again
