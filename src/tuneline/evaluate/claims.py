"""What an answer claims: the table's values it names, in order, for strict scoring.

A value is "claimed" when the answer names it on word boundaries (case, accents and punctuation
folded) and the question did not already name it (the asked athlete's own name is not a claim).
Overlapping names count once, the longest: "United States Virgin Islands" is not also
"United States".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from tuneline.text import normalize


@dataclass(frozen=True)
class Vocabulary:
    """Per template, the normalised values of its answer column (every row of its table)."""

    by_template: Mapping[str, frozenset[tuple[str, ...]]] = field(default_factory=dict)

    @classmethod
    def from_values(cls, values: Mapping[str, Iterable[str]]) -> Vocabulary:
        return cls({name: frozenset(t for t in (tuple(normalize(v).split()) for v in column)
                                    if t)
                    for name, column in values.items()})

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
        asked = set(_mentions(normalize(question).split(), values))
        found = [v for v in _mentions(normalize(answer).split(), values) if v not in asked]
        return list(dict.fromkeys(" ".join(v) for v in found))


def _mentions(tokens: list[str], values: frozenset[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Values named in `tokens`, left to right, the longest at each position, not overlapping."""
    if not values:
        return []
    longest = max(len(v) for v in values)
    found, i = [], 0
    while i < len(tokens):
        for size in range(min(longest, len(tokens) - i), 0, -1):
            candidate = tuple(tokens[i:i + size])
            if candidate in values:
                found.append(candidate)
                i += size
                break
        else:
            i += 1
    return found
