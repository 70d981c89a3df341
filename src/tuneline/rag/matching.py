"""Which retrieved passages are about what the question names (index.retrieval.match_question).

A search ranks passages by shared words, so a question about an entity the data does not hold
("Noah Marchand", a swimming event with a hurdles title) still returns near misses, and a
question about one event returns its silver and bronze rows too. A small model reads such a
context as an answer. Matching keeps a passage only when the question names it: a record's
match fields (index.match_fields, e.g. name, discipline, event) are compared with the words of
the question, and when no passage is left the prompt says none was found.

A passage is kept when
1. the question names at least one of its match fields in full (every word of the value is a
   word of the question), and
2. for every match field, if the question names some candidate's value of that field in full,
   it names this passage's value too; of two named values where one's words are part of the
   other's ("Women's 100m" in "Women's 4 x 100m Relay"), only the longer one counts.
3. the passage states no other number where the question names one: each word of the
   question with digits ("2020" in "... at the Tokyo 2020 Olympics?", "100m", "+100") is a word
   of the passage, or the passage has no word of its shape (the same word with any number,
   signed or not: "2024", "200m", "-63"). A question about another year than the data's gets
   no passage, as one about an entity the data lacks, and so does "Women's 100m 200m
   Backstroke", which names the real "Women's 200m Backstroke" in full but also a distance that
   row does not have.
Passages without match fields (document chunks, unconfigured sources) are kept as they are.

A field the question names no value of in full can be named in part ("Which country did
Crouser represent?"): by a capitalised word of the question that belongs to that field only and
to at most `DISTINCTIVE_VALUES` of its values; the values named so must then hold every
capitalised word of the question that belongs to that field only ("FOX Koki", spliced from FOX
Jessica and KANO Koki, names neither). When no value holds them all, the question names a value
of that field the index lacks, and no passage with that field is kept ("Dressage Jump
(Equestrian)" names the discipline in full, but no Equestrian event is "Dressage Jump").
Lower-case words never name in part: "won" is a word of "KIM Won Ho" and of most questions.
A value named (in full or in part) must also hold the words around its capitalised words that
go on naming: a lower-case word that the field writes in lower case ("Owl mouse": "mouse" is a
word of "Deer mouse", not of "Owl monkey"), a capitalised word of the field, or a capitalised
word no field holds ("Lesb Emirates", "North Marus": spliced names the index lacks; "Arctic
ground fox" names "Arctic fox" in full, but "ground" goes on naming). This needs the index's
values (`FieldValues`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from tuneline.rag.passages import Hit, Passage

FIELD_PREFIX = "field:"
# A sign before a number is part of it: "Men -100 kg" and "Men +100 kg" are two events.
_WORD = re.compile(r"(?:(?<!\w)[+-](?=\d))?\w+")
_DIGIT = re.compile(r"\d")
_PUNCTUATION = re.compile(r"[,;:()?!.\[\]\"]")  # where one name ends and another may start
_NUMBER = re.compile(r"[+-]?\d+")  # a word's shape: its numbers, signed or not, as one mark
DISTINCTIVE_VALUES = 2  # a word in at most this many values of a field can name one in part
_STOPWORDS = frozenset({"a", "an", "and", "at", "by", "for", "from", "in", "is", "of", "on",
                        "or", "the", "to", "with"})


def words(text: str) -> frozenset[str]:
    """Case- and accent-folded words (a number keeps its sign), without stop words and lone
    letters."""
    decomposed = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return frozenset(w for w in _WORD.findall(folded)
                     if w not in _STOPWORDS and (len(w) > 1 or w.isdigit()))


def capitalised(text: str) -> frozenset[str]:
    """The words (as `words` folds them) of the tokens that start with a capital letter."""
    return words(" ".join(t for t in _WORD.findall(text) if t[:1].isupper()))


def match_fields(passage: Passage) -> dict[str, frozenset[str]]:
    """The words of each match field stored with a passage (metadata 'field:<name>')."""
    return {key.removeprefix(FIELD_PREFIX): words(value)
            for key, value in passage.metadata.items() if key.startswith(FIELD_PREFIX)}


class FieldValues:
    """Every value of every match field in the index, looked up by the words of a question.

    Rule 2 compares a passage with all the values the question names, not only the candidates'
    ones: a question naming a discipline none of the candidates belongs to (an invented
    'rifle event in athletics') must still rule the candidates out."""

    def __init__(self, values: dict[str, Sequence[str]]):
        self._by_word: dict[str, dict[str, set[frozenset[str]]]] = {}
        self._written_lower: dict[str, set[str]] = {}  # per field, words written in lower case
        for field, field_values in values.items():
            for value in field_values:
                value_words = words(value)
                for word in value_words:
                    self._by_word.setdefault(word, {}).setdefault(field, set()).add(value_words)
                self._written_lower.setdefault(field, set()).update(
                    words(" ".join(t for t in _WORD.findall(value) if t[:1].islower())))

    def named(self, asked: frozenset[str]) -> dict[str, set[frozenset[str]]]:
        """Per field, the values whose every word the question has (the longest ones)."""
        named: dict[str, set[frozenset[str]]] = {}
        for word in asked:
            for field, values in self._by_word.get(word, {}).items():
                named.setdefault(field, set()).update(v for v in values if v <= asked)
        return _longest(named)

    def partly_named(self, asked: frozenset[str], skip: Iterable[str] = ()
                     ) -> dict[str, set[frozenset[str]]]:
        """Per field (but those in `skip`), the values the question names in part: they hold
        every word of the question that belongs to this field only, one of which belongs to
        at most DISTINCTIVE_VALUES values."""
        own: dict[str, set[str]] = {}
        for word in asked:
            fields = self._by_word.get(word, {})
            if len(fields) == 1:
                (field,) = fields
                own.setdefault(field, set()).add(word)
        named: dict[str, set[frozenset[str]]] = {}
        for field, field_words in own.items():
            if field in skip or not any(len(self._by_word[w][field]) <= DISTINCTIVE_VALUES
                                        for w in field_words):
                continue
            # An empty set rules the field's passages out: the question names a value of it
            # that the index does not hold ("Dressage Jump": no event has both words).
            named[field] = set.intersection(*(self._by_word[w][field] for w in field_words))
        return named

    def named_in(self, question: str
                 ) -> tuple[dict[str, set[frozenset[str]]], dict[str, set[frozenset[str]]]]:
        """The values `question` names in full and, for the other fields, in part, each
        holding the words around it that go on naming."""
        named = self.held_with_neighbours(question, self.named(words(question)))
        partly = self.held_with_neighbours(
            question, self.partly_named(capitalised(question), skip=named))
        return named, partly

    def written_in_lower_case(self, word: str) -> bool:
        """Some value writes this (folded) word in lower case ("monkey" in "Owl monkey")."""
        return any(word in lower for lower in self._written_lower.values())

    def held_with_neighbours(self, question: str, partly: dict[str, set[frozenset[str]]]
                             ) -> dict[str, set[frozenset[str]]]:
        """`partly` (values named in full or in part, per field) without the values that lack a
        word around their capitalised words which goes on naming (module docstring): "Owl
        mouse" keeps no value, "Owl monkey" keeps its own."""
        segments = [[t for t in _WORD.findall(part) if words(t)]
                    for part in _PUNCTUATION.split(question)]
        held: dict[str, set[frozenset[str]]] = {}
        for field, values in partly.items():
            needed: set[str] = set()
            for tokens in segments:
                for i, token in enumerate(tokens):
                    if token[:1].isupper() and field in self._by_word.get(_fold(token), {}):
                        needed |= self._naming_run(tokens, i, field, first=tokens is segments[0])
            held[field] = {value for value in values if needed <= value}
        return held

    def _naming_run(self, tokens: list[str], at: int, field: str, first: bool) -> set[str]:
        """The words on both sides of tokens[at] (within one clause) that go on naming a value
        of `field`: lower-case words the field writes in lower case, capitalised words of this
        field only, and a capitalised word of no field (not the question's first word)."""
        run: set[str] = set()
        for step in (-1, 1):
            i = at + step
            while 0 <= i < len(tokens):
                token, word = tokens[i], _fold(tokens[i])
                fields = self._by_word.get(word, {})
                if token[:1].isupper():
                    if set(fields) == {field}:
                        run.add(word)
                    elif not fields and not (first and i == 0):
                        run.add(word)  # a word no field holds: a value the index lacks
                        break
                    else:
                        break
                elif token[:1].islower() and word in self._written_lower.get(field, ()):
                    run.add(word)
                else:
                    break
                i += step
        return run


def _fold(token: str) -> str:
    return next(iter(words(token)), "")


def field_values(passages: Iterable[Passage]) -> dict[str, list[str]]:
    """The distinct values of each match field over passages (what FieldValues is built of)."""
    found: dict[str, set[str]] = {}
    for passage in passages:
        for key, value in passage.metadata.items():
            if key.startswith(FIELD_PREFIX) and value:
                found.setdefault(key.removeprefix(FIELD_PREFIX), set()).add(value)
    return {field: sorted(values) for field, values in sorted(found.items())}


def matching_hits(question: str, hits: Sequence[Hit],
                  known: FieldValues | None = None) -> list[Hit]:
    """The hits the question names (rules in the module docstring), in their order. Without
    `known`, rule 2 looks only at the values of the hits themselves."""
    asked = words(question)
    fields = [match_fields(h.passage) for h in hits]
    named, partly = (known.named_in(question) if known is not None
                     else (_named_among(asked, fields), {}))
    numbers = [w for w in asked if _DIGIT.search(w)]
    return [hit for hit, values in zip(hits, fields, strict=True)
            if not values or (_is_named(values, asked, {**named, **partly}, partly)
                              and not _states_other_numbers(numbers, hit.passage.text))]


def _states_other_numbers(asked: list[str], text: str) -> bool:
    held = {w for w in words(text) if _DIGIT.search(w)}
    shapes = {_NUMBER.sub("#", w) for w in held}
    return any(number not in held and _NUMBER.sub("#", number) in shapes for number in asked)


def _named_among(asked: frozenset[str], fields: list[dict[str, frozenset[str]]]
                 ) -> dict[str, set[frozenset[str]]]:
    named: dict[str, set[frozenset[str]]] = {}
    for values in fields:
        for field, value in values.items():
            if value and value <= asked:
                named.setdefault(field, set()).add(value)
    return _longest(named)


def _longest(named: dict[str, set[frozenset[str]]]) -> dict[str, set[frozenset[str]]]:
    return {field: {v for v in found if not any(v < other for other in found)}
            for field, found in named.items() if found}


def _is_named(values: dict[str, frozenset[str]], asked: frozenset[str],
              named: dict[str, set[frozenset[str]]],
              partly: dict[str, set[frozenset[str]]] | None = None) -> bool:
    names_one = (any(value and value <= asked for value in values.values())
                 or any(values.get(field) in found for field, found in (partly or {}).items()))
    agrees = all(values.get(field) in found for field, found in named.items()
                 if field in values)
    return names_one and agrees
