from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from zsindex import shapes

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED_DATA = REPO.parent / "shared" / "data"

# Tests never reach a network; a stray hub lookup should fail at once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Caches (ONNX exports, checkpoint hashes) go to a folder of this test session, never the user's home; the
# session removes the folder it made when it ends (about 60 MB of ONNX exports each time).
if "ZSINDEX_HOME" not in os.environ:
    os.environ["ZSINDEX_HOME"] = tempfile.mkdtemp(prefix="zsindex-test-home-")
    atexit.register(shutil.rmtree, os.environ["ZSINDEX_HOME"], ignore_errors=True)


@pytest.fixture(scope="session")
def demo_embedder():
    from zsindex.embedder import load_embedder

    return load_embedder("demo", device="cpu")


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> list[tuple[Path, shapes.Thing]]:
    """One drawn image per seen colour+shape pair, with its truth."""
    folder = tmp_path_factory.mktemp("world")
    scenes = [[shapes.Thing(c, s)] for c, s in shapes.seen_pairs()]
    paths = shapes.save_world(folder, scenes, seed=11)
    return [(p, scene[0]) for p, scene in zip(paths, scenes)]


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("shared/data is not beside this checkout")
    return SHARED_DATA


def draw_shapes(folder: Path, n: int, size: int, seed: int) -> list[Path]:
    """n drawn PNGs (colour and shape cycling), named NNNN-colour-shape.png, in folder."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        colour, shape = list(shapes.COLOURS)[i % 6], list(shapes.SHAPES)[i % 4]
        path = folder / f"{i:04d}-{colour}-{shape}.png"
        Image.fromarray(shapes.draw([shapes.Thing(colour, shape)], size=size, rng=rng)).save(path)
        out.append(path)
    return out


def bomb_png(path: Path, side: int) -> Path:
    """A PNG whose header says side x side pixels (RGB) over a few bytes of data: a decompression bomb's shape."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))
    return path
