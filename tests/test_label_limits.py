"""One size limit for label names, descriptions, templates, set names and set sizes, in every front end.

labels.py defines them once (MAX_LABEL_CHARS, MAX_SET_LABELS, MAX_TEMPLATES; tagging.MAX_SET_NAME); label files,
the command line, the Python API and the HTTP API take exactly what fits and refuse one character (or one label,
one template) more. A set made on the command line can always be saved again from the web app's form, which
PUTs the set's own JSON (a 5,000-character label used to be taken by the CLI and refused by the HTTP API).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

import zsindex
from zsindex.cli import cli
from zsindex.errors import LabelError
from zsindex.labels import MAX_LABEL_CHARS, MAX_SET_LABELS, MAX_TEMPLATES, Label, LabelSet
from zsindex.service import create_app
from zsindex.tagging import MAX_SET_NAME


@pytest.fixture
def index(tmp_path, demo_embedder):
    folder = tmp_path / "index"
    lib = zsindex.open(folder, embedder=demo_embedder, create=True)
    app = create_app(zsindex.open(folder, embedder=demo_embedder))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield folder, lib, client


def _labels_file(folder: Path, labels: list[dict[str, Any]]) -> Path:
    path = folder / "labels.json"
    path.write_text(json.dumps(labels))
    return path


TEMPLATE = "a photo of a {}."


def _template(chars: int) -> str:
    return "a" * (chars - 2) + "{}"


# what -> (the largest that fits, one too many), each a function of (tmp_path) giving
# (set name, labels as JSON objects, set templates)
SIZES = {
    "label name": lambda n: ("s", [{"label": "x" * n}], []),
    "description": lambda n: ("s", [{"label": "x", "descriptions": ["d" * n]}], []),
    "label template": lambda n: ("s", [{"label": "x", "templates": [_template(n)]}], []),
    "set template": lambda n: ("s", [{"label": "x"}], [_template(n)]),
    "set name": lambda n: ("n" * n, [{"label": "x"}], []),
    "labels in a set": lambda n: ("s", [{"label": f"label {i}"} for i in range(n)], []),
    "templates of a set": lambda n: ("s", [{"label": "x"}], [f"{i} {{}}" for i in range(n)]),
}
LIMITS = {"label name": MAX_LABEL_CHARS, "description": MAX_LABEL_CHARS, "label template": MAX_LABEL_CHARS,
          "set template": MAX_LABEL_CHARS, "set name": MAX_SET_NAME, "labels in a set": MAX_SET_LABELS,
          "templates of a set": MAX_TEMPLATES}


def _cli(index: Path, tmp_path: Path, name: str, labels: list[dict], templates: list[str]) -> bool:
    args = ["labels", "add", name, "--index", str(index), "--labels-file", str(_labels_file(tmp_path, labels))]
    for t in templates:
        args += ["-t", t]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code in (0, 2), result.output
    assert result.exit_code == 0 or "Usage:" in result.output
    return result.exit_code == 0


def _api(lib: Any, name: str, labels: list[dict], templates: list[str]) -> bool:
    label_set = LabelSet([Label(x["label"], tuple(x.get("descriptions", ())), tuple(x.get("templates", ())))
                          for x in labels])
    try:
        lib.labels_add(name, label_set, templates)
    except LabelError:
        return False
    return True


def _http(client: Any, name: str, labels: list[dict], templates: list[str]) -> bool:
    r = client.put(f"/api/labels/{name}", json={"labels": [x["label"] for x in labels], "templates": templates})
    assert r.status_code in (201, 422), r.text
    return r.status_code == 201


NOT_HTTP = {"description", "label template"}  # the HTTP API takes label names and the set's templates


@pytest.mark.parametrize("what, front", [(w, f) for w in SIZES for f in ("cli", "api", "http")
                                         if not (f == "http" and w in NOT_HTTP)])
def test_every_front_end_takes_the_same_sizes(index, tmp_path, what, front):
    folder, lib, client = index
    limit = LIMITS[what]
    for size, fits in ((limit, True), (limit + 1, False)):
        name, labels, templates = SIZES[what](size)
        if front == "cli":
            taken = _cli(folder, tmp_path, name, labels, templates)
        elif front == "api":
            taken = _api(lib, name, labels, templates)
        else:
            taken = _http(client, name, labels, templates)
        assert taken == fits, (what, front, size)
        if taken:
            lib.labels_remove(name)
    assert lib.labels_list() == []  # a refused set leaves nothing behind


def test_a_set_made_on_the_command_line_is_saved_again_from_its_own_json(index):
    """The web app's edit form PUTs the set it read: whatever the CLI took, the HTTP API takes back."""
    folder, _, client = index
    longest = "x" * MAX_LABEL_CHARS
    result = CliRunner().invoke(cli, ["labels", "add", "long", "--labels", f"{longest},short", "-t", _template(
        MAX_LABEL_CHARS), "--index", str(folder)])
    assert result.exit_code == 0, result.output
    shown = client.get("/api/labels/long").json()
    labels = [lab["label"] if isinstance(lab, dict) else lab for lab in shown["labels"]]
    assert longest in labels
    r = client.put("/api/labels/long", json={"labels": labels, "templates": shown.get("templates")})
    assert r.status_code == 200, r.text


def test_the_reported_label_is_refused_everywhere(index, tmp_path):
    """`labels add long --labels xxxx...` (5,000 characters): exit 2 on the CLI, as the API and HTTP refuse it."""
    folder, lib, client = index
    huge = "x" * 5000
    result = CliRunner().invoke(cli, ["labels", "add", "long", "--labels", huge, "--index", str(folder)])
    assert result.exit_code == 2, result.output
    assert f"is 5000 characters long; a label is at most {MAX_LABEL_CHARS} characters" in result.output
    with pytest.raises(LabelError, match="at most 500 characters"):
        lib.labels_add("long", [huge])
    with pytest.raises(LabelError, match="at most 500 characters"):
        lib.labels_add("long", huge)
    assert client.put("/api/labels/long", json={"labels": [huge]}).status_code == 422
    assert lib.labels_list() == []
    # the edit that would add it, and a classification with it, are refused the same way
    lib.labels_add("ok", "a,b")
    result = CliRunner().invoke(cli, ["labels", "edit", "ok", "--add", huge, "--index", str(folder)])
    assert result.exit_code == 2 and "at most 500 characters" in result.output, result.output
    with pytest.raises(LabelError, match="at most 500 characters"):
        lib.labels_edit("ok", add=[huge])
    assert [lab["label"] for lab in lib.labels_show("ok")["labels"]] == ["a", "b"]


def test_an_edit_cannot_grow_a_set_past_its_size(index):
    _, lib, _ = index
    lib.labels_add("big", [f"label {i}" for i in range(MAX_SET_LABELS)])
    with pytest.raises(LabelError, match=f"would hold {MAX_SET_LABELS + 1} labels"):
        lib.labels_edit("big", add=["one more"])
    lib.labels_edit("big", add=["one more"], drop=["label 0"])  # as many as before: fine
    assert len(lib.labels_show("big")["labels"]) == MAX_SET_LABELS
