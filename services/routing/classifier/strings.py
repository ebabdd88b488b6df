"""The classifier's text functions that need no numpy: normalisation, composing a ticket text,
its title. Routing imports them (the label map) with or without a trained model; numpy and scipy
(``text.py``, ~35 MB resident) load only with a model (issue 21: memory per service).
"""

from __future__ import annotations

import re

BITS = 15  # bits per character id: 4-grams fit in 60 bits of an int64
MAX_CHARS = (1 << BITS) - 1  # distinct characters a vectoriser can tell apart
MAX_TEXT_CHARS = 3000  # longer tickets are cut (99.5% of real messages are shorter)
TITLE_MAX_CHARS = 64

_WS = re.compile(r"\s+")
_PLACE_CODE = re.compile(r"[a-z]\d*(?=[市县区镇乡村])")  # anonymised "A3区", "G8县"
_DIGITS = re.compile(r"\d+")
_LATIN = re.compile(r"[a-z]+")
_SENTENCE_END = re.compile(r"[。！？!?；;\n]")
_FULLWIDTH = str.maketrans({chr(c): chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)} | {"\u3000": " "})


def normalize(text: str) -> str:
    """Canonical form of a ticket text for the n-gram features.

    Full-width ASCII to half-width, lower case, place codes and numbers and Latin words
    folded to one placeholder each, whitespace (and Excel's ``_x000D_``) collapsed.
    """
    text = text.replace("_x000D_", " ").translate(_FULLWIDTH).lower()
    text = _PLACE_CODE.sub("Ｘ", text)
    text = _DIGITS.sub("0", text)
    text = _LATIN.sub("a", text)
    return _WS.sub(" ", text).strip()[:MAX_TEXT_CHARS]


def compose(*parts: str) -> str:
    """One ticket text from its fields (title first): the form the classifier expects."""
    return "\n".join(_WS.sub(" ", p).strip() for p in parts if p and p.strip())


def title_of(text: str) -> str:
    """The title part of a composed ticket text.

    The first line when the text has several lines (``compose(title, body)``), otherwise
    its first sentence, at most ``TITLE_MAX_CHARS`` characters.
    """
    text = text.lstrip()
    head, newline, _ = text.partition("\n")
    if not newline:
        m = _SENTENCE_END.search(text)
        head = text[: m.start()] if m else text
    return head[:TITLE_MAX_CHARS]
