"""Questions a user really asks about real entities, built for any table from its templates:

- absent_attribute: a real entity with an attribute the schema does not hold ("Who coached
  CROUSER Ryan?"): the answer is to decline, even with the entity's rows in the context;
- other_qualifier: a template question with a qualifier outside the data (its year shifted:
  "... at the Paris 2020 Olympics?"): decline;
- variant_name: a template question naming the entity by a variant of its name (the surname
  alone, the words reordered): answerable, it measures false declines.

Each is a `Fact` whose `source` is its origin fact's row plus `origin` (that fact's id), so
curate can put it on its origin's side of the split.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable

from tuneline.artifacts import hash_strings
from tuneline.synthesize.config import TemplateConfig
from tuneline.synthesize.phrasing import humanize
from tuneline.synthesize.templates import Fact, placeholders, template_key

ABSENT_ATTRIBUTE, OTHER_QUALIFIER, VARIANT_NAME = "absent_attribute", "other_qualifier", \
    "variant_name"
KINDS = (ABSENT_ATTRIBUTE, OTHER_QUALIFIER, VARIANT_NAME)
UNANSWERABLE_KINDS = (ABSENT_ATTRIBUTE, OTHER_QUALIFIER)

# Attributes most tables do not hold, by the kind of entity the template's key names. An
# attribute is left out when a column of any ingested table holds it or what its question
# would be read as asking for (`_HELD_BY`).
PERSON_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("coach", "Who coached {entity}?"),
    ("height", "How tall is {entity}?"),
    ("score", "What was {entity}'s winning score?"),
    ("club", "Which club does {entity} train with?"),
    ("birthplace", "In which town was {entity} born?"),
    ("sponsor", "Which company sponsors {entity}?"),
    ("salary", "How much prize money did {entity} earn?"),
    ("record", "What is {entity}'s personal best?"),
    ("school", "Which university did {entity} attend?"),
    ("weight", "How much does {entity} weigh?"),
)
THING_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("score", "What was the winning score in {entity}?"),
    ("attendance", "How many spectators watched {entity}?"),
    ("venue", "At which venue was {entity} held?"),
    ("record", "What is the record in {entity}?"),
    ("referee", "Who refereed {entity}?"),
    ("price", "How much did tickets for {entity} cost?"),
    ("sponsor", "Which company sponsored {entity}?"),
    ("duration", "How long did {entity} last?"),
)
# Column names that hold an attribute besides its own word. Asked of a table with such a
# column, the question has a debatable gold answer: "How much does Owl monkey weigh?" of a table
# with `bodywt`, "In which town was Wyoming born?" of one with `capital` (docs/log.md,
# 2026-12-05 (afternoon)). A column holds one when its last words, joined, are one of these
# (`body_mass_g`, `home_town`, `place_of_birth`; not `capacity`, `capital_gains`), or, for an
# abbreviation, when a word ends with it (`bodywt`, `brainwt`).
_HELD_BY: dict[str, frozenset[str]] = {
    "height": frozenset({"tall", "stature"}),
    "weight": frozenset({"mass"}),
    "birthplace": frozenset({"placeofbirth", "hometown", "homeworld", "town", "city",
                             "capital"}),
    "salary": frozenset({"prize", "prizemoney", "earnings", "income", "wage"}),
    "school": frozenset({"university", "college"}),
    "venue": frozenset({"stadium", "arena", "city", "town"}),
    "price": frozenset({"cost", "fare", "fee"}),
    "duration": frozenset({"length", "runtime"}),
    "attendance": frozenset({"spectators", "crowd"}),
}
_ABBREVIATED = {"wt": "weight"}
_PERSON_WORDS = frozenset({"name", "athlete", "person", "player", "customer", "author",
                           "employee", "user", "member", "driver", "artist", "student", "agent",
                           "patient", "contact", "owner"})
_YEAR = re.compile(r"\b(19|20)\d{2}\b")
YEAR_SHIFTS = (-4, -8, 4)


def is_person_key(template: TemplateConfig) -> bool:
    """Whether the template's key is one column that names people (by its name's words)."""
    columns = list(dict.fromkeys(placeholders(template_key(template))))
    return len(columns) == 1 and bool(set(humanize(columns[0])[0]) & _PERSON_WORDS)


def absent_attributes(template: TemplateConfig, all_columns: Iterable[str],
                      extra: Iterable[str] = (), source_columns: Iterable[str] | None = None
                      ) -> list[tuple[str, str]]:
    """(attribute, question with {entity}) pairs no column holds, plus the configured ones
    (`synthesize.unanswerable.attributes`, which may use the key's own placeholders).

    An attribute's own word in any column name of `all_columns` (every ingested table) holds
    it; the other names it goes by (`_HELD_BY`) count only in the template's own table
    (`source_columns`, default `all_columns`): another table's `city` says nothing of its rows.
    """
    column_words = {w for column in all_columns for w in humanize(column)[0]}
    held = column_words | _held_under_other_names(
        all_columns if source_columns is None else source_columns)
    packaged = PERSON_ATTRIBUTES if is_person_key(template) else THING_ATTRIBUTES
    found = [(name, question) for name, question in packaged if name not in held]
    return found + [(f"configured-{i}", question) for i, question in enumerate(extra)]


def _held_under_other_names(columns: Iterable[str]) -> set[str]:
    """The packaged attributes these columns hold under another name (`_HELD_BY`)."""
    held = set()
    for column in columns:
        words = humanize(column)[0]
        endings = {"".join(words[i:]) for i in range(len(words))}
        held |= {name for name, others in _HELD_BY.items() if others & endings}
        held |= {name for abbreviation, name in _ABBREVIATED.items()
                 if any(w.endswith(abbreviation) for w in words)}
    return held


def absent_attribute_facts(template: TemplateConfig, facts: list[Fact],
                           attributes: list[tuple[str, str]], answer: str,
                           rng: random.Random) -> list[Fact]:
    """One question per fact about an attribute the data lacks, the attributes dealt in turn
    (shuffled) so each is asked about a similar number of entities."""
    if not attributes:
        return []
    dealt = list(attributes)
    rng.shuffle(dealt)
    probes = []
    for i, fact in enumerate(facts):
        name, question = dealt[i % len(dealt)]
        values = dict(zip(_key_columns(template), fact.entity, strict=False))
        text = question.format_map({**values, "entity": ", ".join(fact.entity or [fact.key])})
        probes.append(_probe(ABSENT_ATTRIBUTE, fact, [text], answer, "", name))
    return probes


def other_qualifier_facts(template: TemplateConfig, facts: list[Fact], answer: str,
                          rng: random.Random,
                          qualifiers: dict[str, list[str]] | None = None) -> list[Fact]:
    """Each fact's questions with a qualifier replaced by one outside the data: a configured
    replacement (`synthesize.unanswerable.qualifiers`, e.g. {"Paris 2024": ["Tokyo 2020"]})
    where a question has its text, else the years in its literal text shifted by one of
    YEAR_SHIFTS. A fact is left out when some phrasing has neither (it would stay answerable).
    """
    if not any(_YEAR.search(_literal_text(q)) for q in template.questions) and not qualifiers:
        return []
    probes = []
    for fact in facts:
        shift = rng.choice(YEAR_SHIFTS)
        replaced = {old: rng.choice(new) for old, new in (qualifiers or {}).items() if new}
        questions = [_requalified(q, replaced, shift) for q in fact.questions]
        if all(new != old for new, old in zip(questions, fact.questions, strict=True)):
            label = ", ".join([*(f"{o} -> {n}" for o, n in sorted(replaced.items())),
                               f"year {shift:+d}"])
            probes.append(_probe(OTHER_QUALIFIER, fact, questions, answer, "", label))
    return probes


def _requalified(question: str, replaced: dict[str, str], shift: int) -> str:
    """The question with configured qualifiers replaced, else its years shifted."""
    for old, new in replaced.items():
        if old in question:
            return question.replace(old, new)
    return _YEAR.sub(lambda m: str(int(m.group()) + shift), question)


def variant_name_facts(template: TemplateConfig, facts: list[Fact],
                       every_name: Iterable[str], rng: random.Random) -> list[Fact]:
    """For a template keyed by people's names, each fact's questions naming the person by a
    variant: the one word of the name no other name has (the surname as people say it), or
    the words in the other order. Answerable, with the fact's own answer."""
    if not is_person_key(template):
        return []
    word_counts = Counter(w.casefold() for name in set(every_name) for w in name.split())
    probes = []
    for fact in facts:
        name = fact.key
        words = name.split()
        if len(words) < 2:
            continue
        unique = [w for w in words if word_counts[w.casefold()] == 1 and len(w) > 2]
        # A word written in capitals is the family name in "FAMILY Given" data.
        unique = [w for w in unique if w.isupper()] or unique
        if unique and rng.random() < 0.5:
            variant, label = unique[0].title(), "one word"
        else:
            variant, label = " ".join(reversed(words)), "reordered"
        questions = [q.replace(name, variant) for q in fact.questions]
        if questions != fact.questions:
            probes.append(_probe(VARIANT_NAME, fact, questions, fact.answer, fact.fact, label))
    return probes


def _probe(kind: str, origin: Fact, questions: list[str], answer: str, fact: str,
           label: str) -> Fact:
    return Fact(
        fact_id=hash_strings(kind, origin.fact_id, label, *questions),
        template=origin.template, key=origin.key, fact=fact, answer=answer,
        questions=questions,
        source={**origin.source, "origin": origin.fact_id, "probe": label},
        kind=kind, entity=list(origin.entity),
    )


def _key_columns(template: TemplateConfig) -> list[str]:
    return list(dict.fromkeys(placeholders(template_key(template))))


def _literal_text(question: str) -> str:
    """A question template without its {placeholders}."""
    return re.sub(r"\{[^}]*\}", " ", question)
