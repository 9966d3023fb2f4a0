"""RAW (DNG written by tifffile, decoded by LibRaw), JPEG XL (libjxl), sniffing, motion and Live Photos,
RAW + JPEG grouping: real files through the real decoders, index and demo model."""

from __future__ import annotations

import io
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


@pytest.mark.parametrize("name,fmt", [("fake.CR2", "JPEG"), ("fake.nef", "PNG"), ("fake.ARW", "WEBP"),
                                       ("fake.png", "JPEG"), ("fake.jpg", "PNG")])
def test_a_file_is_read_as_what_it_holds_whatever_its_extension_says(tmp_path, name, fmt):
    """A JPEG named .CR2 is a JPEG, as a JPEG named .png is: the content decides, for RAW names too (a RAW
    file is a TIFF or its own container, which a Pillow format never is)."""
    buf = io.BytesIO()
    Image.fromarray(RED).save(buf, fmt)
    d = decode_bytes(buf.getvalue(), 48, suffix=Path(name).suffix)
    assert d.format == fmt and d.image is not None and nearer(d.image, RED, GREEN)


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
    out = runner.invoke(cli, ["status", "--index", str(lib.folder), "--table"])
    assert out.exit_code == 0 and "ignored .pdf 1, .txt 1, no extension 1" in out.output
    out = runner.invoke(cli, ["status", "--index", str(lib.folder), "--json"])
    assert json.loads(out.stdout)["ignored"] == {".pdf": 1, ".txt": 1, "no extension": 1}
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


# -- videos ---------------------------------------------------------------------------------------------
BLUE = mf.scene("blue", "square")


def frame_rows(lib: Library) -> list[tuple]:
    from sqlalchemy import select

    from zsindex import schema as s

    with lib.store.session() as session:
        return [tuple(r) for r in session.execute(select(s.Frame.image_id, s.Frame.position, s.Frame.seconds)
                                                  .order_by(s.Frame.image_id, s.Frame.position))]


@pytest.mark.parametrize("ext", [".mp4", ".webm", ".mkv", ".avi", ".mov", ".mpg"])
def test_video_found_once_at_the_time_of_its_best_frame(lib, tmp_path, ext):
    folder = tmp_path / "p"
    folder.mkdir()
    mf.write_video(folder / f"clip{ext}", [(RED, 1.0), (BLUE, 1.0)])  # a red circle, then a blue square
    Image.fromarray(GREEN).save(folder / "green.png")
    r = lib.ingest([folder], workers=0)
    assert (r.added, r.skipped) == (2, 0), r.skipped_files
    hits = lib.search("a blue square", k=5)
    assert [Path(h.path).name for h in hits].count(f"clip{ext}") == 1
    assert hits[0].path.endswith(f"clip{ext}") and hits[0].seconds is not None and hits[0].seconds >= 1.0
    red = lib.search("a red circle", k=1)[0]
    assert red.path.endswith(f"clip{ext}") and red.seconds is not None and red.seconds < 1.0
    assert len(frame_rows(lib)) == 4


def test_video_index_round_trips_through_faiss_rebuild_and_changes(lib, tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    clip = mf.write_video(folder / "clip.mp4", [(RED, 1.0), (BLUE, 1.0)])
    Image.fromarray(GREEN).save(folder / "green.png")
    lib.ingest([folder], workers=0)
    before = sorted(lib.vectors().ids().tolist())
    assert lib.rebuild() == len(before) == 5  # one image + four frames
    assert sorted(lib.vectors().ids().tolist()) == before
    assert lib.search("a blue square", k=1)[0].seconds >= 1.0
    # Changed: new frames replace the old ones in SQL and FAISS.
    mf.write_video(clip, [(BLUE, 1.0), (RED, 1.0)])
    r = lib.ingest([folder], workers=0)
    assert r.changed == 1 and len(frame_rows(lib)) == 4 and lib.vectors().ntotal == 5
    assert lib.search("a blue square", k=1)[0].seconds < 1.0
    # Moved: same rows, nothing re-embedded.
    clip.rename(folder / "renamed.mp4")
    r = lib.ingest([folder], workers=0)
    assert (r.moved, r.embed_seconds) == (1, 0) and lib.vectors().ntotal == 5
    # Deleted: its frames leave FAISS.
    (folder / "renamed.mp4").unlink()
    r = lib.ingest([folder], workers=0)
    assert r.deleted == 1 and lib.vectors().ntotal == 1
    assert [Path(h.path).name for h in lib.search("a blue square", k=5)] == ["green.png"]


def test_tagging_scores_a_video_by_its_best_frames(lib, tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    mf.write_video(folder / "clip.mp4", [(RED, 1.0), (BLUE, 1.0)])
    for i, rgb in enumerate((GREEN, RED, BLUE)):
        Image.fromarray(rgb).save(folder / f"still{i}.png")
    lib.ingest([folder], workers=0)
    report = lib.tag("red circle,blue square,green star", mode="multi", threshold=0.0)
    assert report.images >= 4
    rows = lib.tag_rows("red circle,blue square,green star")
    clip = [r for r in rows if r["path"].endswith("clip.mp4")]
    assert {r["label"] for r in clip} >= {"red circle", "blue square"}
    assert len(clip) == len({r["label"] for r in clip})  # one tag per label, from its best frame
    single = lib.tag("red circle,blue square,green star")
    assert single.images >= 4
    ids = {r["path"] for r in lib.tag_rows("red circle,blue square,green star")}
    assert str(folder / "clip.mp4") in ids


def test_video_oddities_are_errors_with_reasons(lib, tmp_path):
    import av

    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "zero.mov").write_bytes(b"")
    with av.open(str(folder / "audio.mp4"), "w") as c:
        stream = c.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for _ in range(10):
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)
    data = mf.write_video(tmp_path / "ok.mp4", [(RED, 1.0)]).read_bytes()
    (folder / "truncated.mp4").write_bytes(data[:len(data) // 2])
    (folder / "text.avi").write_text("not a video at all\n")
    r = lib.ingest([folder], workers=0)
    reasons = {Path(p).name: why for p, why in r.skipped_files}
    assert r.skipped == 4 and r.added == 0
    assert reasons["zero.mov"] == "empty file (0 bytes)"
    assert reasons["audio.mp4"] == "no video stream"
    assert "cannot decode video" in reasons["truncated.mp4"] and "cannot decode video" in reasons["text.avi"]


def test_video_guards(tmp_path):
    from zsindex import video

    path = mf.write_video(tmp_path / "v.mp4", [(RED, 1.0)])
    with pytest.raises(ImageError, match="decompression bomb"):
        video.read_video(str(path), 48, max_megapixels=0.01)
    assert len(video.sample_times(2.0)) == video.MIN_FRAMES
    assert len(video.sample_times(120.0)) == 2 * video.FRAMES_PER_MINUTE
    times = video.sample_times(10 * 3600.0)
    assert len(times) == video.MAX_FRAMES and times == sorted(times) and times[-1] < 10 * 3600.0


def test_long_video_is_sampled_at_keyframes(lib, tmp_path, monkeypatch):
    from zsindex import video
    from zsindex.video import read_video, sample_times

    folder = tmp_path / "p"
    folder.mkdir()
    red, blue = mf.scene("red", "circle", size=128), mf.scene("blue", "square", size=128)
    path = mf.write_video(folder / "long.mp4", [(red, 40.0), (blue, 40.0)], fps=2, gop=10)  # keyframes every 5 s
    monkeypatch.setattr(video, "MAX_DECODED", 20)  # 160 frames: only the 8 keyframes sampled may be decoded
    v = read_video(str(path), 48)
    assert len(v.frames) == len(sample_times(80.0)) == 8
    assert [round(sec) for _, sec, _ in v.frames] == [5, 15, 25, 35, 45, 55, 65, 75]
    lib.ingest([folder], workers=0)
    hit = lib.search("a blue square", k=1)[0]
    assert hit.path.endswith("long.mp4") and hit.seconds is not None and hit.seconds >= 40


def test_video_decode_budget(tmp_path, monkeypatch):
    from zsindex import video

    path = mf.write_video(tmp_path / "v.mp4", [(RED, 1.0), (BLUE, 1.0)])
    monkeypatch.setattr(video, "MAX_DECODED", 5)  # the 2 s clip needs 18 frames decoded for its last sample
    with pytest.raises(ImageError, match="more than 5 frames decoded"):
        video.read_video(str(path), 48)


def test_rotated_phone_video_is_upright(tmp_path):
    import av

    from zsindex.video import read_video

    wide = np.ascontiguousarray(np.concatenate([RED, BLUE], axis=1))  # stored 512 wide: red left, blue right
    path = tmp_path / "portrait.mp4"
    with av.open(str(path), "w") as c:
        stream = c.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 512, 256, "yuv420p"
        stream.set_display_rotation(-90)  # shown turned a quarter clockwise, as phones record portrait
        for _ in range(10):
            for packet in stream.encode(av.VideoFrame.from_ndarray(wide, format="rgb24")):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)
    v = read_video(str(path), 48)
    assert (v.width, v.height) == (256, 512)
    im = v.frames[0][2]
    top, bottom = im.crop((0, 0, im.width, im.height // 2)), im.crop((0, im.height // 2, im.width, im.height))
    assert nearer(top, RED, BLUE) and nearer(bottom, BLUE, RED)


def test_video_frames_in_a_compressed_index(lib, tmp_path):
    """IVF-PQ re-ranks candidates with exact vectors from SQL: frames must be found there too."""
    from .synthetic import store_vectors

    folder = tmp_path / "p"
    folder.mkdir()
    mf.write_video(folder / "clip.mp4", [(RED, 1.0), (BLUE, 1.0)])
    Image.fromarray(GREEN).save(folder / "green.png")
    lib.ingest([folder], workers=0)
    model = lib.store.model()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, model.dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    store_vectors(lib, model.id, x)  # padding, so that there is enough to train the quantiser
    assert lib.rebuild("ivfpq") == 4000 + 1 + 4
    hits = lib.search("a blue square", k=3, path=str(folder / "*"))
    assert [Path(h.path).name for h in hits] == ["clip.mp4", "green.png"]
    assert hits[0].seconds is not None and hits[0].seconds >= 1.0


def test_like_a_video_changed_since_ingest_does_not_use_its_old_frames(lib, tmp_path):
    """As for images (tests/test_search.py): an indexed video whose file changed is not answered by the mean
    of the frames it held when indexed."""
    folder = tmp_path / "p"
    folder.mkdir()
    video = mf.write_video(folder / "clip.mp4", [(RED, 1.0)])
    Image.fromarray(RED).save(folder / "red.png")
    Image.fromarray(GREEN).save(folder / "green.png")
    lib.ingest([folder], workers=0)
    assert Path(lib.search(like=video, k=1)[0].path).name in ("clip.mp4", "red.png")
    mf.write_video(video, [(GREEN, 1.0), (GREEN, 1.0)])  # now a green star, another size
    hits = lib.search(like=video, k=2)  # embedded as it is now: its frames sampled as ingest samples them
    assert Path(hits[0].path).name == "green.png"


@pytest.mark.parametrize("ext", [".mp4", ".webm"])
def test_classify_and_similarity_read_a_video_as_the_mean_of_its_frames(tmp_path, demo_embedder, ext):
    """A video given to classify or similarity is read as ingest reads it (a frame every few seconds) and
    stands for its frames' mean vector: a clip of a red circle is a red circle, not a skipped file."""
    from zsindex.zeroshot import classify, embed_files

    clip = mf.write_video(tmp_path / f"clip{ext}", [(RED, 4.0)])
    still = tmp_path / "still.png"
    Image.fromarray(RED).save(still)
    vectors, ok, errors = embed_files(demo_embedder, [clip, still])
    assert ok == [0, 1] and not errors
    assert np.isclose(np.linalg.norm(vectors[0]), 1.0, atol=1e-4) and float(vectors[0] @ vectors[1]) > 0.95
    [result] = classify([clip], "red circle,blue square,green triangle", embedder=demo_embedder)
    assert result.error is None and result.labels[0].label == "red circle"
    r = CliRunner().invoke(cli, ["similarity", "a red circle", "-i", str(clip), "-m", "demo", "--json"])
    assert r.exit_code == 0, r.output
