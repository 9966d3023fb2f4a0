"""Label sets in the index, label-vector cache, bulk tagging from stored vectors, calibration.

Tagging never decodes or embeds an image: it streams the stored image vectors
from SQL in batches and multiplies them by the label vectors.

Calibration (how each label's threshold is found) lives in calibration.py.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from . import schema as s
from .errors import LabelError, UsageError, known_list
from .labels import (
    DEFAULT_TEMPLATES,
    MAX_SET_LABELS,
    Label,
    LabelSet,
    check_label,
    check_templates,
    label_vectors,
    template_problem,
)
from .store import Store, insert_ignoring_duplicates, model_dim, now

if TYPE_CHECKING:
    from .embedder import Embedder

MIN_CALIBRATION_IMAGES = 50  # below this, score distributions say little: the report warns
BACKGROUND = Label("none of these", ("thing", "object"))


# -- label sets ---------------------------------------------------------------------------------
def row_label(row: s.LabelRow) -> Label:
    return Label(row.name, tuple(json.loads(row.descriptions)), tuple(json.loads(row.templates)))


def set_templates(row: s.LabelSetRow) -> tuple[str, ...]:
    return tuple(json.loads(row.templates)) if row.templates else DEFAULT_TEMPLATES


def set_names(session: Session) -> list[str]:
    return list(session.scalars(select(s.LabelSetRow.name).order_by(s.LabelSetRow.name)))


def resolve_set_name(names: Sequence[str], name: str) -> str | None:
    """The stored name a set name means, or None: the exact name first, else the one name equal to it
    ignoring case (set names compare as labels do). Names differing only in case (an index made before
    this rule) make a case-insensitive match ambiguous: LabelError, naming them."""
    if name in names:
        return name
    matches = [n for n in names if n.casefold() == name.casefold()]
    if len(matches) > 1:
        raise LabelError(f"label set name {name!r} matches {', '.join(map(repr, matches))}, which differ only in "
                         "case; give the name exactly as written")
    if not matches and "," in name:  # an ad-hoc list as typed ("red, dark blue"): the name it was registered under
        from .labels import split_label_list

        try:
            registered = adhoc_set_name(split_label_list(name))
        except (UsageError, ValueError):
            return None
        return resolve_set_name(names, registered) if registered != name else None
    return matches[0] if matches else None


def find_set(session: Session, name: str) -> s.LabelSetRow | None:
    """The set a name means (see resolve_set_name), or None."""
    found = resolve_set_name(set_names(session), name)
    if found is None:
        return None
    return session.scalars(select(s.LabelSetRow).where(s.LabelSetRow.name == found)).first()


def set_exists(session: Session, name: str) -> bool:
    return find_set(session, name) is not None


def no_set_error(session: Session, name: str, create_hint: bool = True) -> LabelError:
    """The error for a set name that names no set: the known sets (the first few), and how to make one."""
    known = known_list(map(repr, set_names(session)), near=repr(name))
    hint = f"; create it with Library.labels_add({name!r}, ...)" if create_hint else ""
    return LabelError(f"no label set named {name!r} (known: {known}){hint}")


def get_set(session: Session, name: str, create_hint: bool = True) -> tuple[s.LabelSetRow, list[s.LabelRow]]:
    row = find_set(session, name)
    if row is None:
        raise no_set_error(session, name, create_hint)
    labels = list(session.scalars(select(s.LabelRow).where(s.LabelRow.set_id == row.id).order_by(s.LabelRow.position)))
    return row, labels


def check_stored_templates(row: s.LabelSetRow, labels: Sequence[s.LabelRow]) -> None:
    """Refuse, with a message naming the set, a stored template that cannot be used (an index written before
    templates were checked in full): before anything formats it."""
    for where, template in [("", t) for t in set_templates(row)] + [
            (f" (label {r.name!r})", t) for r in labels for t in row_label(r).templates]:
        problem = template_problem(template) if isinstance(template, str) else "it is not a string"
        if problem:
            raise LabelError(f"label set {row.name!r} in this index has template {template!r}{where} that cannot "
                             f"be used: {problem}. Remove the set with Library.labels_remove({row.name!r}) and add "
                             "it again with templates holding one {} each, e.g. \"a photo of a {}.\"")


def as_label_set(row: s.LabelSetRow, labels: list[s.LabelRow]) -> LabelSet:
    check_stored_templates(row, labels)
    return LabelSet([row_label(r) for r in labels], set_templates(row))


def _insert_labels(session: Session, set_id: int, labels: Sequence[Label], start: int) -> None:
    if not labels:
        return
    for lab in labels:  # every way into a set (a LabelSet built in Python too) stores labels of the same sizes
        check_label(lab, "label set")
    session.execute(insert(s.LabelRow), [
        {"set_id": set_id, "name": lab.name, "descriptions": json.dumps(list(lab.descriptions), ensure_ascii=False),
         "templates": json.dumps(list(lab.templates), ensure_ascii=False), "position": start + i, "tagged_key": None}
        for i, lab in enumerate(labels)
    ])


MAX_SET_NAME = 200  # the HTTP API's limit too (routes_labels.SetName), as labels.MAX_LABEL_CHARS is a label's
_SET_NAME_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def set_name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a new label set, or None. A set's name is a URL path segment of the HTTP API
    (/api/labels/NAME) and a word of a shell command, so it may not hold '/', be '.' or '..', hold control
    characters or line breaks, start or end with a space, or be longer than MAX_SET_NAME characters."""
    from .output import shown

    if not isinstance(name, str) or not name.strip():
        return "a label set needs a name"
    if len(name) > MAX_SET_NAME:
        return f"a label set's name is at most {MAX_SET_NAME} characters, not {len(name)}"
    if _SET_NAME_CONTROL.search(name):
        return f"label set name '{shown(name)}' holds a control character or line break; choose another name"
    if "/" in name:
        return f"label set name {name!r} holds '/', which a URL (/api/labels/NAME) cannot carry; choose another name"
    if name in (".", ".."):
        return f"{name!r} cannot name a label set (a URL reads it as a folder); choose another name"
    if name != name.strip():
        return f"label set name {name!r} starts or ends with a space; choose another name"
    return None


def check_set_name(name: object) -> str:
    """The name of a label set about to be created (or renamed), checked: see set_name_problem. Sets an
    older index holds under such names stay usable by name from the CLI and the Python API."""
    problem = set_name_problem(name)
    if problem is not None:
        raise LabelError(problem)
    return name  # type: ignore[return-value]


def adhoc_set_name(names: Sequence[str]) -> str:
    """The name an ad-hoc label list ('cat,dog') is registered under: its labels comma-separated (CSV quoting),
    or, where that cannot name a set (a '/', a control character, too long...), a safe form of it with a
    short hash of the list, so that the same list always finds the same set."""
    from .labels import format_label_list

    name = format_label_list(names)
    if set_name_problem(name) is None:
        return name
    digest = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    base = _SET_NAME_CONTROL.sub(" ", name).replace("/", "\u2215").strip()  # U+2215 DIVISION SLASH
    base = " ".join(base.split())[: MAX_SET_NAME - 12].strip()
    return f"{base} #{digest}" if base not in ("", ".", "..") else f"labels #{digest}"


def add_set(session: Session, name: str, labels: Sequence[Label], templates: Sequence[str] = ()) -> s.LabelSetRow:
    check_set_name(name)
    names = set_names(session)
    if name in names:
        raise LabelError(f"label set {name!r} exists; add or drop labels with Library.labels_edit({name!r})")
    same = [n for n in names if n.casefold() == name.casefold()]
    if same:
        raise LabelError(f"label set {same[0]!r} exists, and set names ignore case, as labels do: {name!r} would "
                         f"be the same set; add or drop its labels with Library.labels_edit({same[0]!r}), or "
                         "choose another name")
    _check_size(name, len(labels))
    stamp = now()
    row = s.LabelSetRow(name=name, version=1, created_at=stamp, updated_at=stamp,
                        templates=json.dumps(list(check_templates(templates))) if templates else None)
    session.add(row)
    session.flush()
    _insert_labels(session, row.id, labels, 0)
    return row


def _check_size(name: str, count: int) -> None:
    if count > MAX_SET_LABELS:
        raise LabelError(f"label set {name!r} would hold {count} labels; a set holds at most {MAX_SET_LABELS}")


def edit_set(session: Session, name: str, add: Sequence[Label] = (), drop: Sequence[str] = ()) -> s.LabelSetRow:
    """Add or drop labels; bumps the version. Dropped labels take their tags with them."""
    row, current = get_set(session, name)
    name = row.name  # as stored: the name given may differ in case
    names = {r.name.casefold(): r for r in current}
    missing = [d for d in drop if d.casefold() not in names]
    if missing:
        raise LabelError(f"label set {name!r} has no label {known_list(map(repr, missing))} "
                         f"(its labels: {known_list((r.name for r in current), near=missing[0])})")
    clash = [lab.name for lab in add if lab.name.casefold() in names and lab.name not in drop]
    if clash:
        raise LabelError(f"label set {name!r} already has {known_list(map(repr, clash))}")
    dropped = [names[d.casefold()].id for d in drop]
    _check_size(name, len(current) - len(dropped) + len(add))
    if dropped:
        session.execute(delete(s.Tag).where(s.Tag.label_id.in_(dropped)))
        session.execute(delete(s.LabelRow).where(s.LabelRow.id.in_(dropped)))
    _insert_labels(session, row.id, add, max((r.position for r in current), default=-1) + 1)
    if len(current) - len(dropped) + len(add) == 0:
        raise LabelError(f"label set {name!r} would have no labels left; remove it with "
                         f"Library.labels_remove({name!r})")
    row.version += 1
    row.updated_at = now()
    return row


def remove_set(session: Session, name: str) -> None:
    row, labels = get_set(session, name, create_hint=False)
    session.execute(delete(s.Tag).where(s.Tag.label_id.in_([r.id for r in labels])))
    session.delete(row)


def list_sets(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        select(s.LabelSetRow.name, s.LabelSetRow.version, func.count(s.LabelRow.id))
        .join(s.LabelRow, s.LabelRow.set_id == s.LabelSetRow.id, isouter=True)
        .group_by(s.LabelSetRow.id, s.LabelSetRow.name, s.LabelSetRow.version).order_by(s.LabelSetRow.name)
    ).all()
    return [{"name": n, "version": v, "labels": c} for n, v, c in rows]


# -- label vectors ------------------------------------------------------------------------------
def prompts_key(label: Label, templates: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(label.prompts(templates), ensure_ascii=False).encode()).hexdigest()


def cached_label_vectors(store: Store, model_id: int, label_set: LabelSet,
                         embedder: "Embedder | None" = None, loader: Any = None) -> np.ndarray:
    """(L, d) label vectors, embedding only labels whose prompts were never embedded with this model."""
    keys = [prompts_key(lab, label_set.templates) for lab in label_set.labels]
    found: dict[str, np.ndarray] = {}
    damaged: list[str] = []  # cached with the wrong length: embedded again, and replaced
    with store.session() as session:
        dim = model_dim(session, model_id)
        for i in range(0, len(keys), 900):
            for k, v in session.execute(select(s.LabelVector.prompts_sha256, s.LabelVector.vector).where(
                    s.LabelVector.model_id == model_id, s.LabelVector.prompts_sha256.in_(keys[i:i + 900]))):
                if len(v) == 4 * dim:
                    found[k] = np.frombuffer(v, dtype=np.float32)
                else:
                    damaged.append(k)
    todo = [i for i, k in enumerate(keys) if k not in found]
    if todo:
        emb = embedder if embedder is not None else loader()
        fresh = label_vectors(emb, LabelSet([label_set.labels[i] for i in todo], label_set.templates))
        with store.session() as session:
            if damaged:
                session.execute(delete(s.LabelVector).where(s.LabelVector.model_id == model_id,
                                                            s.LabelVector.prompts_sha256.in_(damaged)))
            session.execute(insert_ignoring_duplicates(session, s.LabelVector), [
                {"model_id": model_id, "prompts_sha256": keys[i], "vector": v.astype(np.float32).tobytes()}
                for i, v in zip(todo, fresh)])
        found.update((keys[i], v) for i, v in zip(todo, fresh))
    return np.stack([found[k] for k in keys])


@dataclass
class TagReport:
    label_set: str
    version: int
    mode: str
    images: int = 0
    labels_computed: int = 0
    labels_reused: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    tags: list[dict[str, Any]] = field(default_factory=list)  # per image, when asked for
    seconds: float = 0.0
    warning: str | None = None
    notes: list[str] = field(default_factory=list)  # what the caller should be told (ad-hoc set, no images)

    def summary(self) -> dict[str, Any]:
        return {"label_set": self.label_set, "version": self.version, "mode": self.mode, "images": self.images,
                "labels_computed": self.labels_computed, "labels_reused": self.labels_reused,
                "counts": self.counts, "seconds": round(self.seconds, 3),
                **({"warning": self.warning} if self.warning else {})}


def tag_label_ids(session: Session, label: str, label_set: str | None = None) -> list[int]:
    """Ids of the labels a --tag names: LABEL in any set; SET:LABEL, or label_set given, in that set only.

    Labels compare ignoring case, as duplicate labels do; so do set names (see resolve_set_name). SET:LABEL
    splits at any colon, so a set or a label may itself hold one ("my:set:red" is label "red" of set "my:set").
    """
    rows = session.execute(select(s.LabelRow.id, s.LabelSetRow.name, s.LabelRow.name)
                           .join(s.LabelSetRow, s.LabelSetRow.id == s.LabelRow.set_id)).all()
    wanted = label.casefold()
    names = set_names(session)
    if label_set is not None:
        found = resolve_set_name(names, label_set)
        # SET:LABEL of that same set says the same thing twice: the label is what follows the set's name
        also = wanted[len(found) + 1:] if found and wanted.startswith(found.casefold() + ":") else None
        return [i for i, set_name, name in rows if set_name == found and name.casefold() in (wanted, also)]
    splits = set()
    for i, c in enumerate(label):
        if c == ":":
            found = resolve_set_name(names, label[:i])
            if found is not None:
                splits.add((found, label[i + 1:].casefold()))
    # Each way of reading the text that names some label: the whole text as a label of any set, or a split
    readings: dict[tuple[str, ...], tuple[str, list[int]]] = {}  # a reading -> (as the message says it, ids)
    for i, set_name, name in rows:
        if name.casefold() == wanted:
            readings.setdefault(("any set",), (f"the label {name!r} (in any set)", []))[1].append(i)
        if (set_name, name.casefold()) in splits:
            readings.setdefault((set_name,), (f"the label {name!r} of the set {set_name!r}", []))[1].append(i)
    if len(readings) > 1:  # "red:circle": label red:circle of some set, or label circle of set red
        said = sorted(text for text, _ in readings.values())
        raise UsageError(f"{label!r} reads {len(readings)} ways: {'; '.join(said)}; name the set with tag_set= "
                         f"(and the label alone), or rename one of them")
    return [i for _, ids in readings.values() for i in ids]


def tagged_ids_query(session: Session, label: str, label_set: str | None = None) -> Any:
    """Image ids carrying a label of this name: in any set, or in one (SET:LABEL or label_set)."""
    return select(s.Tag.image_id).where(s.Tag.label_id.in_(tag_label_ids(session, label, label_set)))


def check_tag(session: Session, label: str, label_set: str | None = None) -> None:
    """Raise when no label set has this label, naming what is missing: the set (tag_set=), else the label,
    with the labels there are (the first few)."""
    if tag_label_ids(session, label, label_set):
        return
    if label_set is not None and resolve_set_name(set_names(session), label_set) is None:
        raise LabelError(f"no label set named {label_set!r} to filter by (tag_set=); known: "
                         f"{known_list(map(repr, set_names(session)), near=repr(label_set))}")
    query = (select(s.LabelSetRow.name, s.LabelRow.name).join(s.LabelRow, s.LabelRow.set_id == s.LabelSetRow.id)
             .order_by(s.LabelSetRow.name, s.LabelRow.position))
    if label_set is not None:
        query = query.where(s.LabelSetRow.name == resolve_set_name(set_names(session), label_set))
    rows = session.execute(query).all()
    if label_set is not None:  # the set is given: its labels by their own names
        known = known_list((b for _a, b in rows), "none", near=label)
    else:
        known = known_list((f"{a}:{b}" for a, b in rows), "none yet; see Library.tag()", near=label)
    where = f" in label set {label_set!r}" if label_set else ""
    raise LabelError(f"no label {label!r}{where} to filter by (tag=); labels: {known}")
