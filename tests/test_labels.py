import json

import numpy as np
import pytest

from zsindex.errors import LabelError
from zsindex.labels import (
    DEFAULT_TEMPLATES,
    Label,
    LabelSet,
    check_templates,
    label_vectors,
    parse_label_file,
    parse_label_list,
    rank,
)


def test_label_list_trims_and_keeps_order():
    assert [x.name for x in parse_label_list(" cat, dog ,duck ")] == ["cat", "dog", "duck"]


@pytest.mark.parametrize("text, message", [("", "no labels"), (" , ", "no labels"), ("a,,b", "empty label"),
                                           ("cat,Cat", "twice"), ("a,b,", "empty label")])
def test_bad_label_lists(text, message):
    with pytest.raises(LabelError, match=message):
        parse_label_list(text)


def test_unicode_labels():
    assert [x.name for x in parse_label_list("猫,chien,Ölbaum")] == ["猫", "chien", "Ölbaum"]


def test_txt_file(tmp_path):
    f = tmp_path / "l.txt"
    f.write_text("# animals\ncat\n\n dog \n", encoding="utf-8")
    assert [x.name for x in parse_label_file(f)] == ["cat", "dog"]


def test_csv_file_with_header_descriptions_and_templates(tmp_path):
    f = tmp_path / "l.csv"
    f.write_text("label,description,template\nduck,a duck,a photo of {}.\nduck,a bird that swims and quacks,\ncat,,\n")
    labels = parse_label_file(f)
    assert labels[0] == Label("duck", ("a duck", "a bird that swims and quacks"), ("a photo of {}.",))
    assert labels[1] == Label("cat")


@pytest.mark.parametrize("header", ["description,label,template", "Template,Description,Label",
                                    "template,name,description", "DESCRIPTIONS,Name,Templates",
                                    "label,template,description"])
def test_csv_header_in_any_order_and_case(tmp_path, header):
    """A first row of header words only (label or name, description, template) is the header wherever the
    label column is: `description,label,template` once made a label named "description"."""
    cols = [h.strip().casefold().rstrip("s") for h in header.split(",")]
    cells = {"label": "duck", "name": "duck", "description": "a duck", "template": "a photo of {}."}
    f = tmp_path / "l.csv"
    f.write_text(header + "\n" + ",".join(cells[c] for c in cols) + "\n"
                 + ",".join("cat" if c in ("label", "name") else "" for c in cols) + "\n")
    assert parse_label_file(f) == [Label("duck", ("a duck",), ("a photo of {}.",)), Label("cat")]


@pytest.mark.parametrize("text, message", [("description,template\nduck,a\n", "names no label column"),
                                           ("label,name\nduck,duck\n", "label column twice"),
                                           ("description,label\na duck,\n", "line 2: the label column is empty"),
                                           ("label,colour\nduck,yellow\n", "unknown column 'colour'")])
def test_csv_header_errors(tmp_path, text, message):
    f = tmp_path / "l.csv"
    f.write_text(text)
    with pytest.raises(LabelError, match=message):
        parse_label_file(f)


def test_csv_first_row_of_data_is_not_a_header(tmp_path):
    f = tmp_path / "l.csv"
    f.write_text("duck,description of a duck\ncat\n")  # not every cell is a header word: data
    assert [x.name for x in parse_label_file(f)] == ["duck", "cat"]


def test_csv_file_without_header(tmp_path):
    f = tmp_path / "l.csv"
    f.write_text("duck,a duck,a water bird\ncat\n")
    assert parse_label_file(f)[0].descriptions == ("a duck", "a water bird")


def test_csv_error_names_the_line(tmp_path):
    f = tmp_path / "l.csv"
    f.write_text("cat\n,orphan description\n")
    with pytest.raises(LabelError, match="line 2"):
        parse_label_file(f)


def test_json_forms(tmp_path):
    f = tmp_path / "l.json"
    f.write_text(json.dumps({"duck": ["a duck", "a bird that swims and quacks"], "cat": {"templates": ["{}!"]}}))
    labels = parse_label_file(f)
    assert labels[0].descriptions == ("a duck", "a bird that swims and quacks")
    assert labels[1].templates == ("{}!",)
    f.write_text(json.dumps(["cat", {"label": "dog", "descriptions": "a dog"}]))
    assert [x.descriptions for x in parse_label_file(f)] == [(), ("a dog",)]


def test_json_error_names_the_line(tmp_path):
    f = tmp_path / "l.json"
    f.write_text('[\n"cat",\n"dog"\n"duck"]')
    with pytest.raises(LabelError, match="line 4"):
        parse_label_file(f)


def test_duplicate_in_file_and_bad_template(tmp_path):
    f = tmp_path / "l.txt"
    f.write_text("cat\nCAT\n")
    with pytest.raises(LabelError, match="twice"):
        parse_label_file(f)
    with pytest.raises(LabelError, match=r"no \{\} where the label goes"):
        check_templates(["no slot"])


def test_prompts_cross_descriptions_and_templates():
    label = Label("duck", ("a duck", "a water bird"))
    assert label.prompts(("a photo of {}.", "{}")) == ["a photo of a duck.", "a photo of a water bird.", "a duck",
                                                       "a water bird"]
    assert Label("cat").prompts(DEFAULT_TEMPLATES)[0] == "a photo of a cat."


def test_prompt_ensemble_is_normalised_mean(demo_embedder):
    ls = LabelSet([Label("red circle")], ("a photo of a {}.", "a {}"))
    vec = label_vectors(demo_embedder, ls)[0]
    parts = demo_embedder.embed_texts(["a photo of a red circle.", "a red circle"])
    expected = parts.mean(axis=0) / np.linalg.norm(parts.mean(axis=0))
    np.testing.assert_allclose(vec, expected, atol=1e-5)


def test_rank_softmax_sorted():
    img = np.array([[1.0, 0.0]], dtype=np.float32)
    lab = np.array([[0.0, 1.0], [1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    [row] = rank(img, lab, ["a", "b", "c"], logit_scale=10.0)
    assert [s.label for s in row] == ["b", "c", "a"]
    assert abs(sum(s.score for s in row) - 1) < 1e-6
    assert row[0].cosine == pytest.approx(1.0)
    e = np.exp(10 * np.array([0.0, 1.0, 0.6]))
    assert row[0].score == pytest.approx(e[1] / e.sum(), rel=1e-5)
    assert len(rank(img, lab, ["a", "b", "c"], 10.0, top_k=2)[0]) == 2
