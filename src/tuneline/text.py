"""Text compared as people read it: case, accents and punctuation folded; whole words only."""

from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalize(text: str) -> str:
    """Lowercase, strip accents and punctuation, collapse whitespace."""
    decomposed = unicodedata.normalize("NFKD", text)
    no_marks = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NON_WORD.sub(" ", no_marks.lower()).strip()


def contains_fact(answer: str, fact: str) -> bool:
    """True when the normalised fact appears in the normalised answer on word boundaries."""
    needle = normalize(fact)
    return bool(needle) and f" {needle} " in f" {normalize(answer)} "
