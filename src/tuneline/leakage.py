"""Leakage as an invariant: does a training text state a fact that is evaluated?

A text states a fact when it holds the fact's answer value together with every value that names
its entity ("FOX Jessica" with "Canoe Slalom" and "Women's Kayak Single"), or, when the answer
value is identifying on its own (it holds at most `RARE_VALUE_ROWS` rows of its table, like a
champion's name and unlike a country, and is not made of function words only, unlike Iceland's
code "IS"), when it holds the answer value at all. Values are compared as people read them
(`tuneline.text.normalize`), on word boundaries.

Synthesize uses it to pick reading facts that state no sampled fact; curate checks every
training message (and train every replay example) against every evaluated fact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tuneline.text import STOP_WORDS, normalize

# A value that at most this many rows hold identifies its entity (a champion's name, a ticket
# id); a value more rows share (a country, a status) does not, and leaks only with its entity.
RARE_VALUE_ROWS = 3


class _FactLike(Protocol):
    fact_id: str
    template: str
    key: str
    fact: str
    entity: list[str]


@dataclass(frozen=True)
class GuardedFact:
    """An evaluated fact: its id, its template, its answer value and its entity values."""

    fact_id: str
    template: str
    value: str
    entity: tuple[str, ...]


class LeakGuard:
    """The evaluated facts a training text must not state."""

    def __init__(self, facts: Iterable[GuardedFact],
                 rows_per_value: Mapping[str, Mapping[str, int]] | None = None,
                 rare_rows: int = RARE_VALUE_ROWS) -> None:
        rows_per_value = rows_per_value or {}
        self._facts: list[tuple[str, str, tuple[str, ...], bool]] = []
        for fact in {f.fact_id: f for f in facts}.values():
            value = normalize(fact.value)
            if not value:
                continue  # an unanswerable fact has no answer value to leak
            entity = tuple(e for e in map(normalize, fact.entity) if e)
            rows = rows_per_value.get(fact.template, {}).get(fact.value)
            # Read as words, "IS" or "ALL" (a currency code) is in almost every text: alone
            # it says nothing; taken as identifying, it made a countries run drop 253 training
            # examples and keep 66 (docs/log.md, 2026-12-05 (afternoon)).
            says_something = any(word not in STOP_WORDS for word in value.split())
            self._facts.append((fact.fact_id, value, entity,
                                rows is not None and rows <= rare_rows and says_something))

    @classmethod
    def from_facts(cls, facts: Iterable[_FactLike],
                   rows_per_value: Mapping[str, Mapping[str, int]] | None = None) -> LeakGuard:
        """Guard synthesize's facts (`Fact`)."""
        return cls((GuardedFact(f.fact_id, f.template, f.fact, tuple(f.entity or [f.key]))
                    for f in facts), rows_per_value)

    @classmethod
    def from_items(cls, items: Iterable[Mapping[str, Any]],
                   rows_per_value: Mapping[str, Mapping[str, int]] | None = None) -> LeakGuard:
        """Guard curate's evaluation items (they carry fact_id, template, fact, entity)."""
        return cls((GuardedFact(str(i["fact_id"]), str(i.get("template")), str(i.get("fact")),
                                tuple(i.get("entity") or ()))
                    for i in items if i.get("expect") != "abstain"), rows_per_value)

    def __len__(self) -> int:
        return len(self._facts)

    def stated(self, text: str) -> str | None:
        """The id of the first guarded fact that `text` states, or None."""
        padded = f" {normalize(text)} "
        for fact_id, value, entity, identifying in self._facts:
            if f" {value} " not in padded:
                continue
            if identifying or all(f" {e} " in padded for e in entity):
                return fact_id
        return None


def message_text(example: Mapping[str, object]) -> str:
    """Every message of a chat example, joined: what training shows the model."""
    messages = example.get("messages") or []
    assert isinstance(messages, list)
    return "\n".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
