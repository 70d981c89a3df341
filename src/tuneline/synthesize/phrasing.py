"""Wording for suggested templates: vocabulary, phrase tables and humanised column names."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from tuneline.synthesize.config import TemplateConfig
from tuneline.synthesize.profile import ColumnProfile


@dataclass(frozen=True)
class PhrasingThresholds:
    """The numbers the wording depends on; the code reads PHRASING."""

    short_word_len: int = 3  # "gas", "bus", "yes": a word this short ending in s is no plural
    max_name_suffix: int = 999  # name_2 … name_998 keep template names unique in a table


PHRASING = PhrasingThresholds()

ID_WORDS = {"id", "uuid", "guid", "sku", "code", "slug", "hash", "key", "ref", "isbn", "ean",
            "upc"}
NAME_WORDS = {"name", "title", "label", "event", "country", "city", "product", "model",
              "player", "athlete", "company", "team", "person", "item", "term", "song", "film",
              "movie", "book", "game", "station", "brand", "place", "venue", "species",
              "element", "state", "airport", "building", "drug", "course"}
_NOT_NOUN = {"name", "title", "label", "full", "first", "last", "display", "short", "official"}
_GENERIC_TABLES = {"data", "table", "sheet", "export", "records", "rows", "dataset", "items"}
_ALIASES = {"dob": "date of birth", "qty": "quantity", "num": "number", "amt": "amount",
            "yr": "year", "desc": "description", "dt": "date", "pct": "percent"}
_UNITS = {"usd": "USD", "eur": "EUR", "gbp": "GBP", "jpy": "JPY", "chf": "CHF", "kg": "kg",
          "g": "g", "lb": "lb", "lbs": "lb", "km": "km", "m": "m", "cm": "cm", "mm": "mm",
          "mi": "miles", "ft": "feet", "km2": "km²", "m2": "m²", "s": "seconds",
          "sec": "seconds", "seconds": "seconds", "ms": "milliseconds", "min": "minutes",
          "minutes": "minutes", "h": "hours", "hr": "hours", "hours": "hours", "days": "days",
          "percent": "%", "mb": "MB", "gb": "GB", "kwh": "kWh"}
# Events a thing does rather than undergoes: "When did {e} end?", never "When was {e} ended?".
_INTRANSITIVE = {"death": ("die", "died"), "died": ("die", "died"), "start": ("start", "started"),
                 "end": ("end", "ended"), "begin": ("begin", "began"),
                 "finish": ("finish", "finished")}
_PARTICIPLES = {"birth": "born", "born": "born", "launch": "launched",
                "release": "released", "publication": "published", "founding": "founded",
                "founded": "founded", "creation": "created", "created": "created",
                "opening": "opened", "open": "opened",
                "hire": "hired", "registration": "registered", "delivery": "delivered",
                "order": "ordered", "purchase": "purchased", "ship": "shipped",
                "completion": "completed", "construction": "built", "build": "built",
                "establishment": "established", "established": "established",
                "update": "updated", "updated": "updated"}
_ADJECTIVES = {"height": "tall", "age": "old", "weight": "heavy", "length": "long",
               "width": "wide", "depth": "deep", "distance": "far", "duration": "long",
               "size": "big", "area": "large", "elevation": "high", "speed": "fast"}
_COUNT_WORDS = {"count", "number", "num", "qty", "quantity", "total"}
_PRICE_WORDS = {"price", "cost", "fee", "msrp"}
_PLACE_WORDS = {"country", "nation", "city", "town", "region", "state", "province",
                "continent", "origin", "location", "birthplace", "hometown"}
# Words that say which name, not whose: official_name is a name, manager_name a manager.
_NAME_KINDS = {"official", "common", "full", "short", "long", "native", "local", "english",
               "display", "alternate", "alternative", "formal", "legal", "first", "last",
               "given", "family", "middle", "nick", "brand", "trade", "scientific", "latin"}
GROUP_WORDS = {"category", "genre", "group", "sport", "discipline", "department", "division",
               "league", "section", "family", "segment", "tier", "series", "brand", "team",
               "club", "party", "band", "conference"}
_PERSON_WORDS = {"author", "director", "winner", "champion", "ceo", "founder", "manager",
                 "owner", "artist", "captain", "coach", "president", "leader", "composer",
                 "inventor", "designer", "architect", "creator", "mayor", "discoverer",
                 "player", "member", "writer", "editor", "producer", "singer"}

# Phrasings per kind of attribute. curate holds the last one out to probe recall, so it is a
# real rewording. {e}: the entity, {the_e}: "the <noun> <entity>", {v}: the fact.
_PHRASES: dict[str, tuple[tuple[str, ...], str]] = {
    "born": (("When was {e} born?", "What is the date of birth of {e}?",
              "On what date was {the_e} born?", "What is the birth date of {e}?"),
             "{e} was born on {v}."),
    "event_date": (("When was {e} {p}?", "On what date was {the_e} {p}?",
                    "What is the {label} of {e}?", "What date was {e} {p}?"),
                   "{e} was {p} on {v}."),
    "did_date": (("When did {e} {verb}?", "On what date did {the_e} {verb}?",
                  "What is the {n} date of {e}?", "What date did {e} {verb}?"),
                 "{e} {past} on {v}."),
    "did_year": (("In what year did {e} {verb}?", "When did {the_e} {verb}?",
                  "What is the {n} year of {e}?", "In which year did {e} {verb}?"),
                 "{e} {past} in {v}."),
    "date": (("What is the {label} of {e}?", "What date is given for the {n} of {the_e}?",
              "On which date was the {n} of {e}?", "Give the date of the {n} of {e}."),
             "The {label} of {e} is {v}."),
    "bare_date": (("What is the date of {e}?", "On what date was {the_e}?", "When was {e}?",
                   "What date is given for {e}?"), "The date of {e} is {v}."),
    "year": (("In what year was {e} {p}?", "When was {the_e} {p}?",
              "What is the {label} of {e}?", "In which year was {e} {p}?"),
             "{e} was {p} in {v}."),
    "bare_year": (("What year is {e} from?", "What is the year of {the_e}?",
                   "In which year is {e} dated?", "Which year does {e} date from?"),
                  "{e} is from {v}."),
    "count": (("How many {plural} does {e} have?", "What is the number of {plural} for {the_e}?",
               "What is the {singular} count of {e}?", "How many {plural} are recorded for {e}?"),
              "{e} has a {singular} count of {v}."),
    "number": (("What is the number of {label} for {e}?",
                "How many {label} are recorded for {the_e}?",
                "What number of {label} is listed for {e}?", "Give the number of {label} for {e}."),
               "The number of {label} for {e} is {v}."),
    "price": (("How much does {e} cost?", "What is the {label} of {the_e}{in_u}?",
               "What does {e} cost{in_u}?", "What is the {label} of {e}?"),
              "The {label} of {e} is {v}{u}."),
    "measure": (("What is the {label} of {e}{in_u}?", "How {adj} is {e}?",
                 "For {the_e}, what is the {label}{in_u}?", "Give the {label} of {e}{in_u}."),
                "The {label} of {e} is {v}{u}."),
    "plain_measure": (("What is the {label} of {e}{in_u}?", "What {label} is recorded for {e}?",
                       "For {the_e}, what is the {label}{in_u}?", "Give the {label} of {e}{in_u}."),
                      "The {label} of {e} is {v}{u}."),
    "person": (("Who is the {label} of {e}?", "Name the {label} of {the_e}.",
                "Which person is the {label} of {e}?", "Who is listed as the {label} of {e}?"),
               "The {label} of {e} is {v}."),
    "located": (("Which {label} is {e} in?", "In which {label} is {the_e} located?",
                 "What is the {label} of {e}?", "{e} lies in which {label}?"),
                "{e} is in {v}."),
    "place": (("Which {label} is {e} from?", "What is the {label} of {the_e}?",
               "What {label} does {e} come from?", "From which {label} is {e}?"),
              "{e} is from {v}."),
    "group": (("Which {label} does {e} belong to?", "What is the {label} of {e}?",
               "Which {label} is {the_e} part of?", "In which {label} is {e}?"),
              "The {label} of {e} is {v}."),
    "generic": (("What is the {label} of {e}?", "Which {label} is listed for {the_e}?",
                 "Tell me the {label} of {e}.", "What {label} does {e} have?"),
                "The {label} of {e} is {v}."),
    # A plural label ("discoverers", "ingredients"): the value may be a list.
    "persons": (("Who are the {label} of {e}?", "Name the {label} of {the_e}.",
                 "Which people are the {label} of {e}?", "Who are listed as the {label} of {e}?"),
                "The {label} of {e} are {v}."),
    "generic_plural": (("What are the {label} of {e}?", "Which {label} are listed for {the_e}?",
                        "Tell me the {label} of {e}.", "What {label} does {e} have?"),
                       "The {label} of {e} are {v}."),
}


# -- column names -------------------------------------------------------------------------------


def humanize(column: str) -> tuple[list[str], str | None]:
    """Split a column name into lower-case words and a unit suffix.

    Args:
        column: A column name in snake_case, camelCase, kebab-case or with spaces.

    Returns:
        The words, aliases expanded and unit removed, and the unit: `price_usd` →
        `(["price"], "USD")`, `launchDate` → `(["launch", "date"], None)`.
    """
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", column)
    words = [w for w in re.split(r"[^0-9A-Za-zÀ-ÿ]+", spaced.lower()) if w]
    words = [part for w in words for part in _ALIASES.get(w, w).split()]
    unit = _UNITS[words.pop()] if len(words) > 1 and words[-1] in _UNITS else None
    return words or [column.lower()], unit


# -- templates ----------------------------------------------------------------------------------


def build_template(
    table: str, p: ColumnProfile, key: tuple[str, ...], profiles: dict[str, ColumnProfile],
    taken: Collection[str] = (),
) -> TemplateConfig:
    """Word the questions and the answer asking for column `p` of the entity named by `key`.

    Args:
        table: The source name.
        p: The attribute column's profile.
        key: The key columns; the first names the entity, the others qualify it in brackets.
        profiles: Every column's profile (to tell what kind of thing the key names).
        taken: Template names already used; a numeric suffix keeps names unique.

    Returns:
        A template named `<table>_<column>` with four phrasings, a full-sentence answer,
        `fact: "{column}"` and the key.
    """
    entity, noun = _entity(table, key, profiles)
    family, parts = _family(table, p, noun)
    parts = {k: _restore_case(v, p.name) for k, v in parts.items()}
    parts |= {"e": entity, "the_e": f"the {noun} {entity}" if noun else entity,
              "v": "{" + p.name + "}"}
    questions, answer = _PHRASES[family]
    base = f"{_snake(table)}_{_snake(p.name)}"
    suffixed = (f"{base}_{i}" for i in range(2, PHRASING.max_name_suffix))
    name = next(n for n in [base, *suffixed] if n not in taken)
    # str.format does not re-read what it substitutes, so the "{column}" parts survive.
    return TemplateConfig(
        name=name, source=table, key=" | ".join("{" + c + "}" for c in key),
        questions=[q.format_map(parts) for q in questions], answer=answer.format_map(parts),
        fact="{" + p.name + "}",
    )


def _snake(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", " ".join(humanize(text)[0])).strip("_") or "column"


def _entity(
    table: str, key: tuple[str, ...], profiles: dict[str, ColumnProfile]
) -> tuple[str, str]:
    """How questions name the entity ('{name} ({event})') and what kind of thing it is."""
    if profiles[key[0]].kind == "date":
        return f"{' '.join(humanize(table)[0])} on {{{key[0]}}}", ""
    entity = "{" + key[0] + "}" + "".join(
        f" in {{{c}}}" if is_year(profiles[c]) else f" ({{{c}}})" for c in key[1:])
    return entity, _entity_noun(table, profiles[key[0]])


def is_year(p: ColumnProfile) -> bool:
    """Whole years (1952, 2007): a time qualifier of a key (a country in a year)."""
    return p.kind == "integer" and ("year" in p.words or (
        len(p.top) == 4 and p.top.isdigit() and 1000 <= int(p.top) <= 2100))


def _entity_noun(table: str, key: ColumnProfile) -> str:
    """'country' for country_code, 'event' for event, 'product' for the name in products."""
    words = [w for w in key.words if w not in _NOT_NOUN | ID_WORDS]
    if words:
        return " ".join(words)
    table_words = humanize(table)[0]
    if len(table_words) == 1 and table_words[0] not in _GENERIC_TABLES:
        singular = _singular(table_words[0])
        return singular if singular != table_words[0] else ""
    return ""


def _restore_case(text: str, column: str) -> str:
    """Put acronyms back in upper case: 'gdp per capita' → 'GDP per capita'."""
    acronyms = {a.lower(): a for a in re.findall(r"[A-Z]{2,}(?![a-z])", column)}
    return " ".join(acronyms.get(word, word) for word in text.split(" "))


def _label_words(table: str, p: ColumnProfile) -> list[str]:
    """The attribute's words as questions use them."""
    table_words = humanize(table)[0]
    words = p.words
    if len(words) > 1 and words[0] in {*table_words, *map(_singular, table_words)}:
        words = words[1:]  # product_category in products → category
    if words in (["total"], ["count"], ["number"], ["amount"]) and len(table_words) > 1:
        words = [w for w in table_words if w != words[0]] + words  # medals_total.Total
    if len(words) > 1 and words[-1] == "name" and words[-2] not in _NAME_KINDS:
        words = words[:-1]  # manager_name → manager, but official_name stays
    return words


def _family(table: str, p: ColumnProfile, noun: str) -> tuple[str, dict[str, str]]:
    """The phrasing that fits the attribute's type and words, with the parts it needs."""
    words = _label_words(table, p)
    parts = {"label": " ".join(words), "in_u": f" in {p.unit}" if p.unit else "",
             "u": ("" if p.unit == "%" else " ") + p.unit if p.unit else ""}
    if p.kind == "date":
        return _date_family(words, parts)
    if p.kind == "integer" and "year" in words:
        rest, participle = _event_word(words, {"year", "of", "in"})
        if _intransitive(rest):
            return "did_year", parts | _intransitive(rest)
        if participle:
            return "year", parts | {"p": participle}
        return ("plain_measure" if rest else "bare_year"), parts
    if p.kind in ("integer", "float"):
        return _number_family(table, p, words, parts)
    return _text_family(words, noun), parts


def _event_word(words: list[str], drop: set[str]) -> tuple[list[str], str | None]:
    """The words besides the date ones, and the participle they imply (launch → launched)."""
    rest = [w for w in words if w not in drop]
    return rest, next((_PARTICIPLES[w] for w in rest if w in _PARTICIPLES), None)


def _intransitive(rest: list[str]) -> dict[str, str]:
    """{verb, past, n} when the words are one event the entity does (end, death), else {}:
    'construction start' or 'operation start' keep their qualifier in another phrasing."""
    if len(rest) != 1 or rest[0] not in _INTRANSITIVE:
        return {}
    verb, past = _INTRANSITIVE[rest[0]]
    return {"verb": verb, "past": past, "n": rest[0]}


def _date_family(words: list[str], parts: dict[str, str]) -> tuple[str, dict[str, str]]:
    rest, participle = _event_word(words, {"date", "of", "on", "at", "day", "time"})
    if _intransitive(rest):
        return "did_date", parts | _intransitive(rest)
    if participle == "born":
        return "born", parts
    if participle:
        return "event_date", parts | {"p": participle}
    return ("date", parts | {"n": " ".join(rest)}) if rest else ("bare_date", parts)


def _number_family(
    table: str, p: ColumnProfile, words: list[str], parts: dict[str, str]
) -> tuple[str, dict[str, str]]:
    if set(words) & _PRICE_WORDS:
        return "price", parts
    if words[-1] in _ADJECTIVES:
        return "measure", parts | {"adj": _ADJECTIVES[words[-1]]}
    if _names_a_number(words):
        return "plain_measure", parts  # "atomic number", "jersey number": a label, no count
    noun = [w for w in words if w not in _COUNT_WORDS | {"of"}]
    if p.kind != "integer" or p.unit is not None or not noun:
        return "plain_measure", parts
    # A count: "num_goals", "wins", or "Gold Medal" in a table of medals.
    if set(words) & _COUNT_WORDS or _is_plural(noun[-1]) or _plural(noun[-1]) in table.lower():
        singular = noun[:-1] + [_singular(noun[-1])]
        plural = noun[:-1] + [_plural(singular[-1])]
        return "count", parts | {"singular": " ".join(singular), "plural": " ".join(plural)}
    if any(map(_is_plural, noun)):
        return "number", parts  # units sold
    return "plain_measure", parts


def _names_a_number(words: list[str]) -> bool:
    """'<thing> number' with a singular thing names a number the row carries (atomic number,
    phone number), unlike 'number of goals' or 'goals number', which count."""
    return (len(words) > 1 and words[-1] == "number" and words[-2] != "of"
            and not _is_plural(words[-2]) and not set(words[:-1]) & _COUNT_WORDS)


def _text_family(words: list[str], noun: str) -> str:
    if words[-1] in _PERSON_WORDS:
        return "person"
    if _is_plural(words[-1]):
        return "persons" if _singular(words[-1]) in _PERSON_WORDS else "generic_plural"
    if len(words) == 1 and words[0] in _PLACE_WORDS:
        # A country lies *in* a continent; a person or a product comes *from* a country.
        return "located" if noun.split(" ")[-1] in _PLACE_WORDS else "place"
    return "group" if words[-1] in GROUP_WORDS else "generic"


def _is_plural(word: str) -> bool:
    long_enough = len(word) > PHRASING.short_word_len
    return long_enough and word.endswith("s") and not word.endswith(("ss", "us", "is"))


def _singular(word: str) -> str:
    if not _is_plural(word):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    return word[:-2] if word.endswith(("ses", "xes", "ches", "shes")) else word[:-1]


def _plural(word: str) -> str:
    if _is_plural(word):
        return word
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "es" if word.endswith(("s", "x", "ch", "sh")) else word + "s"
