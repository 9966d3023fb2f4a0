"""XMP packets through Exempi (the Adobe XMP Toolkit) via python-xmp-toolkit.

Exempi parses a packet into the XMP data model and serialises the whole model
back, so properties zsindex never touches (ratings, colour labels, darktable's
edit history, Lightroom's develop settings, unknown namespaces, structures,
qualifiers) come out as they went in; only the keyword arrays zsindex edits
change. Text is checked with Python's own XML parser first, so a file that is
not XMP is reported with a reason and never handed to Exempi.
"""

from __future__ import annotations

import xml.parsers.expat
from typing import Any

from .errors import ZsindexError

NS_DC = "http://purl.org/dc/elements/1.1/"
NS_LR = "http://ns.adobe.com/lightroom/1.0/"
NS_DIGIKAM = "http://www.digikam.org/ns/1.0/"
NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"

# The keyword lists zsindex writes: (short name, namespace, property, array kind).
SUBJECT = "dc:subject"
HIERARCHICAL = "lr:hierarchicalSubject"
TAGSLIST = "digiKam:TagsList"
PROPERTIES: dict[str, tuple[str, str, str]] = {
    SUBJECT: (NS_DC, "subject", "bag"),
    HIERARCHICAL: (NS_LR, "hierarchicalSubject", "bag"),
    TAGSLIST: (NS_DIGIKAM, "TagsList", "seq"),
}
MAX_SIDECAR_BYTES = 16 * 1024 * 1024  # darktable's longest histories are a few MB
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'


class XmpError(ZsindexError):
    """A sidecar or packet cannot be read as XMP (the reason says why)."""


def _libxmp() -> Any:
    try:
        import libxmp
    except Exception as e:  # ExempiLoadError when the system library is missing
        raise ZsindexError(
            "reading and writing XMP needs the Exempi library: install it with `apt-get install libexempi8` "
            "(Debian, Ubuntu), `dnf install exempi` (Fedora) or `brew install exempi` (macOS)"
            f" ({e})") from None
    for uri, prefix in ((NS_DIGIKAM, "digiKam"), (NS_LR, "lr")):  # not all Exempi builds know them
        libxmp.XMPMeta.register_namespace(uri, prefix)
    return libxmp


def available() -> bool:
    try:
        _libxmp()
        return True
    except ZsindexError:
        return False


def _check_xml(text: str) -> None:
    """Refuse what is not an RDF/XMP document, with the XML parser's reason."""
    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    seen: list[bool] = []
    parser.StartElementHandler = lambda name, _attrs: seen.append(name == f"{NS_RDF} RDF") if not any(seen) else None
    try:
        parser.Parse(text, True)
    except xml.parsers.expat.ExpatError as e:
        raise XmpError(f"not XML ({xml.parsers.expat.ErrorString(e.code)}, line {e.lineno})") from None
    if not any(seen):
        raise XmpError("XML without an rdf:RDF element, not XMP")


def decode(data: bytes) -> str:
    if len(data) > MAX_SIDECAR_BYTES:
        raise XmpError(f"larger than {MAX_SIDECAR_BYTES // (1024 * 1024)} MiB")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise XmpError(f"not UTF-8 text (byte {e.start})") from None


class XmpDoc:
    """One XMP packet, edited in place through Exempi."""

    def __init__(self, text: str | None = None) -> None:
        lib = _libxmp()
        self.meta = lib.XMPMeta()
        if text is not None:
            _check_xml(text)
            try:
                self.meta.parse_from_str(text)
            except lib.XMPError as e:
                raise XmpError(f"not valid XMP ({e})") from None

    @classmethod
    def from_bytes(cls, data: bytes) -> "XmpDoc":
        return cls(decode(data))

    def items(self, prop: str) -> list[str]:
        ns, name, _kind = PROPERTIES[prop]
        if not self.meta.does_property_exist(ns, name):
            return []
        first = next(iter(_libxmp().XMPIterator(self.meta, ns, name)), None)
        if first is None or not first[3]["VALUE_IS_ARRAY"]:
            raise XmpError(f"{prop} is not a list")
        n = self.meta.count_array_items(ns, name)
        return [self.meta.get_array_item(ns, name, i) for i in range(1, n + 1)]

    def add(self, prop: str, value: str) -> None:
        ns, name, kind = PROPERTIES[prop]
        self.items(prop)  # raises XmpError when the property exists but is not a list
        array = {"prop_array_is_ordered": True} if kind == "seq" else {"prop_value_is_array": True}
        self.meta.append_array_item(ns, name, value, array)

    def remove(self, prop: str, value: str) -> bool:
        """Take out every item equal to value; the property goes when its list is empty."""
        ns, name, _kind = PROPERTIES[prop]
        found = False
        for i in range(len(self.items(prop)), 0, -1):
            if self.meta.get_array_item(ns, name, i) == value:
                self.meta.delete_property(ns, f"{name}[{i}]")
                found = True
        if found and self.meta.count_array_items(ns, name) == 0:
            self.meta.delete_property(ns, name)
        return found

    def is_empty(self) -> bool:
        """True when the packet holds no property at all."""
        lib = _libxmp()
        return not any(True for _ in lib.XMPIterator(self.meta, iter_justchildren=True))

    def to_bytes(self) -> bytes:
        text = self.meta.serialize_to_unicode(omit_packet_wrapper=True, use_compact_format=True)
        return (XML_DECLARATION + text).encode("utf-8")


def keywords_of(doc: XmpDoc, skip: set[tuple[str, str]] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """The flat keywords an XMP packet carries: dc:subject plus the leaves of hierarchical lists.

    ``skip`` holds (property, value) pairs that are zsindex's own; darktable's
    internal entries (``darktable|...``) are the program's, not the user's.
    """
    out: list[str] = []
    for value in doc.items(SUBJECT):
        if (SUBJECT, value) not in skip:
            out.append(value)
    for prop, sep in ((HIERARCHICAL, "|"), (TAGSLIST, "/")):
        for value in doc.items(prop):
            if (prop, value) in skip or value.startswith(("darktable" + sep, "zsindex" + sep)):
                continue
            out.append(value.rsplit(sep, 1)[-1])
    return list(dict.fromkeys(k.strip() for k in out if k.strip()))
