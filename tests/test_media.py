"""RAW (DNG written by tifffile, decoded by LibRaw), JPEG XL (libjxl), sniffing, motion and Live Photos,
RAW + JPEG grouping: real files through the real decoders, index and demo model."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from zsindex.cli import cli
from zsindex.errors import ImageError
from zsindex.images import decode_bytes, read_image
from zsindex.library import Library
from zsindex.media import jxl_size, sniff

from . import mediafiles as mf

pytest.importorskip("tifffile")


@pytest.fixture
def lib(tmp_path, demo_embedder):
    library = Library(tmp_path / "index", embedder=demo_embedder)
    yield library
    library.close()


def mean_rgb(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)


def nearer(im: Image.Image, this: np.ndarray, that: np.ndarray) -> bool:
    """The decoded image's mean colour is nearer the scene ``this`` than the scene ``that``."""
    got = mean_rgb(im)
    return bool(np.linalg.norm(got - mean_rgb(Image.fromarray(this)))
                < np.linalg.norm(got - mean_rgb(Image.fromarray(that))))


RED, GREEN = mf.scene("red", "circle"), mf.scene("green", "star")


# -- RAW ------------------------------------------------------------------------------------------------
def test_dng_uses_its_embedded_preview(tmp_path):
    # Raw pixels red, preview green: a green result shows that the preview was used.
    path = mf.write_dng(tmp_path / "IMG_1.DNG", RED, preview=GREEN)
    d = read_image(path, 48)
    assert d.format == "DNG" and (d.width, d.height) == (256, 256)
    assert d.meta["media_kind"] == "raw" and d.meta["camera_make"] == "ZsCam"
    assert d.image is not None and nearer(d.image, GREEN, RED)
    assert min(d.image.size) >= 48


def test_dng_without_a_large_preview_is_demosaiced(tmp_path):
    # Only a 16-pixel green thumbnail, smaller than the model's input: LibRaw demosaics the red raw data.
    path = mf.write_dng(tmp_path / "small.dng", RED, thumb=GREEN, thumb_width=16)
    d = read_image(path, 48)
    assert d.image is not None and nearer(d.image, RED, GREEN)
    assert d.image.size == (128, 128)  # half size, not reduced further for a 48-pixel model


def test_raw_orientation_applies_to_preview_and_demosaic(tmp_path):
    tall = np.concatenate([RED, GREEN], axis=0)  # 512 rows x 256 columns, as the sensor saw it
    for name, preview in (("p.dng", tall), ("d.dng", None)):
        d = read_image(mf.write_dng(tmp_path / name, tall, preview=preview, orientation=6,
                                    thumb_width=16 if preview is None else 64), 48)
        assert (d.width, d.height) == (512, 256) and d.meta["orientation"] == 6
        assert d.image is not None and d.image.width == 2 * d.image.height, name


@pytest.mark.parametrize("cut", [0.9, 0.5, 0.1])
def test_truncated_raw_is_an_error(tmp_path, cut):
    data = mf.write_dng(tmp_path / "t.dng", RED, thumb_width=16).read_bytes()
    with pytest.raises(ImageError, match="cannot decode RAW"):
        decode_bytes(data[:int(len(data) * cut)], 48, suffix=".dng")


def test_raw_bomb_guard_and_not_a_raw(tmp_path):
    data = mf.write_dng(tmp_path / "a.dng", RED, preview=GREEN).read_bytes()
    with pytest.raises(ImageError, match="decompression bomb"):
        decode_bytes(data, 48, max_megapixels=0.01, suffix=".dng")
    with pytest.raises(ImageError, match="RAW"):
        decode_bytes(b"this is text, not a camera file\n" * 20, 48, suffix=".cr2")


# -- JPEG XL --------------------------------------------------------------------------------------------
def test_jxl_decodes_with_size_from_its_header(tmp_path):
    path = mf.write_jxl(tmp_path / "g.jxl", GREEN[:, :200])
    data = path.read_bytes()
    assert jxl_size(data) == (200, 256)
    d = read_image(path, 48)
    assert d.format == "JXL" and (d.width, d.height) == (200, 256)
    assert d.image is not None and nearer(d.image, GREEN, RED)
    with pytest.raises(ImageError, match="decompression bomb"):
        decode_bytes(data, 48, max_megapixels=0.01)
    for cut in (0.8, 0.3):
        with pytest.raises(ImageError, match="JPEG XL"):
            decode_bytes(data[:int(len(data) * cut)], 48)


def test_jxl_container_with_exif(tmp_path):
    import imagecodecs

    exif = Image.Exif()
    exif[271], exif[272], exif[306] = "JxlMake", "JxlModel", "2023:01:02 03:04:05"
    tiff = exif.tobytes()[6:]  # drop the "Exif\0\0" prefix: the box holds an offset, then TIFF

    def box(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", 8 + len(body)) + kind + body

    codestream = imagecodecs.jpegxl_encode(RED, level=90)
    data = (b"\x00\x00\x00\x0cJXL \r\n\x87\n" + box(b"ftyp", b"jxl \x00\x00\x00\x00jxl ")
            + box(b"Exif", b"\x00\x00\x00\x00" + tiff) + box(b"jxlc", codestream))
    d = decode_bytes(data, 48)
    assert d.format == "JXL" and d.meta["camera_make"] == "JxlMake" and d.meta["taken_at"].year == 2023
    assert d.image is not None and nearer(d.image, RED, GREEN)


# -- sniffing, ignored files ------------------------------------------------------------------------
def test_sniff_kinds(tmp_path):
    Image.fromarray(RED).save(tmp_path / "x.png")
    assert sniff((tmp_path / "x.png").read_bytes()[:64]) == "image"
    assert sniff(mf.write_jxl(tmp_path / "x.jxl", RED).read_bytes()[:64]) == "image"
    assert sniff(b"II*\x00\x10\x00\x00\x00CR\x02\x00") == "raw"
    assert sniff(b"hello world") is None


def test_unknown_extension_image_is_indexed_and_the_rest_is_counted(lib, tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    Image.fromarray(RED).save(folder / "renamed.dat", "PNG")
    Image.fromarray(GREEN).save(folder / "noext", "JPEG")
    (folder / "notes.txt").write_text("a shopping list\n")
    (folder / "README").write_text("no extension, text\n")
    (folder / "doc.pdf").write_bytes(b"%PDF-1.4\n%fake but typed\n")
    r = lib.ingest([folder], workers=0)
    assert (r.added, r.skipped) == (2, 0)
    assert r.ignored == {".pdf": 1, ".txt": 1, "no extension": 1}
    assert r.to_dict()["ignored"] == 3
    status = lib.status()
    assert status["ignored"] == {".pdf": 1, ".txt": 1, "no extension": 1}
    assert status["images"] == {"indexed": 2}
    reasons = dict(lib.ignored_files())
    assert reasons[str(folder / "notes.txt")] == "ignored: not an image or video (text)"
    assert reasons[str(folder / "doc.pdf")] == "ignored: not an image or video (pdf)"
    hits = lib.search("red circle", k=1)
    assert hits[0].path == str(folder / "renamed.dat")
    # CLI: status and errors show them; the list follows the folder.
    runner = CliRunner()
    out = runner.invoke(cli, ["status", "--index", str(lib.folder)])
    assert out.exit_code == 0 and "ignored .pdf 1, .txt 1, no extension 1" in out.output
    out = runner.invoke(cli, ["errors", "--index", str(lib.folder), "--json"])
    rows = [json.loads(line) for line in out.output.splitlines()]
    assert {Path(r["path"]).name for r in rows} == {"notes.txt", "README", "doc.pdf"}
    out = runner.invoke(cli, ["errors", "--index", str(lib.folder), "--no-ignored", "--json"])
    assert out.output == ""
    (folder / "notes.txt").unlink()
    (folder / "doc.pdf").unlink()
    lib.ingest([folder], workers=0)
    assert lib.status()["ignored"] == {"no extension": 1}


# -- motion photos, Live Photos, RAW + JPEG ---------------------------------------------------------------
def test_motion_photo_indexes_the_still_once(lib, tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    clip = mf.write_video(tmp_path / "clip.mp4", [(RED, 0.5), (GREEN, 0.5)]).read_bytes()
    mf.write_motion_photo(folder / "PXL_0001.MP.jpg", GREEN, clip)
    Image.fromarray(RED).save(folder / "other.png")
    r = lib.ingest([folder], workers=0)
    assert (r.added, r.skipped, r.ignored) == (2, 0, {})
    hits = lib.search("green star", k=5)
    assert [Path(h.path).name for h in hits].count("PXL_0001.MP.jpg") == 1
    assert hits[0].path.endswith("PXL_0001.MP.jpg") and hits[0].format == "JPEG"
    from sqlalchemy import select

    from zsindex import schema as s

    with lib.store.session() as session:
        assert session.scalar(select(s.Image.media_kind).where(s.Image.path == hits[0].path)) == "motion"


def test_live_photo_clip_is_not_a_second_result(lib, tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    Image.fromarray(GREEN).save(folder / "IMG_0007.JPG")
    mf.write_video(folder / "IMG_0007.MOV", [(GREEN, 1.0)])
    r = lib.ingest([folder], workers=0)
    assert (r.added, r.skipped) == (1, 0) and r.ignored == {"live photo clip": 1}
    assert [h.path for h in lib.search("green star", k=5)] == [str(folder / "IMG_0007.JPG")]
    assert dict(lib.ignored_files())[str(folder / "IMG_0007.MOV")] == "ignored: Live Photo clip of IMG_0007.JPG"


def test_raw_and_jpeg_of_one_shot_group(lib, tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    mf.write_dng(folder / "IMG_1234.DNG", GREEN, preview=GREEN)
    Image.fromarray(GREEN).save(folder / "IMG_1234.JPG", quality=92)
    Image.fromarray(mf.scene("green", "star", seed=3)).save(folder / "IMG_9.png")
    Image.fromarray(RED).save(folder / "IMG_10.png")
    r = lib.ingest([folder], workers=0)
    assert (r.added, r.skipped) == (4, 0)
    plain = [Path(h.path).name for h in lib.search("green star", k=3)]
    assert {"IMG_1234.DNG", "IMG_1234.JPG"} <= set(plain)
    grouped = lib.search("green star", k=3, group_stems=True)
    names = [Path(h.path).name for h in grouped]
    assert len(names) == 3 and len({n.split(".")[0] for n in names}) == 3
    shot = next(h for h in grouped if Path(h.path).stem == "IMG_1234")
    assert {Path(p).name for p in (shot.path, *shot.also)} == {"IMG_1234.DNG", "IMG_1234.JPG"}
    assert lib.search("green star", k=1, format="dng")[0].path.endswith(".DNG")
    out = CliRunner().invoke(cli, ["search", "green", "star", "--group-stems", "--json", "-k", "3",
                                   "--index", str(lib.folder)])
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.output.splitlines()]
    assert sum(1 for r in rows if "also" in r) == 1 and len(rows) == 3
