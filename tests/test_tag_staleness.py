"""Tags describe content: when a file's content changes, its old tags stop being served (issue 10, item 8).

The class: a file rewritten in place, a file that turns unreadable, a file that
vanishes and comes back with other content; against that, a move or a touch
(same content) keeps its tags. Every reader of tags is checked: search --tag,
tag counts, tag rows and export.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from zsindex import shapes
from zsindex.cli import cli
from zsindex.library import Library

from .conftest import FIXTURES


def draw(path: Path, colour: str, shape: str, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(shapes.draw([shapes.Thing(colour, shape)], size=64, rng=rng)).save(path)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # a clearly newer mtime


def tagged(lib: Library, label: str) -> set[str]:
    """Every way a user reads tags, which must agree: search --tag, tag rows, counts, export."""
    by_search = {Path(h.path).name for h in lib.search("a shape", tag=label, k=50)}
    by_rows = {Path(r["path"]).name for r in lib.tag_rows("colours") if r["label"] == label}
    assert by_search == by_rows
    assert lib.tag_counts("colours").get(label, 0) == len(by_rows)
    out = CliRunner().invoke(cli, ["export", "-l", "colours", "--index", str(lib.folder), "--csv"])
    assert out.exit_code == 0, out.output
    by_export = {Path(line.rsplit(",", 2)[0]).name for line in out.stdout.splitlines()[1:]
                 if line.rsplit(",", 2)[1] == label}
    assert by_export == by_rows
    return by_rows


@pytest.fixture
def lib(tmp_path, demo_embedder):
    library = Library(tmp_path / "index", embedder=demo_embedder)
    yield library
    library.close()


def retag(lib: Library) -> None:
    lib.tag("colours", mode="single", threshold=0.0)  # each image's best colour: exact for the demo model


def ingest(lib: Library, folder: Path):
    return lib.ingest([folder], workers=0)


def test_changed_content_loses_its_tags_and_moves_keep_theirs(lib, tmp_path):
    p = tmp_path / "p"
    draw(p / "a.png", "red", "square")
    draw(p / "b.png", "blue", "circle")
    draw(p / "c.png", "green", "star")
    ingest(lib, p)
    lib.labels_add("colours", "red,green,blue")
    retag(lib)
    assert tagged(lib, "red") == {"a.png"} and tagged(lib, "blue") == {"b.png"} and tagged(lib, "green") == {"c.png"}

    draw(p / "a.png", "blue", "square", seed=1)  # the red square is now a blue one, same path
    os.rename(p / "c.png", p / "c-moved.png")  # same content elsewhere
    os.utime(p / "b.png", ns=(0, (p / "b.png").stat().st_mtime_ns + 10**9))  # touched, content unchanged
    report = ingest(lib, p)
    assert (report.changed, report.moved) == (2, 1)
    assert tagged(lib, "red") == set()  # not served as current, with no re-tag in between
    assert tagged(lib, "blue") == {"b.png"}  # a touch keeps the tags of the same content
    assert tagged(lib, "green") == {"c-moved.png"}  # a move keeps its tags
    retag(lib)
    assert tagged(lib, "blue") == {"a.png", "b.png"} and tagged(lib, "red") == set()


def test_unreadable_or_returning_files_lose_their_tags(lib, tmp_path):
    p = tmp_path / "p"
    draw(p / "a.png", "red", "square")
    draw(p / "b.png", "blue", "circle")
    draw(p / "c.png", "green", "star")  # stays as it is
    ingest(lib, p)
    lib.labels_add("colours", "red,green,blue")
    retag(lib)
    assert tagged(lib, "red") == {"a.png"} and tagged(lib, "blue") == {"b.png"}

    shutil.copy(FIXTURES / "broken_data_stream.png", p / "a.png")  # the file turns unreadable
    (p / "b.png").unlink()  # and this one vanishes
    report = ingest(lib, p)
    assert (report.skipped, report.deleted) == (1, 1)
    assert tagged(lib, "red") == set() and tagged(lib, "blue") == set()

    draw(p / "a.png", "green", "triangle")  # readable again, other content
    draw(p / "b.png", "red", "circle", seed=3)  # back at the same path, other content
    report = ingest(lib, p)
    assert report.changed + report.added == 2
    assert tagged(lib, "red") == set() and tagged(lib, "blue") == set()
    retag(lib)
    assert tagged(lib, "red") == {"b.png"} and tagged(lib, "green") == {"a.png", "c.png"}


def test_ingest_says_how_many_images_lost_their_tags_and_what_refreshes_them(lib, tmp_path):
    """The tags of changed files go (above); ingest says so on stderr, with the count in its result, and names
    the commands that bring the tags back, and the sidecars when zsindex wrote keywords into theirs."""
    p = tmp_path / "p"
    for name, colour in (("a.png", "red"), ("b.png", "blue"), ("c.png", "green")):
        draw(p / name, colour, "square")
    ingest(lib, p)
    lib.labels_add("colours", "red,green,blue")
    retag(lib)
    draw(p / "new.png", "red", "star")  # indexed after the tagging: it has no tags to lose
    ingest(lib, p)
    index = str(lib.folder)

    def run_ingest() -> tuple[dict, str]:
        r = CliRunner().invoke(cli, ["ingest", str(p), "--index", index, "--json"])
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout), r.stderr

    draw(p / "a.png", "blue", "circle", seed=1)
    draw(p / "new.png", "green", "star", seed=2)
    out, err = run_ingest()
    assert (out["changed"], out["tags_dropped"]) == (2, 1)
    assert ("warning: 1 image lost its tags because its file changed (label set 'colours'); "
            "`zsindex tag --labels colours` tags it again\n") in err
    assert "sidecars" not in err  # zsindex wrote none
    out, err = run_ingest()  # nothing changed: nothing to say
    assert out["tags_dropped"] == 0 and "lost" not in err
    lib.labels_add("shapes", "circle,square")
    lib.tag("shapes", mode="single", threshold=0.0)
    retag(lib)
    lib.sidecars_write("colours")
    for name, colour in (("a.png", "green"), ("b.png", "red"), ("c.png", "blue")):
        draw(p / name, colour, "star", seed=4)
    out, err = run_ingest()
    assert out["tags_dropped"] == 3
    assert ("warning: 3 images lost their tags because their files changed (label sets 'colours', 'shapes'); "
            "`zsindex tag --labels SET` tags them again, then `zsindex sidecars write --labels SET` brings the "
            "sidecars up to date (3 XMP sidecars still hold the old keywords)\n") in err
