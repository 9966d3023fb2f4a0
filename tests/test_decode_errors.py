"""A file is indexed or classified only when Pillow decodes all its pixels (issue 10, item 5).

The oracle is Pillow itself, run plainly (open, then load the full image):
whatever it cannot decode must be recorded as an error with a reason by
both ingest and classify, and whatever it can decode must be accepted.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from zsindex.errors import ImageError
from zsindex.images import read_image
from zsindex.library import Library, classify

from .conftest import FIXTURES

MAX_MP = 180.0


def pillow_decodes(path: Path) -> bool:
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_MP * 1e6:
                return False  # zsindex's own bomb guard refuses these on purpose
            im.load()
        return True
    except Exception:  # noqa: BLE001 - the oracle: any failure means "not fully decodable"
        return False


def check_folder(folder: Path, tmp_path: Path, embedder) -> None:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() not in (".md", ".csv"))
    decodable = {str(p) for p in files if pillow_decodes(p)}
    assert 0 < len(decodable) < len(files)  # both kinds are present, so both directions are tested

    lib = Library(tmp_path / "index", embedder=embedder)
    report = lib.ingest([folder], workers=2, max_megapixels=MAX_MP)
    errors = dict(lib.errors())
    lib.close()
    assert report.added + report.skipped == len(files)
    assert set(errors) == {str(p) for p in files} - decodable, "ingest disagrees with Pillow"
    assert all(reason.strip() for reason in errors.values())

    results = classify(files, "red circle,blue square", embedder=embedder)
    failed = {r.path: r.error for r in results if r.error is not None}
    assert set(failed) == set(errors), "classify disagrees with ingest"
    assert all(reason for reason in failed.values())


@pytest.mark.parametrize("name", ["broken_data_stream.png", "truncated_end_chunk.png", "truncated.jpg"])
def test_partly_decodable_files_are_errors(name):
    # broken_data_stream.png: Pillow used to return it with a third of its rows black, because reading
    # its EXIF (stored after the pixels) ran the decode and the error was dropped with the metadata.
    with pytest.raises(ImageError, match="cannot decode"):
        read_image(FIXTURES / name)


def test_fixtures_agree_with_pillow(tmp_path, demo_embedder):
    check_folder(FIXTURES, tmp_path, demo_embedder)


@pytest.mark.parametrize("sub", ["corrupt_or_truncated", "corrupt_fuzzed_jpeg"])
def test_odd_files_agree_with_pillow(shared_data, tmp_path, demo_embedder, sub):
    check_folder(shared_data / "oddfiles" / sub, tmp_path, demo_embedder)


def test_broken_exif_alone_keeps_the_image(shared_data, tmp_path):
    # The other side of the rule: metadata that cannot be parsed loses the metadata, never the image.
    for name in ("pillow-tests__Tests__images__hopper_bad_exif.jpg", "pillow-tests__Tests__images__invalid-exif.jpg"):
        src = shared_data / "oddfiles" / "corrupt_or_truncated" / name
        shutil.copy(src, tmp_path / name)
        assert pillow_decodes(src)
        assert read_image(tmp_path / name).image is not None
