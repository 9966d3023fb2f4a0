"""CLIP's byte-level BPE tokenizer without torch, for the text side of a query.

It gives the same token ids as open_clip's ``SimpleTokenizer`` with its
default settings (ftfy and HTML clean-up, collapsed whitespace, lower case,
start and end tokens, truncation that keeps the end token), which a test
checks on many texts. It reads the merges file that open_clip ships and
needs only numpy, ``regex`` and ``ftfy``, so a query never imports torch.
"""

from __future__ import annotations

import gzip
import html
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

START, END = "<start_of_text>", "<end_of_text>"
N_MERGES = 49152 - 256 - 2  # the merges CLIP's vocabulary was built with
_PLAIN = re.compile(r"[ -%'-~]*")  # printable ASCII but "&"


@lru_cache(maxsize=1)
def byte_alphabet() -> dict[int, str]:
    """Each byte as a printable character: printable Latin-1 bytes stand for themselves, the rest are shifted."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in keep}
    shift = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shift)
            shift += 1
    return table


def shipped_merges() -> Path:
    """open_clip's merges file, found without importing open_clip (which imports torch)."""
    import importlib.util

    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("open_clip is not installed, and its BPE merges file is needed")
    return Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"


class ClipTokenizer:
    def __init__(self, merges_file: Path, context_length: int = 77) -> None:
        import regex

        # Kept as the file's own "a b" lines: building 49k tuples costs more than a whole query.
        lines = gzip.open(merges_file, "rt", encoding="utf-8").read().split("\n")[1:N_MERGES + 1]
        alphabet = list(byte_alphabet().values())
        words = alphabet + [a + "</w>" for a in alphabet] + [line.replace(" ", "") for line in lines] + [START, END]
        self.ids = dict(zip(words, range(len(words))))
        self.rank = dict(zip(lines, range(len(lines))))
        self.start, self.end = self.ids[START], self.ids[END]
        self.context_length = context_length
        self._words: dict[str, list[int]] = {}
        self._split = regex.compile(
            rf"{START}|{END}|'s|'t|'re|'ve|'m|'ll|'d|[\p{{L}}]+|[\p{{N}}]|[^\s\p{{L}}\p{{N}}]+", regex.IGNORECASE)

    @staticmethod
    def clean(text: str) -> str:
        if not _PLAIN.fullmatch(text):  # ftfy changes nothing in printable ASCII without "&" (and costs an import)
            import ftfy

            text = ftfy.fix_text(text)
        text = html.unescape(html.unescape(text)).strip()
        return " ".join(text.split()).lower()

    def _word(self, piece: str) -> list[int]:
        """Token ids of one pre-split piece: merge the best-ranked adjacent pair until none is known."""
        if piece in (START, END):
            return [self.ids[piece]]
        cached = self._words.get(piece)
        if cached is not None:
            return cached
        alphabet = byte_alphabet()
        symbols = [alphabet[b] for b in piece.encode("utf-8")]
        symbols[-1] += "</w>"
        unknown = len(self.rank)
        while len(symbols) > 1:
            a, b = min(zip(symbols, symbols[1:]), key=lambda p: self.rank.get(f"{p[0]} {p[1]}", unknown))
            if f"{a} {b}" not in self.rank:
                break
            merged: list[str] = []
            i = 0
            while i < len(symbols):  # merge every occurrence of the pair, left to right
                if i + 1 < len(symbols) and symbols[i] == a and symbols[i + 1] == b:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        out = [self.ids[s] for s in symbols]
        self._words[piece] = out
        return out

    def encode(self, text: str) -> list[int]:
        return [i for piece in self._split.findall(self.clean(text)) for i in self._word(piece)]

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), context_length) int64 ids: start, text, end, zero padding; too long keeps the end token."""
        out = np.zeros((len(texts), self.context_length), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.start, *self.encode(text), self.end][:self.context_length]
            ids[-1] = self.end if len(ids) == self.context_length else ids[-1]
            out[row, :len(ids)] = ids
        return out
