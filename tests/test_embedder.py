"""The open_clip embedder: identity, normalisation, every way of naming weights, offline failures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from zsindex import config
from zsindex.embedder import load_embedder, resolve_source, sha256_file
from zsindex.errors import ModelError

DEMO = config.DEMO_MODEL_DIR
WEIGHTS = DEMO / "open_clip_model.safetensors"


def test_demo_model_is_small_and_shipped_as_open_clip_folder():
    assert (DEMO / "open_clip_config.json").is_file()
    assert WEIGHTS.stat().st_size <= 10 * 1024 * 1024
    assert "model_cfg" in json.loads((DEMO / "open_clip_config.json").read_text())


def test_identity_is_checkpoint_hash_and_stable(demo_embedder):
    assert demo_embedder.identity == f"sha256:{sha256_file(WEIGHTS)}"
    assert resolve_source(f"local-dir:{DEMO}", None).identity == demo_embedder.identity
    assert resolve_source(str(DEMO), None).identity == demo_embedder.identity


def test_identity_distinguishes_tags_and_files(tmp_path):
    ckpt = tmp_path / "a.pt"
    ckpt.write_bytes(b"not really weights")
    assert resolve_source("ViT-B-32", str(ckpt)).identity == f"sha256:{sha256_file(ckpt)}"
    assert resolve_source("ViT-B-32", "laion2b_s34b_b79k").identity == "ViT-B-32/laion2b_s34b_b79k"
    assert resolve_source("hf-hub:org/name", None).identity == "hf-hub:org/name"


def test_vectors_are_unit_float32_with_model_dim(demo_embedder, world):
    imgs = [Image.open(p) for p, _ in world[:5]]
    iv = demo_embedder.embed_images(imgs)
    tv = demo_embedder.embed_texts(["a red circle", "something blue", ""])
    assert iv.dtype == np.float32 and iv.shape == (5, demo_embedder.dim)
    assert tv.shape == (3, demo_embedder.dim)
    np.testing.assert_allclose(np.linalg.norm(iv, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(tv, axis=1), 1, atol=1e-5)
    assert demo_embedder.logit_scale > 1


def test_batching_does_not_change_vectors(world):
    imgs = [Image.open(p) for p, _ in world[:7]]
    small = load_embedder("demo", device="cpu", batch_size=2)
    big = load_embedder("demo", device="cpu", batch_size=64)
    np.testing.assert_allclose(small.embed_images(imgs), big.embed_images(imgs), atol=1e-5)


def test_checkpoint_file_with_architecture_config(tmp_path, demo_embedder, world):
    """A checkpoint file plus an architecture config file: --model arch.json --pretrained weights."""
    cfg = json.loads((DEMO / "open_clip_config.json").read_text())
    (tmp_path / "tiny-arch.json").write_text(json.dumps(cfg["model_cfg"]))
    ckpt = tmp_path / "weights.safetensors"
    shutil.copy(WEIGHTS, ckpt)
    emb = load_embedder(str(tmp_path / "tiny-arch.json"), str(ckpt), device="cpu")
    assert emb.identity == demo_embedder.identity  # identity follows the weights, not the file name
    img = [Image.open(world[0][0])]
    np.testing.assert_allclose(emb.embed_images(img), demo_embedder.embed_images(img), atol=1e-5)


def test_model_folder_copy_loads_same_model(tmp_path, demo_embedder, world):
    cfg = json.loads((DEMO / "open_clip_config.json").read_text())
    folder = tmp_path / "copy"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps(cfg))
    shutil.copy(WEIGHTS, folder / "weights.safetensors")
    emb = load_embedder(str(folder), device="cpu")
    assert emb.identity == demo_embedder.identity  # same weights, same identity, wherever they live
    img = [Image.open(world[0][0])]
    np.testing.assert_allclose(emb.embed_images(img), demo_embedder.embed_images(img), atol=1e-5)


def test_env_selects_model(monkeypatch):
    monkeypatch.setenv(config.ENV_MODEL, "demo")
    name, tag = config.resolve_model(None, None)
    assert name == f"local-dir:{DEMO}" and tag is None
    monkeypatch.setenv(config.ENV_MODEL, "ViT-B-16")
    assert config.resolve_model(None, None) == ("ViT-B-16", None)
    assert config.resolve_model("ViT-B-32", None) == ("ViT-B-32", config.DEFAULT_PRETRAINED)
    monkeypatch.setenv(config.ENV_PRETRAINED, "openai")
    assert config.resolve_model(None, None) == ("ViT-B-16", "openai")
    assert config.resolve_model("RN50", "yfcc15m") == ("RN50", "yfcc15m")


def test_unknown_tag_and_bad_folder_are_clear(tmp_path):
    with pytest.raises(ModelError, match="Known tags"):
        resolve_source("ViT-B-32", "no-such-tag")
    with pytest.raises(ModelError, match="open_clip_config.json"):
        resolve_source(str(tmp_path), None)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "ZSINDEX_"))}
    env.update(extra)
    return env


LOAD = (
    "import sys, time\n"
    "from zsindex.embedder import load_embedder\n"
    "from zsindex.errors import ModelUnavailableError\n"
    "t = time.time()\n"
    "try:\n"
    "    e = load_embedder(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None, device='cpu')\n"
    "    print('OK', e.identity, e.dim)\n"
    "except ModelUnavailableError as err:\n"
    "    print('UNAVAILABLE', round(time.time() - t, 1), err)\n"
)


def _load(args: list[str], env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", LOAD, *args], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_hf_hub_id_loads_from_offline_cache(tmp_path, demo_embedder):
    """The real Hugging Face path: a hub cache laid out by hand, HF_HUB_OFFLINE=1, open_clip loading hf-hub:."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--zsindex--shapes-tiny"
    snap = repo / "snapshots" / revision
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    shutil.copy(DEMO / "open_clip_config.json", snap / "open_clip_config.json")
    shutil.copy(WEIGHTS, snap / "open_clip_model.safetensors")
    env = _clean_env(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "hub"))
    out = _load(["hf-hub:zsindex/shapes-tiny"], env)
    assert out == f"OK hf-hub:zsindex/shapes-tiny {demo_embedder.dim}"


@pytest.mark.parametrize(
    "args, env",
    [
        (["hf-hub:zsindex/not-cached"], {"HF_HUB_OFFLINE": "1"}),
        (["ViT-B-32", "laion2b_s34b_b79k"], {"HF_HUB_OFFLINE": "1"}),
        # Network "down": the hub endpoint refuses connections (a closed local port).
        (["ViT-B-32", "laion2b_s34b_b79k"], {"HF_ENDPOINT": "http://127.0.0.1:9"}),
    ],
)
def test_missing_weights_fail_fast_with_guidance(tmp_path, args, env):
    out = _load(args, _clean_env(HF_HUB_CACHE=str(tmp_path / "empty"), **env))
    assert out.startswith("UNAVAILABLE"), out
    seconds = float(out.split()[1])
    # Retries would take minutes; the import of open_clip alone can take over 10 s on a loaded 2-core machine.
    assert seconds < 30, f"offline failure took {seconds}s: retries?"
    # Through the Python API the message names API parameters; the CLI writes them as flags (test_cli_rules).
    assert args[0] in out and "pretrained=/path/to/checkpoint" in out and "model=demo" in out
    assert "--" not in out


def test_offline_error_reaches_cli_as_exit_1(tmp_path, world):
    env = _clean_env(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-m", "zsindex", "classify", str(world[0][0]), "-l", "cat,dog"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert out.returncode == 1
    assert "ViT-B-32" in out.stderr and "cannot be downloaded" in out.stderr
    assert out.stdout == ""


MISSING_MODELS = ["./missing-model-folder", "/nonexistent/dir", "~/no-such-zsindex-model", "missing.pt",
                  "arch-gone.json", "local-dir:/nonexistent/dir", "sub/folder"]


@pytest.mark.parametrize("value", MISSING_MODELS)
def test_a_model_path_that_names_nothing_is_no_such_file_not_an_architecture(tmp_path, world, value, monkeypatch):
    """A model (or pretrained) value that can only be a path and names nothing: 'no such file or folder' and
    what the parameter takes, from the API (load_embedder, Library, classify) and every command (exit 2);
    never 'an architecture without weights'. Nothing is made on the way (no index folder)."""
    from click.testing import CliRunner

    import zsindex
    from zsindex.cli import cli
    from zsindex.errors import UsageError

    monkeypatch.chdir(tmp_path)
    shown = os.path.expanduser(value.removeprefix("local-dir:"))
    image = str(world[0][0])
    calls = [lambda: load_embedder(value), lambda: zsindex.Library(tmp_path / "i", model=value),
             lambda: zsindex.classify([image], "red,blue", model=value),
             lambda: load_embedder("ViT-B-32", pretrained=value if value.endswith(".pt") else value + ".pt")]
    for call in calls:
        with pytest.raises(UsageError, match="no such file or folder") as caught:
            call()
        assert "without weights" not in str(caught.value) and "takes" in str(caught.value), caught.value
    assert f"no such file or folder: {shown}" in str(pytest.raises(UsageError, load_embedder, value).value)
    for args in (["classify", image, "-l", "red,blue", "--model", value],
                 ["similarity", "red", "-i", image, "-m", value],
                 ["ingest", str(world[0][0].parent), "--index", str(tmp_path / "i"), "-m", value],
                 ["classify", image, "-l", "red,blue", "--model", "ViT-B-32", "--pretrained", "./gone.pt"]):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 2, (args, r.output)
        assert "no such file or folder" in r.stderr, (args, r.stderr)
        assert "--model takes" in r.stderr or "--pretrained takes" in r.stderr, (args, r.stderr)
        assert "without weights" not in r.stderr, (args, r.stderr)
    monkeypatch.setenv(config.ENV_MODEL, value)
    r = CliRunner().invoke(cli, ["classify", image, "-l", "red,blue"])
    assert r.exit_code == 2 and f"(from ${config.ENV_MODEL})" in r.stderr, r.output
    assert not (tmp_path / "i").exists()


def test_an_architecture_name_without_weights_is_still_called_so():
    """The other side of the rule: a name that is not a path keeps its own message."""
    with pytest.raises(ModelError, match="architecture without weights"):
        load_embedder("ViT-B-32-nonexistent-arch")
    with pytest.raises(ModelError, match="Known tags"):
        resolve_source("ViT-B-32", "no-such-tag")
