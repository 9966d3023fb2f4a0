"""Work that needs no model skips it: no-op ingest, repeated queries, cached checkpoint hashes, schema at head."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zsindex import filehash
from zsindex.config import DEMO_MODEL_DIR
from zsindex.errors import ModelMismatchError
from zsindex.library import Library

from .conftest import REPO
from .test_ingest import draw


@pytest.fixture
def home() -> Path:
    return Path(os.environ["ZSINDEX_HOME"])  # this test session's (conftest)


@pytest.fixture
def demo_copy(tmp_path) -> Path:
    """The demo model as a folder of its own, so that its files can be touched."""
    folder = tmp_path / "model"
    shutil.copytree(DEMO_MODEL_DIR, folder)
    return folder


def test_noop_ingest_and_repeated_query_do_not_load_the_model(tmp_path, home, demo_copy, monkeypatch):
    photos = tmp_path / "photos"
    draw(photos, ["red-circle", "blue-square", "green-triangle"])
    first = Library(tmp_path / "index", model=str(demo_copy))
    first.ingest([photos], workers=0)
    first.search("a red circle")  # caches the query text
    first.close()

    again = Library(tmp_path / "index", model=str(demo_copy))
    report = again.ingest([photos], workers=0)
    assert report.unchanged == 3 and report.added == 0
    assert again.search("a red circle")
    assert again._embedder is None  # neither the no-op ingest nor the repeated query loaded it

    monkeypatch.setenv("ZSINDEX_MODEL", str(demo_copy))  # a model named in the environment: same answer
    by_env = Library(tmp_path / "index")
    assert by_env.search("a red circle") and by_env._embedder is None

    draw(photos, ["yellow-star"], seed=3)  # something new to embed: now the model is needed
    report = again.ingest([photos], workers=0)
    assert report.added == 1 and again._embedder is not None


def test_another_model_is_refused_without_loading_it(tmp_path, home, demo_copy):
    photos = tmp_path / "photos"
    draw(photos, ["red-circle"])
    Library(tmp_path / "index", model=str(demo_copy)).ingest([photos], workers=0)
    other = Library(tmp_path / "index", model="ViT-B-32", pretrained="random")
    with pytest.raises(ModelMismatchError):
        other.search("a red circle")
    assert other._embedder is None


def test_checkpoint_hash_is_cached_until_the_file_changes(tmp_path, home):
    ckpt = tmp_path / "weights.bin"
    ckpt.write_bytes(b"first weights" * 1000)
    real = filehash.sha256_file(ckpt)
    assert filehash.cached_sha256(ckpt) == real
    cache = home / "cache" / filehash.CACHE_NAME
    entries = json.loads(cache.read_text())
    # Prove the cache is what answers: a planted value comes back while the file is unchanged.
    entries[os.path.realpath(ckpt)]["sha256"] = "planted"
    cache.write_text(json.dumps(entries))
    assert filehash.cached_sha256(ckpt) == "planted"
    # Same size, mtime put back: the ctime still shows the rewrite, so it is hashed again.
    st = ckpt.stat()
    ckpt.write_bytes(b"other weights" * 1000)
    os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert filehash.cached_sha256(ckpt) == filehash.sha256_file(ckpt) != real


def test_an_index_at_head_opens_without_alembic(tmp_path):
    from alembic.script import ScriptDirectory

    from zsindex.store import Store, alembic_config, script_head

    assert script_head() == ScriptDirectory.from_config(alembic_config()).get_current_head()
    Store(tmp_path).close()  # created and migrated to head
    code = ("import sys\nfrom pathlib import Path\nfrom zsindex.store import Store\n"
            "Store(Path(sys.argv[1])).close()\nprint('alembic' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
