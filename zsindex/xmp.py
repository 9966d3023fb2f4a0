"""XMP packets, edited as XML in place.

A sidecar belongs to the user and to the programs that wrote it (darktable's
edit history, Lightroom's develop settings, ratings, colour labels, unknown
namespaces). zsindex parses it as XML (Python's expat through minidom: no
external entities, no network) and touches nothing but the items of the three
keyword lists it edits (``dc:subject``, ``lr:hierarchicalSubject``,
``digiKam:TagsList``): every other element, attribute, namespace prefix,
comment and packet wrapper is written back as it was read. (An XMP toolkit
parses into its data model and serialises that instead, which renames
aliased properties, ``tiff:Artist`` to ``dc:creator``, and drops an alias
whose base property is also set.) Text is checked to be XML with an
``rdf:RDF`` element first, so a file that is not XMP is reported with a
reason.
"""

from __future__ import annotations

import xml.parsers.expat
from typing import Any
from xml.dom import minidom
from xml.dom.minidom import Node

from .errors import ZsindexError

NS_DC = "http://purl.org/dc/elements/1.1/"
NS_LR = "http://ns.adobe.com/lightroom/1.0/"
NS_DIGIKAM = "http://www.digikam.org/ns/1.0/"
NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_X = "adobe:ns:meta/"
NS_XMLNS = "http://www.w3.org/2000/xmlns/"

# The keyword lists zsindex writes: (short name, namespace, property, array kind).
SUBJECT = "dc:subject"
HIERARCHICAL = "lr:hierarchicalSubject"
TAGSLIST = "digiKam:TagsList"
PROPERTIES: dict[str, tuple[str, str, str]] = {
    SUBJECT: (NS_DC, "subject", "Bag"),
    HIERARCHICAL: (NS_LR, "hierarchicalSubject", "Bag"),
    TAGSLIST: (NS_DIGIKAM, "TagsList", "Seq"),
}
MAX_SIDECAR_BYTES = 16 * 1024 * 1024  # darktable's longest histories are a few MB
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
EMPTY_PACKET = (f'<x:xmpmeta xmlns:x="{NS_X}">\n <rdf:RDF xmlns:rdf="{NS_RDF}">\n'
                '  <rdf:Description rdf:about=""/>\n </rdf:RDF>\n</x:xmpmeta>\n')


class XmpError(ZsindexError):
    """A sidecar or packet cannot be read as XMP (the reason says why)."""


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
    """One XMP packet, its keyword lists edited in place (see the module's docstring)."""

    def __init__(self, text: str | None = None) -> None:
        fresh = text is None
        text = EMPTY_PACKET if text is None else text
        _check_xml(text)
        try:
            self.dom = minidom.parseString(text.encode("utf-8"))
        except Exception as e:  # expat's errors, and minidom's own on odd namespace use
            raise XmpError(f"not valid XMP ({e})") from None
        rdf = self.dom.getElementsByTagNameNS(NS_RDF, "RDF")
        self.rdf: Any = rdf[0]  # minidom's nodes, typed loosely: its stubs make every link Optional
        self.rdf_prefix = self.rdf.prefix or ""
        self.declaration = fresh or text.lstrip("\ufeff").startswith("<?xml")

    @classmethod
    def from_bytes(cls, data: bytes) -> "XmpDoc":
        return cls(decode(data))

    # -- finding things ------------------------------------------------------------------------------
    def _descriptions(self) -> list[Any]:
        return [n for n in self.rdf.childNodes
                if n.nodeType == Node.ELEMENT_NODE and n.namespaceURI == NS_RDF and n.localName == "Description"]

    def _property(self, prop: str) -> tuple[Any, Any]:
        """(the property's element, its array element) where a description holds it as an element."""
        ns, name, _kind = PROPERTIES[prop]
        for desc in self._descriptions():
            if desc.hasAttributeNS(ns, name):
                raise XmpError(f"{prop} is not a list")
            for node in _elements(desc):
                if node.namespaceURI == ns and node.localName == name:
                    arrays = [a for a in _elements(node)
                              if a.namespaceURI == NS_RDF and a.localName in ("Bag", "Seq", "Alt")]
                    if len(arrays) != 1:
                        raise XmpError(f"{prop} is not a list")
                    return node, arrays[0]
        return None, None

    def items(self, prop: str, plain: bool = False) -> list[str]:
        """The list's items; ``plain``: a property written as one plain value (not a list, as some programs
        write ``dc:subject``) reads as that one item instead of an error."""
        try:
            _node, array = self._property(prop)
        except XmpError:
            if not plain:
                raise
            return self._plain(prop)
        if array is None:
            return []
        return [_text(li) for li in _items(array)]

    def _plain(self, prop: str) -> list[str]:
        ns, name, _kind = PROPERTIES[prop]
        for desc in self._descriptions():
            if desc.hasAttributeNS(ns, name):
                return [desc.getAttributeNS(ns, name)]
            for node in _elements(desc):
                if node.namespaceURI == ns and node.localName == name and not _elements(node):
                    return [_text(node)]
        return []

    # -- editing -------------------------------------------------------------------------------------
    def add(self, prop: str, value: str) -> None:
        ns, name, kind = PROPERTIES[prop]
        node, array = self._property(prop)
        if array is None:
            desc = (self._descriptions() or [self._new_description()])[0]
            prefix = self._prefix_for(desc, ns, prop.split(":")[0])
            node = self.dom.createElementNS(ns, f"{prefix}:{name}")
            _append_indented(desc, node)
            array = self.dom.createElementNS(NS_RDF, self._rdf(kind))
            _append_indented(node, array)
        li = self.dom.createElementNS(NS_RDF, self._rdf("li"))
        li.appendChild(self.dom.createTextNode(value))
        _append_indented(array, li)

    def remove(self, prop: str, value: str) -> bool:
        """Take out every item equal to value; the property goes when its list is empty."""
        node, array = self._property(prop)
        if node is None or array is None:
            return False
        found = [li for li in _items(array) if _text(li) == value]
        for li in found:
            _remove_indented(li)
        if found and not _items(array):
            _remove_indented(node)
        return bool(found)

    def is_empty(self) -> bool:
        """True when the packet holds no property at all."""
        for desc in self._descriptions():
            if _elements(desc):
                return False
            for i in range(desc.attributes.length):
                attr = desc.attributes.item(i)
                if attr.namespaceURI != NS_XMLNS and not (attr.namespaceURI == NS_RDF and attr.localName == "about"):
                    return False
        return True

    def to_bytes(self) -> bytes:
        body = "\n".join(node.toxml() for node in self.dom.childNodes)  # the packet wrapper, the root, ...
        return ((XML_DECLARATION if self.declaration else "") + body + "\n").encode("utf-8")

    # -- helpers ---------------------------------------------------------------------------------------
    def _rdf(self, local: str) -> str:
        return f"{self.rdf_prefix}:{local}" if self.rdf_prefix else local

    def _new_description(self) -> Any:
        desc = self.dom.createElementNS(NS_RDF, self._rdf("Description"))
        desc.setAttributeNS(NS_RDF, self._rdf("about"), "")
        _append_indented(self.rdf, desc)
        return desc

    def _prefix_for(self, desc: Any, ns: str, wanted: str) -> str:
        """The prefix bound to ns where desc is; else ``wanted`` (or a free variant), declared on desc."""
        bound: dict[str, str] = {}
        node: Any | None = desc
        while node is not None and node.nodeType == Node.ELEMENT_NODE:
            for i in range(node.attributes.length):
                attr = node.attributes.item(i)
                if attr.name.startswith("xmlns:"):
                    bound.setdefault(attr.name[6:], attr.value)
            node = node.parentNode
        for prefix, uri in bound.items():
            if uri == ns:
                return prefix
        prefix, n = wanted, 1
        while prefix in bound:
            prefix, n = f"{wanted}{n}", n + 1
        desc.setAttributeNS(NS_XMLNS, f"xmlns:{prefix}", ns)
        return prefix


def _elements(node: Any) -> list[Any]:
    return [n for n in node.childNodes if n.nodeType == Node.ELEMENT_NODE]


def _items(array: Any) -> list[Any]:
    return [n for n in _elements(array) if n.namespaceURI == NS_RDF and n.localName == "li"]


def _text(node: Any) -> str:
    return "".join(n.data for n in node.childNodes if n.nodeType in (Node.TEXT_NODE, Node.CDATA_SECTION_NODE))


def _depth(node: Any) -> int:
    depth = 0
    while node.parentNode is not None and node.parentNode.nodeType == Node.ELEMENT_NODE:
        node, depth = node.parentNode, depth + 1
    return depth


def _append_indented(parent: Any, child: Any) -> None:
    """Append child on a line of its own, indented one step deeper than parent."""
    doc = parent.ownerDocument
    inner = "\n" + " " * (_depth(parent) + 1)
    last = parent.lastChild
    if last is not None and last.nodeType == Node.TEXT_NODE and not last.data.strip():
        parent.insertBefore(doc.createTextNode(inner), last)
        parent.insertBefore(child, last)
    else:
        parent.appendChild(doc.createTextNode(inner))
        parent.appendChild(child)
        parent.appendChild(doc.createTextNode("\n" + " " * _depth(parent)))


def _remove_indented(node: Any) -> None:
    """Remove node and the blank text before it."""
    before = node.previousSibling
    parent = node.parentNode
    parent.removeChild(node)
    if before is not None and before.nodeType == Node.TEXT_NODE and not before.data.strip():
        parent.removeChild(before)


def keywords_of(doc: XmpDoc, skip: set[tuple[str, str]] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """The flat keywords an XMP packet carries: dc:subject plus the leaves of hierarchical lists.

    ``skip`` holds (property, value) pairs that are zsindex's own; darktable's
    internal entries (``darktable|...``) are the program's, not the user's.
    """
    out: list[str] = []
    for value in doc.items(SUBJECT, plain=True):
        if (SUBJECT, value) not in skip and not value.startswith(("darktable|", "zsindex|")):
            out.append(value)
    for prop, sep in ((HIERARCHICAL, "|"), (TAGSLIST, "/")):
        for value in doc.items(prop, plain=True):
            if (prop, value) in skip or value.startswith(("darktable" + sep, "zsindex" + sep)):
                continue
            out.append(value.rsplit(sep, 1)[-1])
    return list(dict.fromkeys(k.strip() for k in out if k.strip()))
