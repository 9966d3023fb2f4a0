"""Filters match what a user means, not the library's internal names (issue 10, item 6).

The class: format names (Pillow calls a camera JPEG with a second image
"MPO"; users say jpeg or jpg, tif or tiff, heic or heif, in any case),
camera names (EXIF's "NIKON CORPORATION" / "ILCE-6400" against "Nikon D750"
and "Sony A6400") and paths (absolute, or relative to the current folder or
to an ingested root). Checked through search and tag, which share the filters.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import select

from zsindex import schema as s
from zsindex import shapes
from zsindex.cli import cli
from zsindex.errors import UsageError
from zsindex.filters import camera_matches, path_globs
from zsindex.library import Library
from zsindex.search import Filters, filter_ids

from .conftest import FIXTURES

CAMERAS = {
    "canon.jpg": ("Canon", "Canon EOS RP"),
    "nikon.jpg": ("NIKON CORPORATION", "NIKON D750"),
    "sony.jpg": ("SONY", "ILCE-6400"),
    "olympus.jpg": ("OLYMPUS IMAGING CORP.", "E-M10"),
    "phone.jpg": ("Apple", "iPhone 12 Pro"),
    "s40.jpg": ("Canon", "Canon PowerShot S40"),
    "s400.jpg": ("Canon", "Canon PowerShot S400"),
    "iphone6.jpg": ("Apple", "iPhone 6"),
    "iphone6plus.jpg": ("Apple", "iPhone 6 Plus"),
}
CANONS, APPLES = {"canon.jpg", "s40.jpg", "s400.jpg"}, {"phone.jpg", "iphone6.jpg", "iphone6plus.jpg"}


def photo(path: Path, make: str, model: str, mpo: bool) -> None:
    im = Image.fromarray(shapes.draw([shapes.Thing("red", "circle")], size=64))
    exif = Image.Exif()
    exif[271], exif[272] = make, model
    if mpo:  # how Canon and Sony cameras write JPEGs with a second image: Pillow reports "MPO"
        im.save(path, format="MPO", save_all=True, append_images=[im.rotate(90)], exif=exif)
    else:
        im.save(path, format="JPEG", exif=exif)


@pytest.fixture(scope="module")
def lib(tmp_path_factory, demo_embedder):
    base = tmp_path_factory.mktemp("names")
    root = base / "library [main]"  # glob characters in the root itself must not break relative patterns
    (root / "cameras").mkdir(parents=True)
    for name, (make, model) in CAMERAS.items():
        photo(root / "cameras" / name, make, model, mpo=name in ("canon.jpg", "sony.jpg"))
    with Image.open(root / "cameras" / "canon.jpg") as im:
        assert im.format == "MPO"
    other = root / "other"
    other.mkdir()
    for name in ("hopper.heif", "hopper.avif", "transparent.webp", "hopper.gif", "cmyk.jpg"):
        shutil.copy(FIXTURES / name, other / name)
    drawn = Image.fromarray(shapes.draw([shapes.Thing("blue", "square")], size=64))
    for rel in ("2023/a.png", "2024/b.png", "2024/deep/c.PNG", "scan.tif", "old.bmp", "a[1]/d.png", "a1/e.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        drawn.save(root / rel)
    kinds = root / "kinds"  # kinds of file that share a format name in Pillow, and so in the index
    kinds.mkdir()
    frames = [drawn, drawn.rotate(90)]
    drawn.save(kinds / "moving.png", save_all=True, append_images=frames[1:])  # an animated PNG (APNG)
    drawn.save(kinds / "moving.GIF", save_all=True, append_images=frames[1:])  # an animated GIF
    drawn.save(kinds / "colour.ppm")
    drawn.convert("L").save(kinds / "grey.pgm")
    drawn.convert("1").save(kinds / "bits.pbm")
    with Image.open(kinds / "moving.png") as im, Image.open(kinds / "grey.pgm") as grey:
        assert (im.format, im.n_frames, grey.format) == ("PNG", 2, "PPM")  # what Pillow tells the index
    library = Library(base / "index", embedder=demo_embedder)
    report = library.ingest([root], workers=0)
    assert report.skipped == 0
    yield library
    library.close()


def names(lib: Library, **filters) -> set[str]:
    with lib.store.session() as session:
        ids = filter_ids(session, Filters(**filters)).tolist()
        return {Path(p).name for p in session.scalars(select(s.Image.path).where(s.Image.id.in_(ids)))}


JPEGS = set(CAMERAS) | {"cmyk.jpg"}


@pytest.mark.parametrize("wanted, expected", [
    *[(w, JPEGS) for w in ("jpeg", "JPEG", "jpg", "JPG", ".jpg", "Jpeg", "jfif")],
    ("mpo", {"canon.jpg", "sony.jpg"}),
    *[(w, {"scan.tif"}) for w in ("tif", "tiff", "TIFF")],
    *[(w, {"hopper.heif"}) for w in ("heic", "heif", "HEIF")],
    ("avif", {"hopper.avif"}), ("webp", {"transparent.webp"}), ("bmp", {"old.bmp"}),
    ("gif", {"hopper.gif", "moving.GIF"}),  # a file type: GIFs still or animated
    *[(w, {"colour.ppm", "grey.pgm", "bits.pbm"}) for w in ("pnm", "ppm", "PPM")],  # every Netpbm file
    *[(w, {"a.png", "b.png", "c.PNG", "d.png", "e.png", "moving.png"}) for w in ("png", "PNG")],
])
def test_format_names_as_users_write_them(lib, wanted, expected):
    assert names(lib, format=wanted) == expected


@pytest.mark.parametrize("wanted, instead", [("apng", "png"), ("APNG", "png"), ("pgm", "pnm"), ("pbm", "pnm")])
def test_a_kind_of_file_the_index_cannot_tell_apart_is_refused_not_widened(lib, wanted, instead):
    """apng would otherwise answer with every PNG, still ones too (pgm, pbm: every Netpbm file): refused, naming
    the format that does find them, the same way in the API, the CLI and over HTTP."""
    with pytest.raises(UsageError, match=f"cannot tell .* apart; format='{instead}'"):
        names(lib, format=wanted)
    r = CliRunner().invoke(cli, ["search", "a shape", "--format", wanted, "--index", str(lib.folder)])
    assert r.exit_code == 2 and f"--format '{instead}'" in r.output and "known: " in r.output
    from fastapi.testclient import TestClient

    from zsindex.service.app import create_app

    with TestClient(create_app(lib), base_url="http://127.0.0.1") as client:
        response = client.get("/api/search", params={"q": "a shape", "format": wanted})
    assert 400 <= response.status_code < 500 and "cannot tell" in response.text


def test_unknown_format_is_a_usage_error(lib):
    with pytest.raises(UsageError, match="unknown format 'jpegg'.*jpeg"):
        names(lib, format="jpegg")
    r = CliRunner().invoke(cli, ["search", "a shape", "--format", "jpegg", "--index", str(lib.folder)])
    assert r.exit_code == 2 and "unknown format" in r.output


def test_cli_search_format_jpeg_finds_mpo_camera_files(lib):
    r = CliRunner().invoke(cli, ["search", "a red circle", "--format", "jpeg", "-k", "20", "--paths-only",
                                 "--index", str(lib.folder)])
    assert r.exit_code == 0, r.output
    assert {Path(p).name for p in r.stdout.splitlines()} == JPEGS


@pytest.mark.parametrize("wanted, expected", [
    ("Canon EOS RP", {"canon.jpg"}), ("canon", CANONS), ("CANON eos-rp", {"canon.jpg"}), ("*eos*", {"canon.jpg"}),
    ("Nikon D750", {"nikon.jpg"}), ("nikon", {"nikon.jpg"}), ("Nikon Corporation", {"nikon.jpg"}),
    ("Sony A6400", {"sony.jpg"}), ("sony ilce-6400", {"sony.jpg"}), ("a6400", {"sony.jpg"}),
    ("Olympus E-M10", {"olympus.jpg"}), ("iphone*", APPLES), ("apple", APPLES),
    ("Apple iPhone 12 Pro", {"phone.jpg"}), ("Canon D750", set()), ("Leica", set()),
    # a whole name is that camera alone, though longer names begin with it
    ("Canon PowerShot S40", {"s40.jpg"}), ("iPhone 6", {"iphone6.jpg"}), ("Apple iPhone 6", {"iphone6.jpg"}),
    # words that are no camera's whole name: the cameras whose names hold them as whole words
    ("iPhone", APPLES), ("powershot", {"s40.jpg", "s400.jpg"}), ("eos rp", {"canon.jpg"}), ("CANON eos", {"canon.jpg"}),
    ("iPhone 12", {"phone.jpg"}), ("PowerShot S4", set()), ("phone", set()),
])
def test_camera_names_as_users_write_them(lib, wanted, expected):
    assert names(lib, camera=wanted) == expected


def test_camera_match_needs_the_whole_name():
    assert camera_matches("NIKON CORPORATION", "NIKON D750", "nikon d750")
    assert not camera_matches("NIKON CORPORATION", "NIKON D750", "nikon d7500")
    assert not camera_matches(None, None, "canon")
    assert not camera_matches("Canon", "Canon EOS RP", " - ")


def test_path_filters_absolute_relative_and_by_name(lib, monkeypatch):
    root = Path(lib.folder).parent / "library [main]"
    assert names(lib, path=str(root).replace("[", "[[]") + "/2023/*") == {"a.png"}  # absolute, as before
    assert names(lib, path="*/2024/*") == {"b.png", "c.PNG"}  # a leading wildcard matches anywhere
    assert names(lib, path="2024/*") == {"b.png", "c.PNG"}  # relative to the ingested root
    assert names(lib, path="2024/*.png") == {"b.png"}  # GLOB is case-sensitive, as file names are
    assert names(lib, path="2024") == {"b.png", "c.PNG"}  # a folder: everything under it
    assert names(lib, path="cameras/canon.jpg") == {"canon.jpg"}
    assert names(lib, path="scan.tif") == {"scan.tif"}  # a name alone: that file wherever it lies
    assert names(lib, path="*.PNG") == {"c.PNG"}
    monkeypatch.chdir(root / "other")  # relative to the current folder
    assert names(lib, path="./*.gif") == {"hopper.gif"}
    monkeypatch.chdir(root / "2024")
    assert names(lib, path="../2023/a.png") == {"a.png"}
    assert names(lib, path="deep") == {"c.PNG"}
    with pytest.raises(UsageError, match="path="):
        names(lib, path="  ")


def test_path_with_glob_characters_also_matches_as_written(lib):
    """A folder called a[1]: its name matches it (and what is under it), as a glob a[1] matches a1."""
    assert names(lib, path="a[1]") == {"d.png"}
    assert names(lib, path="a[1]/d.png") == {"d.png"}
    assert names(lib, path="a[1]/*") == {"e.png"}  # a glob is still a glob: a1/*
    assert names(lib, path="a[12]") == set()  # neither a folder a[12] nor one a1 or a2 holding files directly


def test_path_globs_escape_the_anchor():
    assert path_globs("x/*.jpg", ["/photos [2023]"]) == [  # the glob, then the name as written and under it
        "/photos [[]2023]/x/*.jpg", "/photos [[]2023]/x/[*].jpg", "/photos [[]2023]/x/[*].jpg/*"]
    assert path_globs("/abs/*.jpg", ["/a"]) == ["/abs/*.jpg", "/abs/[*].jpg", "/abs/[*].jpg/*"]
    assert path_globs("name.jpg", ["/a"]) == ["/a/name.jpg", "*/name.jpg", "/a/name.jpg/*", "*/name.jpg/*"]


def test_tag_path_uses_the_same_names(lib):
    lib.labels_add("colours-by-path", "red,blue")
    report = lib.tag("colours-by-path", mode="single", threshold=0.0, path="2024")
    assert report.images == 2
    assert {Path(r["path"]).name for r in lib.tag_rows("colours-by-path")} == {"b.png", "c.PNG"}


PHOTOS = ["Canon IXUS 430.jpg", "Canon IXUS v2.jpg", "Canon PowerShot S40 (1).jpg", "Canon PowerShot S400.jpg",
          "Apple iPhone 6.jpg", "Apple iPhone 6 plus.jpg", "Nikon D70.jpg", "Nikon E990.jpg"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory, demo_embedder):
    """Real camera JPEGs with their own EXIF (shared/data/photos): "Canon" / "Canon DIGITAL IXUS 430", ..."""
    from .conftest import SHARED_DATA

    source = SHARED_DATA / "photos"
    if not source.is_dir():
        pytest.skip("shared/data is not beside this checkout")
    base = tmp_path_factory.mktemp("photos")
    for name in PHOTOS:
        shutil.copy(source / name, base / name)
    library = Library(base / "index", embedder=demo_embedder)
    assert library.ingest([base], workers=0, exclude=[str(base / "index")]).added == len(PHOTOS)
    with library.store.session() as session:
        stored = dict(session.execute(select(s.Image.camera_model, s.Image.camera_make)).all())
    assert stored["Canon DIGITAL IXUS 430"] == "Canon" and stored["E990"] == "NIKON"  # as the cameras wrote them
    yield library
    library.close()


@pytest.mark.parametrize("wanted, expected", [
    # words of the name, all of them whole words of make + model, in the order given or not
    ("Canon IXUS 430", {"Canon IXUS 430.jpg"}), ("IXUS 430", {"Canon IXUS 430.jpg"}),
    ("430 ixus", {"Canon IXUS 430.jpg"}), ("canon 430", {"Canon IXUS 430.jpg"}),
    ("Canon Digital IXUS", {"Canon IXUS 430.jpg", "Canon IXUS v2.jpg"}),
    ("Canon IXUS", {"Canon IXUS 430.jpg", "Canon IXUS v2.jpg"}), ("ixus", {"Canon IXUS 430.jpg", "Canon IXUS v2.jpg"}),
    ("Nikon E990", {"Nikon E990.jpg"}), ("D70 nikon", {"Nikon D70.jpg"}),
    ("PowerShot Canon", {"Canon PowerShot S40 (1).jpg", "Canon PowerShot S400.jpg"}),
    # a whole name is that camera alone; a word that is only part of one finds nothing
    ("Canon DIGITAL IXUS 430", {"Canon IXUS 430.jpg"}), ("Canon PowerShot S40", {"Canon PowerShot S40 (1).jpg"}),
    ("iPhone 6", {"Apple iPhone 6.jpg"}), ("Apple iPhone 6 Plus", {"Apple iPhone 6 plus.jpg"}),
    ("IXUS 43", set()), ("Canon IXUS 430 v2", set()), ("Canon D70", set()), ("PowerShot S4", set()),
])
def test_camera_words_in_any_order_on_real_exif(photos, wanted, expected):
    """One reading everywhere: the library's filters, `zsindex search --camera` and the server's /api/search."""
    from fastapi.testclient import TestClient

    from zsindex.service.app import create_app

    assert names(photos, camera=wanted) == expected
    r = CliRunner().invoke(cli, ["search", "a photo", "--camera", wanted, "-k", "50", "--paths-only",
                                 "--index", str(photos.folder)])
    assert r.exit_code == 0, r.output
    assert {Path(p).name for p in r.stdout.splitlines()} == expected
    with TestClient(create_app(photos), base_url="http://127.0.0.1") as client:
        response = client.get("/api/search", params={"q": "a photo", "camera": wanted, "k": 50})
    assert response.status_code == 200, response.text
    assert {Path(hit["path"]).name for hit in response.json()["results"]} == expected
