"""What an answer claims: the table's values it names, in order, for strict scoring.

A value is "claimed" when the answer names it on word boundaries (case, accents and punctuation
folded) more often than the question does (the asked athlete's own name is not a claim; the
city in "Ozark-Franklin County: city Ozark." is, once).
Overlapping names count once, the longest: "United States Virgin Islands" is not also
"United States". A code (a short value the data writes in capitals: ISO "IS", "IN", "DO", "MY",
currency "TOP") is claimed only when written in capitals: "The code of Iraq is IQ." claims IQ,
not Iceland's "IS".
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from tuneline.text import normalize, strip_accents

_CODE = re.compile(r"[A-Z][A-Z0-9]{0,3}")
_NON_WORD_CASED = re.compile(r"[^0-9A-Za-z]+")


@dataclass(frozen=True)
class Vocabulary:
    """Per template, the normalised values of its answer column (every row of its table), and
    the codes among them (matched only in capitals)."""

    by_template: Mapping[str, frozenset[tuple[str, ...]]] = field(default_factory=dict)
    codes: frozenset[str] = frozenset()

    @classmethod
    def from_values(cls, values: Mapping[str, Iterable[str]]) -> Vocabulary:
        columns = {name: [str(v).strip() for v in column] for name, column in values.items()}
        every = [v for column in columns.values() for v in column]
        written_as_words = {normalize(v) for v in every if not _CODE.fullmatch(v)}
        return cls({name: frozenset(t for t in (tuple(normalize(v).split()) for v in column)
                                    if t)
                    for name, column in columns.items()},
                   frozenset(v.lower() for v in every
                             if _CODE.fullmatch(v) and v.lower() not in written_as_words))

    @classmethod
    def read(cls, path: Path) -> Vocabulary:
        """The vocabulary of a values.json; an empty one when the file is absent."""
        if not path.is_file():
            return cls()
        return cls.from_values(json.loads(path.read_text(encoding="utf-8")))

    @cached_property
    def _every_value(self) -> frozenset[tuple[str, ...]]:
        return frozenset().union(*self.by_template.values())

    def knows(self, template: str | None) -> bool:
        return template is not None and bool(self.by_template.get(template))

    def claims(self, answer: str, template: str | None, question: str = "") -> list[str]:
        """The values of `template`'s column (every template's when None) that `answer` names,
        in order of first mention, without those the question names."""
        values = (self._every_value if template is None
                  else self.by_template.get(template, frozenset()))
        # Each mention in the question cancels one in the answer, the first: "Ozark-Franklin
        # County: city Ozark." restates the airport, then claims its city Ozark.
        asked = Counter(self._mentions(question, values))
        found = []
        for value in self._mentions(answer, values):
            if asked[value] > 0:
                asked[value] -= 1
            else:
                found.append(" ".join(value))
        return list(dict.fromkeys(found))

    def _mentions(self, text: str, values: frozenset[tuple[str, ...]]
                  ) -> list[tuple[str, ...]]:
        """Values named in `text`, left to right, the longest at each position, not
        overlapping; a code only where `text` writes it in capitals."""
        cased = _cased_words(text)
        tokens = [w.lower() for w in cased]
        lowercase_codes = {i for i, w in enumerate(cased)
                           if tokens[i] in self.codes and not w.isupper()}
        return _mentions(tokens, values, lowercase_codes)


def _cased_words(text: str) -> list[str]:
    """The words `normalize` would keep, in their written case."""
    return _NON_WORD_CASED.sub(" ", strip_accents(text)).split()


def _mentions(tokens: list[str], values: frozenset[tuple[str, ...]],
              not_single: set[int] = frozenset()) -> list[tuple[str, ...]]:
    """Values named in `tokens`, left to right, the longest at each position, not overlapping;
    a position in `not_single` starts no one-word value."""
    if not values:
        return []
    longest = max(len(v) for v in values)
    found, i = [], 0
    while i < len(tokens):
        for size in range(min(longest, len(tokens) - i), 0, -1):
            candidate = tuple(tokens[i:i + size])
            if candidate in values and not (size == 1 and i in not_single):
                found.append(candidate)
                i += size
                break
        else:
            i += 1
    return found
