"""Labels, prompt templates, prompt ensembling and zero-shot scoring.

A label has a name, optional descriptions (what to embed instead of the bare
name) and optional templates of its own. Its vector is CLIP's prompt ensemble:
every description under every template is embedded, normalised, averaged and
normalised again. Scores are cosines; probabilities are the softmax of
``logit_scale * cosine`` over the label set.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import LabelError, check_path, shown

if TYPE_CHECKING:
    from .embedder import Embedder

DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a close-up photo of the {}.",
    "a rendering of a {}.",
)


# The sizes every front end (label files, the command line, the Python API, the HTTP API and the web app's form)
# takes, defined here once: a set made anywhere can be saved from anywhere. A label set's name: tagging.MAX_SET_NAME.
MAX_LABEL_CHARS = 500  # characters of a label's name, of each description, of each template
MAX_SET_LABELS = 10_000  # labels in one set or list
MAX_TEMPLATES = 100  # templates of a set, or of one label


@dataclass(frozen=True)
class Label:
    name: str
    descriptions: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()

    def prompts(self, default_templates: Sequence[str]) -> list[str]:
        texts = self.descriptions or (self.name,)
        templates = self.templates or tuple(default_templates)
        for t in templates:  # every template is checked where it enters; this guards any other way in
            check_template(t, f"label {self.name!r}")
        return [t.format(d) for t in templates for d in texts]


@dataclass(frozen=True)
class LabelScore:
    label: str
    score: float
    cosine: float


@dataclass
class LabelSet:
    labels: list[Label]
    templates: tuple[str, ...] = field(default=DEFAULT_TEMPLATES)

    @property
    def names(self) -> list[str]:
        return [label.name for label in self.labels]


def check_length(text: str, what: str, where: str) -> str:
    """A label's name, a description or a template (what) of at most MAX_LABEL_CHARS characters."""
    if len(text) > MAX_LABEL_CHARS:
        shown = repr(text[:40]) + "…"
        raise LabelError(f"{where}: {what} {shown} is {len(text)} characters long; a {what} is at most "
                         f"{MAX_LABEL_CHARS} characters")
    return text


def check_label(label: Label, where: str) -> Label:
    """A label's sizes: its name, each description and each template within MAX_LABEL_CHARS, at most
    MAX_TEMPLATES templates of its own."""
    check_length(label.name, "label", where)
    for d in label.descriptions:
        check_length(d, "description", f"{where} (label {label.name!r})")
    check_templates(label.templates, f"{where} (label {label.name!r}): templates")
    return label


def check_templates(templates: Any, where: str = "templates=") -> tuple[str, ...]:
    """Prompt templates: a list of strings, each with one {} where the label goes; () means the defaults."""
    if templates is None:
        return ()
    if isinstance(templates, (str, bytes)) or not isinstance(templates, Iterable):
        raise LabelError(f"{where} must be a list of strings such as [\"a photo of a {{}}.\"], "
                         f"not {_shown_value(templates)}")
    out = tuple(templates)
    if len(out) > MAX_TEMPLATES:
        raise LabelError(f"{where}: {len(out)} templates; give at most {MAX_TEMPLATES}")
    for t in out:
        check_template(t, where)
    return out


def template_problem(template: str) -> str | None:
    """Why a template cannot be used, or None: it must hold exactly one plain {} (the label's place), and
    any other brace doubled ({{ and }} stand for literal braces), as str.format reads it."""
    import string

    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template)
                  if name is not None]
    except ValueError as e:  # a single { or } (str.format's own words: "Single '}' encountered ...")
        return f"it has a lone brace ({e}); write a literal brace doubled, {{{{ or }}}}"
    if not fields:
        return ("it has no {} where the label goes" + (" ({{}} is a literal pair of braces, not the label's place)"
                                                        if "{{" in template else ""))
    shown = ["{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
             for name, spec, conv in fields]
    if len(fields) > 1:
        return (f"it has {len(fields)} replacement fields ({', '.join(shown)}); give exactly one {{}} "
                "(write other braces doubled, {{ and }})")
    name, spec, conv = fields[0]
    if name or spec or conv:
        return f"its field {shown[0]} must be a plain {{}} (no name, number, conversion or format)"
    return None


def check_template(template: Any, where: str = "templates=") -> str:
    """One prompt template: a string with exactly one {} and every other brace doubled; LabelError otherwise."""
    if not isinstance(template, str):
        raise LabelError(f"{where}: each template must be a string, not {_shown_value(template)}")
    check_length(template, "template", where)
    problem = template_problem(template)
    if problem:
        raise LabelError(f"{where}: template {template!r} cannot be used: {problem}. A template holds one {{}} "
                         "where the label goes, e.g. \"a photo of a {}.\"")
    return template


def _shown_value(value: Any) -> str:
    """A wrong value in a message: its text and its JSON type (5 (a number), true (a boolean))."""
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
             tuple: "a list", dict: "an object", type(None): "null"}
    text = json.dumps(value, ensure_ascii=False, default=repr) if isinstance(value, (bool, type(None))) else repr(value)
    return f"{text} ({kinds.get(type(value), type(value).__name__)})"


def check_descriptions(descriptions: Any, where: str) -> tuple[str, ...]:
    """A label's descriptions: a string or a list of non-empty strings."""
    if descriptions is None:
        return ()
    if isinstance(descriptions, str):
        descriptions = [descriptions]
    if not isinstance(descriptions, (list, tuple)):
        raise LabelError(f"{where}: descriptions must be a string or a list of strings, not "
                         f"{_shown_value(descriptions)}")
    for d in descriptions:
        if not isinstance(d, str) or not d.strip():
            raise LabelError(f"{where}: each description must be a non-empty string, not {_shown_value(d)}")
    return tuple(check_length(d.strip(), "description", where) for d in descriptions)


def check_label_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise LabelError(f"{where}: a label must be a non-empty string, not {_shown_value(name)}")
    return check_length(name.strip(), "label", where)


LABEL_KEYS = ("label", "descriptions", "templates")


def label_from_fields(name: Any, fields: dict[str, Any], where: str) -> Label:
    """One label from its fields (a label file's entry), every field's type checked.

    ``where`` names the file and the entry; messages add the label and the field.
    """
    name = check_label_name(name, where)
    here = f"{where} (label {name!r})"
    unknown = [k for k in fields if k not in LABEL_KEYS]
    if unknown:
        raise LabelError(f"{here}: unknown key {', '.join(map(repr, unknown))}; use {', '.join(LABEL_KEYS)}")
    descriptions = check_descriptions(fields.get("descriptions"), here)
    templates = check_templates(fields.get("templates"), f"{here}: templates")
    return Label(name, descriptions, templates)


def labels_from_names(names: Any, where: str) -> list[Label]:
    """Labels from a list of names (the Python API, the HTTP API): each one a non-empty string, taken whole."""
    if isinstance(names, (str, bytes)) or not isinstance(names, Iterable):
        raise LabelError(f"{where} must be a list of label names, not {_shown_value(names)}")
    out = []
    for i, name in enumerate(names):
        if isinstance(name, Label):
            out.append(name)
        else:
            out.append(Label(check_label_name(name, f"{where}, item {i + 1}")))
    return _check_unique(out, where)


def check_text(text: str, what: str) -> str:
    """Labels and queries are text: bytes that are not UTF-8 (from a shell argument) are refused with a message."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise LabelError(f"{what} {text.encode('utf-8', 'surrogateescape')!r} is not valid UTF-8 text") from None
    return text


def _check_unique(labels: list[Label], where: str) -> list[Label]:
    if not labels:
        raise LabelError(f"no labels given in {where}; give at least one, e.g. labels='cat,dog'")
    if len(labels) > MAX_SET_LABELS:
        raise LabelError(f"{where}: {len(labels)} labels; a label set holds at most {MAX_SET_LABELS}")
    seen: dict[str, str] = {}
    for label in labels:
        check_label(label, where)
        for text in (label.name, *label.descriptions, *label.templates):
            check_text(text, "the label text")
        key = label.name.casefold()
        if key in seen:
            raise LabelError(f"label {label.name!r} appears twice in {where}; each label must be unique")
        seen[key] = label.name
    return labels


def split_label_list(text: str) -> list[str]:
    """'cat, dog,"duck, wild"' -> ['cat', 'dog', 'duck, wild']: comma-separated, quoted as in CSV."""
    if "\n" in text or "\r" in text:
        raise LabelError(f"the label list {text!r} holds a line break; a label is one line of text: separate "
                         "labels with commas, or write them one a line in a .txt label file")
    try:
        rows = list(csv.reader([text], skipinitialspace=True, strict=True))
    except csv.Error as e:
        raise LabelError(f"cannot read the label list {text!r} ({e}); quote a label holding a comma "
                         "as in CSV: '\"red, dark\",blue'") from None
    return [part.strip() for part in rows[0]] if rows else []


def format_label_list(names: Sequence[str]) -> str:
    """The inverse of split_label_list: names joined by commas, quoted as in CSV where needed."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(names)
    return out.getvalue()


def parse_label_list(text: str) -> list[Label]:
    """'cat, dog,duck' -> three labels; '"red, dark",blue' -> two. Empty items and duplicates are errors."""
    names = split_label_list(text)
    if any(not n for n in names) and any(names):
        raise LabelError(f"empty label in {text!r}: remove the extra comma")
    return _check_unique([Label(n) for n in names if n], "labels=")


def _parse_txt(text: str, where: str) -> list[Label]:
    labels = []
    for line in text.splitlines():
        name = line.strip()
        if name and not name.startswith("#"):
            labels.append(Label(name))
    return labels


def _csv_rows(text: str, where: str) -> list[tuple[int, list[str]]]:
    """(line number, cells) of a CSV label file, read strictly: an unterminated quote is an error, not a label."""
    reader = csv.reader(io.StringIO(text), strict=True)
    rows = []
    try:
        for row in reader:
            rows.append((reader.line_num, row))
    except csv.Error as e:
        raise LabelError(f"{where}, line {reader.line_num}: cannot read the CSV ({e}); a quoted cell must end "
                         "with a quote, e.g. \"red, dark\",a dark red") from None
    return rows


_NAME_COLUMNS = ("label", "name")
_HEADER_WORDS = (*_NAME_COLUMNS, "description", "descriptions", "template", "templates")


def _csv_header(rows: list[tuple[int, list[str]]], where: str) -> tuple[list[str], int] | None:
    """(the header's column names, casefolded; the label column's index) when the first row is a header.

    It is one when its first cell names the label column (label or name; other columns are checked as
    data is read), or when every cell is a header word (label/name, description, template, in any order
    and case) and one names the label column."""
    if not rows:
        return None
    lineno, first = rows[0]
    header = [c.strip().casefold() for c in first]
    words = [h for h in header if h]
    if not header or not words:
        return None
    if header[0] not in _NAME_COLUMNS and not all(h in _HEADER_WORDS for h in words):
        return None
    label_cols = [i for i, h in enumerate(header) if h in _NAME_COLUMNS]
    if not label_cols:
        raise LabelError(f"{where}, line {lineno}: the header names no label column; add one named label "
                         f"(or name) beside {', '.join(words)}")
    if len(label_cols) > 1:
        raise LabelError(f"{where}, line {lineno}: the header names the label column twice "
                         f"({', '.join(header[i] for i in label_cols)}); keep one")
    return header, label_cols[0]


def _parse_csv(text: str, where: str) -> list[Label]:
    rows = _csv_rows(text, where)
    found = _csv_header(rows, where)
    header, label_col = found if found else ([], 0)
    merged: dict[str, tuple[int, dict[str, list[str]]]] = {}
    for i, (lineno, row) in enumerate(rows):
        if found and i == 0 or not any(c.strip() for c in row):
            continue
        name = row[label_col].strip() if label_col < len(row) else ""
        if not name:
            column = "the label column" if found else "the first column (the label)"
            raise LabelError(f"{where}, line {lineno}: {column} is empty")
        _, entry = merged.setdefault(name, (lineno, {"descriptions": [], "templates": []}))
        for col, cell in enumerate(row):
            cell = cell.strip()
            if col == label_col or not cell:
                continue
            kind = header[col] if found and col < len(header) else "description"
            if kind.startswith("template"):
                entry["templates"].append(cell)
            elif kind.startswith("description"):
                entry["descriptions"].append(cell)
            else:
                raise LabelError(f"{where}, line {lineno}: unknown column {kind!r}; use description or template")
    return [label_from_fields(n, e, f"{where}, line {lineno}") for n, (lineno, e) in merged.items()]


def _parse_json(text: str, where: str) -> list[Label]:
    """A list of names or objects {label, descriptions, templates}, or an object mapping names to descriptions
    (a string, a list of strings) or to objects {descriptions, templates}; every field's type is checked."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise LabelError(f"{where}, line {e.lineno}: invalid JSON ({e.msg})") from None
    if isinstance(data, dict) and "labels" in data:
        extra = sorted(set(data) - {"labels"})
        if extra:
            raise LabelError(f"{where}: unknown key {', '.join(map(repr, extra))} beside \"labels\"; give the set's "
                             "templates with templates=, a label's own in its object")
        data = data["labels"]
    labels = []
    if isinstance(data, dict):
        for name, value in data.items():
            entry = f"{where}, label {name!r}"
            if isinstance(value, dict):
                if "label" in value:
                    raise LabelError(f"{entry}: the key already names the label; remove its \"label\" field")
                labels.append(label_from_fields(name, value, where))
            elif value is None or isinstance(value, (str, list)):
                labels.append(label_from_fields(name, {"descriptions": value}, where))
            else:
                raise LabelError(f"{entry}: expected its descriptions (a string or a list of strings) or an object "
                                 f"{{\"descriptions\": [...], \"templates\": [...]}}, not {_shown_value(value)}")
    elif isinstance(data, list):
        for i, item in enumerate(data):
            entry = f"{where}, item {i + 1}"
            if isinstance(item, str):
                labels.append(label_from_fields(item, {}, entry))
            elif isinstance(item, dict):
                keys = [k for k in ("label", "name") if k in item]  # "name" as in a CSV header: the same key
                if len(keys) != 1:
                    raise LabelError(f"{entry}: an object needs one \"label\" (or \"name\") key with the "
                                     f"label's name (it has {', '.join(map(repr, item)) or 'no keys'})")
                fields = {("label" if k == "name" else k): v for k, v in item.items()}
                unknown = [k for k in item if k not in LABEL_KEYS and k != "name"]
                if unknown:
                    raise LabelError(f"{entry}: unknown key {', '.join(map(repr, unknown))}; "
                                     f"use {', '.join(LABEL_KEYS)}")
                labels.append(label_from_fields(fields["label"], fields, entry))
            else:
                raise LabelError(f"{entry}: expected a label name or an object {{\"label\": ...}}, "
                                 f"not {_shown_value(item)}")
    else:
        raise LabelError(f"{where}: expected a list or an object of labels, not {_shown_value(data)}")
    return labels


_PARSERS = {".txt": _parse_txt, ".csv": _parse_csv, ".json": _parse_json}


def parse_label_file(path: Path) -> list[Label]:
    """Labels from a .txt (one a line), .csv or .json file; other extensions are refused, not guessed."""
    check_path(path, "labels_file")
    parser = _PARSERS.get(path.suffix.lower())
    if parser is None:
        raise LabelError(f"label file {shown(path)} is not .txt, .csv or .json; rename it to the extension that "
                         "matches its content")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise LabelError(f"cannot read label file {shown(path)}: {e}") from None
    return _check_unique(parser(text, str(path)), str(path))


def label_vectors(embedder: "Embedder", label_set: LabelSet) -> np.ndarray:
    """(L, d) float32: one prompt-ensembled, unit-length vector per label."""
    prompts: list[str] = []
    spans: list[tuple[int, int]] = []
    for label in label_set.labels:
        ps = label.prompts(label_set.templates)
        spans.append((len(prompts), len(prompts) + len(ps)))
        prompts.extend(ps)
    text_vecs = embedder.embed_texts(prompts)
    out = np.stack([text_vecs[a:b].mean(axis=0) for a, b in spans])
    return normalise(out)


def normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def rank(
    image_vecs: np.ndarray, label_vecs: np.ndarray, names: Sequence[str], logit_scale: float, top_k: int | None = None
) -> list[list[LabelScore]]:
    """Per image: labels best first with softmax probability and raw cosine."""
    cos = image_vecs @ label_vecs.T
    probs = softmax(logit_scale * cos)
    order = np.argsort(-probs, axis=1, kind="stable")[:, : top_k or len(names)]
    return [
        [LabelScore(names[j], float(probs[i, j]), float(cos[i, j])) for j in row] for i, row in enumerate(order)
    ]
