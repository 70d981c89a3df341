"""What a column holds, inferred from a sample of its values: counts and its kind."""

from __future__ import annotations

import re
from collections import Counter

from tuneline.synthesize.phrasing import ID_WORDS, humanize
from tuneline.synthesize.profile import ColumnProfile
from tuneline.synthesize.thresholds import THRESHOLDS

_URL = re.compile(r"^(https?://|www\.|/[\w.-]+/)\S*$", re.IGNORECASE)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.\w+$")
_DATE = re.compile(
    r"^(\d{4}-\d{1,2}-\d{1,2}([T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?"
    r"|\d{1,2}[/.]\d{1,2}[/.]\d{2,4}|\d{1,2}-[A-Za-z]{3}-\d{2,4}"
    r"|\d{1,2} [A-Za-z]{3,9}\.? \d{4}|[A-Za-z]{3,9}\.? \d{1,2}, \d{4})$"
)
_INT = re.compile(r"^[+-]?\d+$")
_NUM = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_SLUG = re.compile(r"^[a-z0-9]+([-_][a-z0-9]+)*$")
_CODE = re.compile(r"^([A-Z0-9]{1,5}|(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9][A-Za-z0-9_./-]{3,})$")
_BOOLEANS = {"true", "false", "yes", "no", "y", "n", "t", "f"}


def profile_column(name: str, values: list[str]) -> ColumnProfile:
    """Counts, the humanised name and the kind of one column's sampled values."""
    filled = [v.strip() for v in values if v and v.strip()]
    counts = Counter(filled)
    top, top_count = counts.most_common(1)[0] if counts else ("", 0)
    words, unit = humanize(name)
    avg_len = sum(map(len, filled)) / len(filled) if filled else 0.0
    avg_words = sum(len(v.split()) for v in filled) / len(filled) if filled else 0.0
    kind = _infer_kind(words, list(counts), len(filled), avg_len)
    return ColumnProfile(name, words, unit, kind, len(values), len(filled), len(counts), top,
                         top_count, avg_len, avg_words)


def _share(pattern: re.Pattern[str], values: list[str]) -> float:
    return sum(bool(pattern.match(v)) for v in values) / len(values)


def _fits(pattern: re.Pattern[str], values: list[str]) -> bool:
    """Whether the values are of the pattern's type, a few strays allowed."""
    return _share(pattern, values) >= THRESHOLDS.kind_share


def _infer_kind(words: list[str], distinct: list[str], filled: int, avg_len: float) -> str:
    """The column's type, judged on its distinct values (`kind_share` must fit) and its name."""
    if not distinct:
        return "empty"
    id_named = bool(set(words) & ID_WORDS)
    lowered = {v.lower() for v in distinct}
    if _share(_URL, distinct) >= THRESHOLDS.link_share:
        return "url"
    if _share(_EMAIL, distinct) >= THRESHOLDS.link_share:
        return "email"
    if lowered <= _BOOLEANS or (lowered <= {"0", "1"} and words[0] in {"is", "has"}):
        return "boolean"
    if _fits(_DATE, distinct):
        return "date"
    if _fits(_NUM, distinct):
        integer = _fits(_INT, distinct)
        zero_padded = integer and any(len(v) > 1 and v.startswith("0") for v in distinct)
        if id_named or zero_padded:
            return "identifier"
        return "integer" if integer else "float"
    slug = _fits(_SLUG, distinct) and any("-" in v or "_" in v for v in distinct)
    if id_named or slug or _fits(_CODE, distinct):
        return "identifier"
    return _text_kind(distinct, filled, avg_len)


def _text_kind(distinct: list[str], filled: int, avg_len: float) -> str:
    """Prose, a category (values repeat) or short text."""
    spaces = sum(v.count(" ") for v in distinct) / len(distinct)
    if avg_len > THRESHOLDS.free_text_avg_len or spaces > THRESHOLDS.free_text_spaces:
        return "free_text"
    return "categorical" if len(distinct) <= THRESHOLDS.categorical_uniqueness * filled else "text"
