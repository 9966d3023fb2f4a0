from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zsindex.errors import ImageError
from zsindex.images import decode_bytes, read_image

from .conftest import FIXTURES


def test_exif_orientation_applied():
    d = read_image(FIXTURES / "orientation_6.jpg")
    assert d.meta["orientation"] == 6
    raw = Image.open(FIXTURES / "orientation_6.jpg")
    # Orientation 6 means "rotate 90° clockwise to display": the decoded pixels are the transposed raw ones.
    expected = np.asarray(raw.convert("RGB").transpose(Image.Transpose.ROTATE_270), dtype=np.int16)
    assert np.abs(np.asarray(d.image, dtype=np.int16) - expected).mean() < 2


def test_orientation_swaps_reported_size():
    im = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[274] = 6
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif)
    d = decode_bytes(buf.getvalue(), target=None)
    assert (d.width, d.height) == (20, 40) and d.image.size == (20, 40)


def test_large_jpeg_decoded_at_reduced_size():
    im = Image.fromarray(np.random.default_rng(0).integers(0, 255, (2400, 3200, 3), dtype=np.uint8))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=80)
    d = decode_bytes(buf.getvalue(), target=224)
    assert (d.width, d.height) == (3200, 2400)  # the file's size is still recorded
    assert 224 <= min(d.image.size) <= 448


def test_bomb_guard_is_configurable():
    im = Image.new("RGB", (3000, 2000))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    with pytest.raises(ImageError, match="6 MP, over the 5 MP limit"):
        decode_bytes(buf.getvalue(), max_megapixels=5)
    assert decode_bytes(buf.getvalue(), max_megapixels=7).width == 3000


@pytest.mark.parametrize("name, reason", [("truncated.jpg", "truncated"), ("broken.png", "identify"),
                                          ("bomb.gif", "decompression bomb")])
def test_bad_files_raise_image_error(name, reason):
    with pytest.raises(ImageError, match=reason):
        read_image(FIXTURES / name)


def test_empty_missing_and_directory(tmp_path: Path):
    (tmp_path / "e.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        read_image(tmp_path / "e.jpg")
    with pytest.raises(ImageError, match="cannot read"):
        read_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="directory"):
        read_image(tmp_path)


def test_alpha_composited_on_white():
    im = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    assert decode_bytes(buf.getvalue()).image.getpixel((0, 0)) == (255, 255, 255)


def test_exif_metadata_and_hash():
    d = read_image(FIXTURES / "cmyk.jpg")
    assert d.image.mode == "RGB" and d.format == "JPEG"
    assert d.meta["taken_at"].year == 2009
    import hashlib

    assert d.sha256 == hashlib.sha256((FIXTURES / "cmyk.jpg").read_bytes()).hexdigest()


def test_real_camera_photo_gps_and_camera(shared_data):
    d = read_image(shared_data / "photos" / "Apple iPhone 5.jpg")
    assert d.meta["camera_make"] == "Apple"
    assert d.meta["gps_lat"] == pytest.approx(47.627, abs=0.01)
    assert d.meta["gps_lon"] < 0
