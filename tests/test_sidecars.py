"""XMP sidecars: written, updated, undone; checked with an independent reader, exiftool."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from zsindex import shapes, xmp
from zsindex.cli import cli
from zsindex.library import Library

from .conftest import FIXTURES

SAMPLES = FIXTURES / "sidecars"
EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is not installed")
KEYWORD_TAGS = ("XMP-dc:Subject", "XMP-lr:HierarchicalSubject", "XMP-digiKam:TagsList")
PAIRS = [("red", "circle"), ("blue", "square"), ("green", "triangle"), ("yellow", "star"),
         ("purple", "circle"), ("orange", "square")]


def rate(path: Path, stars: int) -> None:
    """A rating set by another program (exiftool rewrites the whole sidecar, as such programs do)."""
    subprocess.run([EXIFTOOL, "-q", "-overwrite_original", f"-XMP-xmp:Rating={stars}", os.fsencode(path)],
                   check=True, timeout=60)


def exif(path: str | Path) -> dict:
    """Every property exiftool reads from a sidecar, less the file system's and the toolkit's name."""
    out = subprocess.run([EXIFTOOL, "-j", "-struct", "-G1", "-n", os.fsencode(path)], capture_output=True,
                         check=True, timeout=60).stdout
    [props] = json.loads(out)
    return {k: v for k, v in props.items()
            if not k.startswith(("System:", "ExifTool:", "File:")) and k not in ("SourceFile", "XMP-x:XMPToolkit")}


def as_list(value) -> list:
    return [] if value is None else value if isinstance(value, list) else [value]


@pytest.fixture
def photos(tmp_path, demo_embedder):
    """Six drawn images, indexed and tagged with shapes; a darktable and a Lightroom sidecar beside two."""
    scenes = [[shapes.Thing(c, s)] for c, s in PAIRS]
    paths = shapes.save_world(tmp_path / "photos", scenes, size=64, seed=2)
    lib = Library(tmp_path / "index", embedder=demo_embedder)
    lib.ingest([tmp_path / "photos"], workers=0)
    lib.labels_add("shapes", "circle,square,triangle,star")
    lib.tag("shapes", mode="multi", threshold=-1.0)  # every image gets every shape: a known, full tag list
    dt = Path(str(paths[0]) + ".xmp")  # darktable's naming, IMG.png.xmp
    lr = paths[1].with_suffix(".xmp")  # Lightroom's, IMG.xmp
    shutil.copy(SAMPLES / "darktable.xmp", dt)
    shutil.copy(SAMPLES / "lightroom.xmp", lr)
    return lib, paths, dt, lr


def tags_of(lib: Library, path: Path) -> set[str]:
    return {r["label"] for r in lib.tag_rows("shapes") if r["path"] == str(path)}


@needs_exiftool
def test_write_adds_keywords_and_keeps_everything_else(photos):
    lib, paths, dt, lr = photos
    before = {p: exif(p) for p in (dt, lr)}
    report = lib.sidecars_write("shapes")
    assert (report.created, report.updated, report.skipped) == (4, 2, 0)
    assert not Path(str(paths[1]) + ".xmp").exists()  # the Lightroom-named sidecar was updated, not duplicated
    for image in paths:
        side = dt if image == paths[0] else lr if image == paths[1] else Path(str(image) + ".xmp")
        after = exif(side)
        old = before.get(side, {})
        for key, value in old.items():  # every property that was there is there, the same
            if key not in KEYWORD_TAGS:
                assert after[key] == value, key
        labels = tags_of(lib, image)
        assert labels == {"circle", "square", "triangle", "star"}
        subject = as_list(after["XMP-dc:Subject"])
        assert set(subject) == set(as_list(old.get("XMP-dc:Subject"))) | labels
        assert len(subject) == len(set(subject))  # the user's "circle" is not doubled
        assert set(as_list(after["XMP-lr:HierarchicalSubject"])) == set(
            as_list(old.get("XMP-lr:HierarchicalSubject"))) | {f"zsindex|shapes|{x}" for x in labels}
        assert set(as_list(after["XMP-digiKam:TagsList"])) == {f"zsindex/shapes/{x}" for x in labels}
    darktable = exif(dt)
    assert darktable["XMP-darktable:History"] == before[dt]["XMP-darktable:History"]
    assert {"darktable|changed", "darktable|format|png"} <= set(darktable["XMP-lr:HierarchicalSubject"])
    assert lib.sidecars_write("shapes").unchanged == 6  # a second run changes nothing
    assert os.path.getsize(paths[0]) and not list(paths[0].parent.glob(".*zsindex-tmp"))


@needs_exiftool
def test_properties_a_toolkit_would_rename_or_drop_are_kept_as_written(photos):
    """Aliased properties (tiff:Software beside xmp:CreatorTool, tiff:Artist, ...), an ordered dc:subject, a
    comment and the packet wrapper: write changes only the keyword lists, and remove gives back every
    property as it was, each under its own name."""
    lib, paths, _dt, _lr = photos
    side = Path(str(paths[3]) + ".xmp")
    shutil.copy(SAMPLES / "aliases.xmp", side)
    original = side.read_text()
    before = exif(side)
    assert before["XMP-tiff:Software"] == "MyEditor 1.0" and before["XMP-xmp:CreatorTool"] == "OtherTool 2.0"
    lib.sidecars_write("shapes")
    after = exif(side)
    assert {k: v for k, v in after.items() if k not in KEYWORD_TAGS} == {
        k: v for k, v in before.items() if k not in KEYWORD_TAGS}
    text = side.read_text()
    assert "<rdf:Seq>" in text.split("<dc:subject>")[1].split("</dc:subject>")[0]  # still ordered, not a Bag
    for kept in ('tiff:Software="MyEditor 1.0"', "<!-- written by another program", '<?xpacket end="w"?>',
                 'x:xmptk="Some Editor 3.1"'):
        assert kept in text, kept
    assert as_list(after["XMP-dc:Subject"])[0] == "dog"
    lib.sidecars_remove()
    assert exif(side) == before
    assert side.read_text().replace("\n", "") .count("<rdf:li>") == original.count("<rdf:li>")


@needs_exiftool
def test_write_retag_write_remove_restores_the_files(photos):
    lib, paths, dt, lr = photos
    before = {p: exif(p) for p in (dt, lr)}
    images = {p: p.read_bytes() for p in paths}
    lib.sidecars_write("shapes")
    lib.labels_edit("shapes", drop=["star"])  # a re-tag: star's tags go
    lib.tag("shapes", mode="multi", threshold=-1.0)
    report = lib.sidecars_write("shapes")
    assert report.updated == 6
    for side in (dt, lr):
        props = exif(side)
        assert "zsindex|shapes|star" not in props["XMP-lr:HierarchicalSubject"]
        assert "zsindex|shapes|circle" in props["XMP-lr:HierarchicalSubject"]
    assert "star" not in as_list(exif(Path(str(paths[2]) + ".xmp"))["XMP-dc:Subject"])
    report = lib.sidecars_remove()
    assert (report.updated, report.deleted) == (2, 4)
    for side in (dt, lr):
        assert exif(side) == before[side]  # the same properties and values as before zsindex came
    assert sorted(p.name for p in paths[0].parent.iterdir()) == sorted([*(p.name for p in paths), dt.name, lr.name])
    assert all(p.read_bytes() == data for p, data in images.items())  # image files never touched


@needs_exiftool
def test_user_edits_in_between_survive(photos):
    lib, paths, dt, lr = photos
    before = exif(lr)
    created = Path(str(paths[2]) + ".xmp")
    lib.sidecars_write("shapes")
    # The user, in another program: a keyword and a rating in the Lightroom file, drops one of ours,
    # and rates the sidecar zsindex made.
    doc = xmp.XmpDoc.from_bytes(lr.read_bytes())
    doc.add(xmp.SUBJECT, "beach")
    doc.remove(xmp.HIERARCHICAL, "zsindex|shapes|triangle")
    lr.write_bytes(doc.to_bytes())
    rate(lr, 5)
    rate(created, 2)
    report = lib.sidecars_write("shapes")
    assert "zsindex|shapes|triangle" not in exif(lr)["XMP-lr:HierarchicalSubject"]  # not put back
    assert report.unchanged == 6
    lib.sidecars_remove()
    after = exif(lr)
    assert after["XMP-xmp:Rating"] == 5 and "beach" in after["XMP-dc:Subject"]
    assert {k: v for k, v in after.items() if k not in ("XMP-xmp:Rating", "XMP-dc:Subject")} == {
        k: v for k, v in before.items() if k not in ("XMP-xmp:Rating", "XMP-dc:Subject")}
    assert set(after["XMP-dc:Subject"]) == set(before["XMP-dc:Subject"]) | {"beach"}
    assert exif(created) == {"XMP-xmp:Rating": 2}  # the user's part of a file zsindex made stays


def test_naming_base_and_existing_sidecars_of_the_other_naming(photos):
    lib, paths, dt, lr = photos
    report = lib.sidecars_write("shapes", naming="base", path="*/00[0-3]-*")
    assert (report.created, report.updated) == (2, 2)
    assert dt.exists() and not paths[0].with_suffix(".xmp").exists()  # IMG.png.xmp found, not doubled
    assert paths[2].with_suffix(".xmp").exists() and paths[3].with_suffix(".xmp").exists()
    assert not Path(str(paths[4]) + ".xmp").exists()  # outside --path
    # Lightroom makes IMG.xmp beside the IMG.png.xmp zsindex wrote: zsindex's entries move to the one chosen.
    shutil.copy(SAMPLES / "lightroom.xmp", paths[0].with_suffix(".xmp"))
    report = lib.sidecars_write("shapes", naming="base", path="*/000-*")
    assert {Path(d["sidecar"]).name: d["action"] for d in report.sidecars} == {
        dt.name: "updated", paths[0].with_suffix(".xmp").name: "updated"}
    assert xmp.XmpDoc.from_bytes(dt.read_bytes()).items(xmp.TAGSLIST) == []
    assert len(xmp.XmpDoc.from_bytes(paths[0].with_suffix(".xmp").read_bytes()).items(xmp.TAGSLIST)) == 4
    lib.sidecars_remove()
    assert not paths[2].with_suffix(".xmp").exists()


@needs_exiftool
def test_a_sidecar_named_in_other_case_is_the_images_sidecar(photos):
    """IMG.PNG.XMP or IMG.XMP beside IMG.png (as Windows and macOS programs see it): written into, read for
    keywords and cleaned by remove, never doubled by a second, lower-case sidecar."""
    lib, paths, _dt, _lr = photos
    upper = paths[2].parent / (paths[2].name.upper() + ".XMP")  # the darktable naming, all in capitals
    base_upper = paths[3].parent / (paths[3].stem + ".XMP")  # Lightroom's naming, capital extension
    shutil.copy(SAMPLES / "lightroom.xmp", upper)
    shutil.copy(SAMPLES / "lightroom.xmp", base_upper)
    before = {p: exif(p) for p in (upper, base_upper)}
    report = lib.sidecars_write("shapes", path="*/00[23]-*")
    assert {d["sidecar"]: d["action"] for d in report.sidecars} == {str(upper): "updated",
                                                                     str(base_upper): "updated"}
    assert sorted(p.name for p in paths[2].parent.iterdir() if p.name.lower().endswith(".xmp")
                  and p.name[:3] in ("002", "003")) == sorted([upper.name, base_upper.name])
    for p in (upper, base_upper):
        assert set(as_list(exif(p)["XMP-dc:Subject"])) >= {"circle", "square", "triangle", "star"}
    # the user's own keywords in such a sidecar are read as keywords; zsindex's own entries are not
    lib.ingest([paths[0].parent], workers=0)
    assert set(lib.keywords()[str(paths[2])]) == set(as_list(before[upper]["XMP-dc:Subject"]))
    # deleted by hand: a rerun writes it again where it was, not "unchanged"
    upper.unlink()
    report = lib.sidecars_write("shapes", path="*/002-*")
    assert [(d["sidecar"], d["action"]) for d in report.sidecars] == [(str(upper), "created")]
    assert not Path(str(paths[2]) + ".xmp").exists()
    lib.sidecars_remove()
    assert exif(base_upper) == before[base_upper] and not upper.exists()


def test_prefix_min_score_and_remove_by_set(photos):
    lib, paths, dt, _ = photos
    lib.labels_add("colours", "red,blue")
    lib.tag("colours", mode="multi", threshold=-1.0)
    lib.sidecars_write("shapes", prefix=None)
    lib.sidecars_write("colours", min_score=0.0)
    doc = xmp.XmpDoc.from_bytes(dt.read_bytes())
    assert "shapes|circle" in doc.items(xmp.HIERARCHICAL) and "zsindex|colours|red" in doc.items(xmp.HIERARCHICAL)
    assert "shapes/star" in doc.items(xmp.TAGSLIST)
    lib.sidecars_remove("shapes")
    doc = xmp.XmpDoc.from_bytes(dt.read_bytes())
    assert "shapes|circle" not in doc.items(xmp.HIERARCHICAL) and "red" in doc.items(xmp.SUBJECT)
    assert "circle" in doc.items(xmp.SUBJECT)  # the user's own "circle" stays
    lib.untag("colours")  # no tags left: all of the set's keywords go
    report = lib.sidecars_write("colours")
    assert (report.updated, report.deleted) == (2, 4)  # the files zsindex made held nothing else
    assert xmp.XmpDoc.from_bytes(dt.read_bytes()).items(xmp.SUBJECT) == ["circle", "garden"]


def test_bad_sidecars_are_reported_never_a_crash(photos, tmp_path):
    lib, paths, dt, lr = photos
    Path(str(paths[2]) + ".xmp").write_bytes(b"\x00\x01 not xml at all")
    Path(str(paths[3]) + ".xmp").write_text("<html><body>a web page</body></html>")
    huge = Path(str(paths[4]) + ".xmp")
    huge.write_bytes(b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>" + b" " * (xmp.MAX_SIDECAR_BYTES + 10))
    kept = {p: p.read_bytes() for p in paths[0].parent.glob("*.xmp")}
    dt.parent.chmod(0o555)
    try:
        report = lib.sidecars_write("shapes")
    finally:
        dt.parent.chmod(0o755)
    reasons = {Path(p).name: r for p, r in report.skipped_files}
    assert report.skipped == 6 and report.created == report.updated == 0
    assert "not XML" in reasons[paths[2].name + ".xmp"]
    assert "not XMP" in reasons[paths[3].name + ".xmp"]
    assert "larger than 16 MiB" in reasons[huge.name]
    assert "read-only folder" in reasons[dt.name] and "read-only folder" in reasons[paths[5].name + ".xmp"]
    assert all(p.read_bytes() == data for p, data in kept.items())
    report = lib.sidecars_write("shapes")  # writable again: the good ones are written, the bad still skipped
    assert (report.updated, report.created, report.skipped) == (2, 1, 3)
    assert all(Path(p).read_bytes() == kept[Path(p)] for p, _ in report.skipped_files)


def test_a_sidecar_that_is_a_link_is_left_as_it_is(photos, tmp_path):
    """Replacing it (write beside, rename over) would turn the link into a file and leave its target untagged."""
    lib, paths, dt, lr = photos
    target = tmp_path / "elsewhere" / "shared.xmp"
    target.parent.mkdir()
    shutil.copy(SAMPLES / "lightroom.xmp", target)
    kept = target.read_bytes()
    link = Path(str(paths[2]) + ".xmp")
    link.symlink_to(target)
    dangling = Path(str(paths[3]) + ".xmp")
    dangling.symlink_to(tmp_path / "nowhere.xmp")
    report = lib.sidecars_write("shapes")
    reasons = {Path(p).name: r for p, r in report.skipped_files}
    assert "symbolic link" in reasons[link.name] and "symbolic link" in reasons[dangling.name]
    assert link.is_symlink() and dangling.is_symlink() and target.read_bytes() == kept
    assert not (tmp_path / "nowhere.xmp").exists()
    assert report.updated + report.created == 4  # the other four images


def make_thing(path: Path, kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "xmp":
        shutil.copy(SAMPLES / "lightroom.xmp", path)
    elif kind == "not xmp":
        path.write_text("<notes><note>mine</note></notes>\n")
    elif kind == "not xml":
        path.write_text("shopping list\n")
    elif kind == "folder":
        path.mkdir()
        (path / "kept").write_text("mine")
    elif kind == "fifo":
        os.mkfifo(path)


def state_of(path: Path) -> object:
    if path.is_symlink():
        return ("link", os.readlink(path))
    if path.is_dir():
        return ("folder", sorted((p.name, p.read_bytes()) for p in path.iterdir()))
    if path.exists() and not path.is_file():
        return ("special", path.stat().st_mode)
    return ("file", path.read_bytes()) if path.exists() else None


@pytest.mark.parametrize("kind", ["xmp", "not xmp", "not xml", "folder", "fifo", "nothing"])
def test_a_sidecar_that_is_a_link_is_skipped_as_a_link_whatever_it_points_to(photos, tmp_path, kind):
    """write (and its dry run) and remove never read a link in a sidecar's place as the sidecar: the reason
    says it is a symbolic link whatever its target is (valid XMP, another file, a folder, a named pipe, nothing),
    and the link and its target stay as they were. Ingest reads keywords through it (reading changes nothing),
    and a reason it gives names the link."""
    lib, paths, dt, lr = photos
    target = tmp_path / "elsewhere" / "shared.xmp"
    make_thing(target, kind)
    before = state_of(target)
    link = Path(str(paths[2]) + ".xmp")
    link.symlink_to(target)
    def skipped_as_a_link(run, sidecar: Path) -> None:  # a dry run and a real one: the link and its target kept
        for dry_run in (True, False):
            reasons = dict(run("shapes", dry_run=dry_run).skipped_files)
            assert "symbolic link" in reasons[str(sidecar)], reasons
            assert state_of(sidecar) == ("link", str(target)) and state_of(target) == before

    skipped_as_a_link(lib.sidecars_write, link)
    own = Path(str(paths[4]) + ".xmp")  # written by zsindex just now, then made a link by the user
    assert own.is_file()
    own.unlink()
    own.symlink_to(target)
    skipped_as_a_link(lib.sidecars_remove, own)
    unread = dict(lib.ingest([paths[0].parent], workers=0).skipped_sidecars)
    if kind in ("not xmp", "not xml"):
        assert f"a symbolic link to {target}" in unread[str(link)], unread
    else:
        assert str(link) not in unread, unread  # XMP: read; not a file: no sidecar there
    if kind == "xmp":
        assert lib.keywords()[str(paths[2])]
    assert state_of(target) == before


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_folder_or_a_pipe_in_a_sidecars_place_is_skipped_untouched(photos, kind):
    """Never waited on (a named pipe), never replaced: skipped with the reason, by write and by remove."""
    lib, paths, dt, lr = photos
    odd = Path(str(paths[2]) + ".xmp")
    make_thing(odd, kind)
    before = state_of(odd)
    report = lib.sidecars_write("shapes")
    reasons = dict(report.skipped_files)
    assert "not a sidecar file" in reasons[str(odd)], reasons
    own = Path(str(paths[4]) + ".xmp")
    own.unlink()
    make_thing(own, kind)
    report = lib.sidecars_remove("shapes")
    assert "not a sidecar file" in dict(report.skipped_files)[str(own)]
    assert state_of(odd) == before and state_of(own)[0] == before[0]


def test_a_link_planted_at_a_sidecars_temp_name_is_never_written_through(photos, tmp_path):
    """A sidecar is written beside (.NAME.zsindex-tmp) and renamed over: the temp name is made new, never opened
    through whatever is there."""
    from zsindex.sidecars import temp_name

    lib, paths, dt, lr = photos
    victim = b"another program's file\n" * 40
    targets = []
    for sidecar in (dt, Path(str(paths[2]) + ".xmp")):  # an existing sidecar updated, a new one created
        target = tmp_path / "elsewhere" / sidecar.name
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(victim)
        Path(temp_name(str(sidecar))).symlink_to(target)
        targets.append((sidecar, target))
    report = lib.sidecars_write("shapes")
    assert not report.skipped_files, report.skipped_files
    for sidecar, target in targets:
        assert target.read_bytes() == victim
        assert sidecar.is_file() and not sidecar.is_symlink() and b"circle" in sidecar.read_bytes()
        assert not os.path.lexists(temp_name(str(sidecar)))
    # atomic_write itself, whoever calls it: a link planted at the temp name is replaced, not opened
    from zsindex.sidecars import atomic_write

    own = tmp_path / "own.xmp"
    target = tmp_path / "elsewhere" / "direct"
    target.write_bytes(victim)
    Path(temp_name(str(own))).symlink_to(target)
    atomic_write(str(own), b"<x:xmpmeta/>")
    assert target.read_bytes() == victim and own.read_bytes() == b"<x:xmpmeta/>" and not own.is_symlink()


def test_cli_write_dry_run_json_and_remove(photos, tmp_path):
    lib, paths, dt, lr = photos
    index = str(tmp_path / "index")
    runner = CliRunner()
    before = dt.read_bytes()
    result = runner.invoke(cli, ["sidecars", "write", "--labels", "shapes", "--index", index, "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["created"], report["updated"], report["dry_run"]) == (4, 2, True)
    assert dt.read_bytes() == before and not Path(str(paths[2]) + ".xmp").exists()
    result = runner.invoke(cli, ["sidecars", "write", "-l", "shapes", "--index", index, "-q", "--csv"])
    header, row = result.stdout.splitlines()[:2]
    assert result.exit_code == 0 and header.startswith("created,updated,unchanged,deleted,skipped")
    assert row.startswith("4,2,0,0,0,")
    for command in (["sidecars", "remove", "--labels", "nosuch"], ["sidecars", "write", "--labels", "nosuch"]):
        result = runner.invoke(cli, [*command, "--index", index, "--json"])
        assert result.exit_code == 2 and "no label set named 'nosuch'" in result.stderr, result.output
    result = runner.invoke(cli, ["sidecars", "remove", "--index", index, "--json"])
    assert json.loads(result.stdout)["deleted"] == 4 and dt.read_bytes() != before  # same content, new layout
    assert xmp.keywords_of(xmp.XmpDoc.from_bytes(dt.read_bytes())) == xmp.keywords_of(xmp.XmpDoc.from_bytes(before))


def test_non_utf8_names(tmp_path, demo_embedder):
    folder = tmp_path / "photos"
    [path] = shapes.save_world(folder, [[shapes.Thing("red", "circle")]], size=64)
    odd = os.path.join(os.fsencode(folder), b"caf\xe9 [1].png")
    os.rename(path, odd)
    lib = Library(tmp_path / "index", embedder=demo_embedder)
    lib.ingest([folder], workers=0)
    lib.tag("circle,square", mode="multi", threshold=-1.0)
    report = lib.sidecars_write("circle,square")
    assert report.created == 1
    side = os.fsdecode(odd) + ".xmp"
    assert set(xmp.XmpDoc.from_bytes(Path(side).read_bytes()).items(xmp.SUBJECT)) == {"circle", "square"}
    result = CliRunner().invoke(cli, ["sidecars", "remove", "--index", str(tmp_path / "index"), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["deleted"] == 1
    assert not os.path.exists(side)


KILL_SCRIPT = """
import sys
from zsindex.library import Library
lib = Library(sys.argv[1], model="demo", device="cpu")
def progress(stage, done, total):
    print("done", done, flush=True)
lib.sidecars_write(sys.argv[2], progress=progress)
"""


def _kill_mid_run(index: Path, labels: str, after: int, pause: float) -> None:
    import signal
    import sys
    import time

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(index), labels], stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        if int(line.split()[1]) >= after:
            time.sleep(pause)  # somewhere inside the next sidecar's read, write, fsync or rename
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_killed_mid_write_leaves_whole_sidecars_and_a_rerun_finishes(tmp_path, demo_embedder):
    scenes = [[shapes.Thing(*shapes.seen_pairs()[i % 20])] for i in range(60)]
    paths = shapes.save_world(tmp_path / "photos", scenes, size=32, seed=4)
    for p in paths[::3]:
        shutil.copy(SAMPLES / "darktable.xmp", str(p) + ".xmp")
    originals = {p: p.read_bytes() for p in (tmp_path / "photos").glob("*.xmp")}
    lib = Library(tmp_path / "index", embedder=demo_embedder)
    lib.ingest([tmp_path / "photos"], workers=0)
    lib.tag("circle,square,triangle,star", mode="multi", threshold=-1.0)
    lib.close()
    for after, pause in ((8, 0.0), (20, 0.002), (35, 0.004)):
        _kill_mid_run(tmp_path / "index", "circle,square,triangle,star", after, pause)
        for side in (tmp_path / "photos").glob("*.xmp"):  # every sidecar is whole: old or new, never half
            xmp.XmpDoc.from_bytes(side.read_bytes())
    lib = Library(tmp_path / "index", embedder=demo_embedder)
    report = lib.sidecars_write("circle,square,triangle,star")
    assert report.skipped == 0 and report.created + report.updated + report.unchanged == 60
    assert not list((tmp_path / "photos").glob(".*zsindex-tmp"))
    for p in paths:
        doc = xmp.XmpDoc.from_bytes(Path(str(p) + ".xmp").read_bytes())
        assert {"circle", "square", "triangle", "star"} <= set(doc.items(xmp.SUBJECT))
        assert len(doc.items(xmp.TAGSLIST)) == 4
    lib.sidecars_remove()
    assert sorted((tmp_path / "photos").glob("*.xmp")) == sorted(originals)
    for side, data in originals.items():
        assert xmp.keywords_of(xmp.XmpDoc.from_bytes(side.read_bytes())) == xmp.keywords_of(
            xmp.XmpDoc.from_bytes(data))


def test_a_crash_between_rename_and_record_is_recognised(photos):
    """The pending record is adopted when the file on disk is the one it describes, dropped when not."""
    from zsindex.sidecar_sync import plan_targets, sync_one
    from zsindex.sidecars import atomic_write, keyword_entries, load_record, save_record, sha256

    lib, paths, dt, _ = photos
    before = dt.read_bytes()
    wanted = {str(paths[0]): set(keyword_entries("shapes", "star", "zsindex"))}
    [target] = plan_targets(lib.store, ["shapes"], wanted, "ext", None)
    with lib.store.session() as session:
        rec = load_record(session, target.path, target.images[0], sha256(before), resolve=True)
    doc = xmp.XmpDoc.from_bytes(before)
    doc.add(xmp.HIERARCHICAL, "zsindex|shapes|star")
    doc.add(xmp.TAGSLIST, "zsindex/shapes/star")
    doc.add(xmp.SUBJECT, "star")
    rec.entries = {e: "written" for e in target.wanted}
    new = doc.to_bytes()
    rec.sha256 = sha256(new)
    with lib.store.session() as session:
        save_record(session, rec, pending=True)
    atomic_write(target.path, new)  # ... and the process dies before the record is made current
    assert sync_one(lib.store, target, {"shapes"}, dry_run=False)["action"] == "unchanged"
    assert lib.sidecars_remove().updated == 1
    assert xmp.XmpDoc.from_bytes(dt.read_bytes()).items(xmp.SUBJECT) == ["circle", "garden"]
    # Dies before the rename instead: the pending record is dropped, the file was never touched.
    rec.created = False
    with lib.store.session() as session:
        save_record(session, rec, pending=True)
    with lib.store.session() as session:
        assert load_record(session, target.path, target.images[0], sha256(dt.read_bytes()), True).entries == {}


@pytest.mark.parametrize("form", ["attribute", "element"])
def test_a_keyword_property_that_is_not_a_list_is_skipped(photos, form):
    """Written as one plain value (an attribute, or an element with text) by another program: zsindex cannot
    add to it, so the sidecar is left as it is; reading keywords takes the value as one keyword, as exiftool
    does."""
    lib, paths, dt, _ = photos
    prop = ('lr:hierarchicalSubject="places|one text"' if form == "attribute" else "")
    inner = ("" if form == "attribute" else "<lr:hierarchicalSubject>places|one text</lr:hierarchicalSubject>")
    side = Path(str(paths[2]) + ".xmp")
    side.write_text(f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="{xmp.NS_RDF}">'
                    f'<rdf:Description rdf:about="" xmlns:lr="{xmp.NS_LR}" {prop}>{inner}</rdf:Description>'
                    "</rdf:RDF></x:xmpmeta>")
    before = side.read_bytes()
    report = lib.sidecars_write("shapes")
    assert [r for p, r in report.skipped_files] == ["cannot edit, left untouched: lr:hierarchicalSubject is not a list"]
    assert side.read_bytes() == before and report.created + report.updated == 5
    lib.ingest([paths[2].parent], workers=0)  # keywords are read when ingest sees the sidecar change
    assert lib.keywords()[str(paths[2])] == ["one text"]


@needs_exiftool
def test_an_image_moved_with_its_sidecar_keeps_zsindex_keywords_zsindexs(photos):
    """Renamed into another folder with its sidecar (as photo programs move both): ingest finds the move, the
    sidecar's record follows, keywords read there leave zsindex's out, and remove still takes them out."""
    lib, paths, dt, _lr = photos
    lib.ingest([paths[0].parent], workers=0)  # reads the user's keywords of the sidecars put there
    before, users = exif(dt), lib.keywords()[str(paths[0])]
    lib.sidecars_write("shapes")
    new = paths[0].parent / "sub" / "renamed.png"
    new.parent.mkdir()
    os.rename(paths[0], new)
    os.rename(dt, str(new) + ".xmp")
    assert lib.ingest([paths[0].parent], workers=0).moved == 1
    assert lib.keywords()[str(new)] == users  # not "circle, square, ..." from zsindex's own lists
    report = lib.sidecars_remove()
    assert str(dt) not in json.dumps(report.to_dict())  # the old place is not reported
    assert exif(str(new) + ".xmp") == before


@pytest.mark.parametrize("prefix", ["auto|ai", "auto/ai", " auto | ai "])
def test_a_prefix_with_levels_is_the_same_hierarchy_in_every_program(prefix):
    from zsindex.sidecars import keyword_entries

    assert keyword_entries("colours", "red/dark|x", prefix) == [
        ("colours", xmp.SUBJECT, "red/dark|x"),
        ("colours", xmp.HIERARCHICAL, "auto|ai|colours|red/dark/x"),  # a label stays one level
        ("colours", xmp.TAGSLIST, "auto/ai/colours/red|dark|x")]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_every_command_that_skips_a_sidecar_exits_3(photos, tmp_path):
    """Skipped sidecars make the exit code 3, as skipped files do for ingest, classify, similarity and eval:
    sidecars write and remove (a dry run too, which would skip the same ones), and ingest, which reads the
    user's keywords from the sidecars. A run that skips nothing exits 0."""
    lib, paths, dt, lr = photos
    index = str(tmp_path / "index")
    runner = CliRunner()
    garbage = Path(str(paths[2]) + ".xmp")
    garbage.write_text("garbage\n")

    def run(*args: str, skipped: tuple[Path, ...] = ()) -> dict:
        result = runner.invoke(cli, [*args, "--index", index, "--json"])
        assert result.exit_code == (3 if skipped else 0), result.output
        for side in skipped:
            assert f"skipped {side}: " in result.stderr or f"skipped sidecar {side}: " in result.stderr
        assert ("partly done: " in result.stderr) == bool(skipped)
        return json.loads(result.stdout)

    assert run("sidecars", "write", "-l", "shapes", "--dry-run", skipped=(garbage,))["skipped"] == 1
    report = run("sidecars", "write", "-l", "shapes", skipped=(garbage,))
    assert (report["skipped"], report["created"] + report["updated"]) == (1, 5)
    assert garbage.read_text() == "garbage\n"
    assert run("sidecars", "write", "-l", "shapes", "--path", "*/" + paths[0].name)["skipped"] == 0
    dt.write_text("garbage\n")  # a sidecar zsindex wrote, broken since: remove cannot take its keywords out
    assert run("sidecars", "remove", "--dry-run", skipped=(dt,))["skipped"] == 1
    assert run("sidecars", "remove", skipped=(dt,))["skipped"] == 1
    assert run("ingest", str(paths[0].parent), "-x", index, skipped=(dt, garbage))["skipped_sidecars"] == 2
    assert run("ingest", str(paths[0].parent), "-x", index)["skipped_sidecars"] == 0  # unchanged: not read again


@pytest.mark.parametrize("command", ["write", "remove"])
def test_a_dry_run_reports_exactly_what_the_run_does(photos, tmp_path, monkeypatch, command):
    """sidecars write/remove --dry-run against the real run, in every state a sidecar can be in: new, zsindex's
    own, edited by the user, unreadable, and with a write that was interrupted after the rename (its pending
    record is resolved in the dry run too, in memory only)."""
    from zsindex import sidecar_sync

    lib, paths, dt, lr = photos
    folder = paths[0].parent
    lib.sidecars_write("shapes")  # every image: circle, square, triangle, star
    lib.labels_edit("shapes", drop=["star"])  # star's tags go: the next write takes it out
    real_write, calls = sidecar_sync.atomic_write, []

    def dies_after_the_rename(path: str, data: bytes) -> None:
        real_write(path, data)
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the second sidecar is on disk; its record stays pending

    monkeypatch.setattr(sidecar_sync, "atomic_write", dies_after_the_rename)
    with pytest.raises(KeyboardInterrupt):
        lib.sidecars_write("shapes")
    monkeypatch.undo()
    lib.labels_edit("shapes", add="star")
    lib.tag("shapes", mode="multi", threshold=-1.0)  # star is wanted again, in every sidecar
    assert calls == [str(dt), str(lr)]  # the Lightroom sidecar's record is pending
    doc = xmp.XmpDoc.from_bytes(dt.read_bytes())
    doc.remove(xmp.SUBJECT, "circle")  # the user takes one of zsindex's keywords out by hand
    dt.write_bytes(doc.to_bytes())
    Path(str(paths[5]) + ".xmp").write_text("garbage\n")
    before = _files(folder)

    def run(dry_run: bool) -> dict:
        report = lib.sidecars_write("shapes", dry_run=dry_run) if command == "write" else \
            lib.sidecars_remove("shapes", dry_run=dry_run)
        out = report.to_dict()
        assert out.pop("dry_run") is dry_run
        out.pop("seconds")
        return out

    dry = run(True)
    assert _files(folder) == before  # nothing written
    real = run(False)
    assert dry == real
    assert real["skipped"] == 1 and (real["updated"] or real["deleted"])
    if command == "write":
        actions = {Path(d["sidecar"]): d["action"] for d in real["sidecars"]}
        assert actions[lr] == "updated"  # star back into the sidecar whose write was interrupted
    assert run(True) == run(False)  # and again, with nothing left to do


def test_writing_a_set_that_has_no_tags_yet_says_what_to_run(photos):
    lib, _paths, _dt, _lr = photos
    lib.labels_add("pets", "cat,dog")
    report = lib.sidecars_write("pets")
    assert report.created + report.updated == 0
    assert "no tags yet" in report.note and "Library.tag('pets')" in report.note
    r = CliRunner().invoke(cli, ["sidecars", "write", "--labels", "pets", "--index", str(lib.folder), "--json"])
    assert r.exit_code == 0, r.output
    assert "`zsindex tag --labels pets`" in r.stderr and "`zsindex tag --labels pets`" in json.loads(r.stdout)["note"]
    assert lib.sidecars_write("shapes").note is None  # a tagged set: nothing to say
