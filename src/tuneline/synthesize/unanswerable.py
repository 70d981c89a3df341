"""Unanswerable questions: a template's phrasings about entities that its table does not hold."""

from __future__ import annotations

import random

from tuneline.artifacts import hash_strings
from tuneline.ingest.records import Record
from tuneline.synthesize.config import TemplateConfig
from tuneline.synthesize.templates import Fact, placeholders, template_key
from tuneline.text import normalize

MAX_ATTEMPTS_PER_QUESTION = 50


def unanswerable_facts(template: TemplateConfig, records: list[Record], count: int,
                       answer: str, rng: random.Random,
                       draw_from: list[Record] | None = None) -> list[Fact]:
    """Up to `count` facts asking the template's questions about invented entities.

    An invented entity recombines real key values, so it looks like the data but matches no
    row of the whole table (`records`): a one-column key joins the start of one value to the
    end of another; a key of several columns keeps the leading ones (the group: an event's
    discipline) of one real row and recombines the last one from values of the same group
    ("Athletics | Men's 400m Hurdles" + "Athletics | Women's 100m" → "Athletics | Men's 100m").
    Rows are drawn from `draw_from` (the rows the template's real facts come from; default:
    every row), so groups come in proportion to the real facts: "a discipline the model never
    saw, or an event that is not of its discipline, so decline" is no shortcut. The expected
    answer is the abstention.
    """
    key = template_key(template)
    key_columns = list(dict.fromkeys(placeholders(key)))

    def usable(group: list[Record]) -> list[dict[str, str]]:
        rows = [{k: v.strip() for k, v in r.data.items()} for r in group]
        return [r for r in rows if all(r.get(c) for c in key_columns)]

    every = usable(records)
    rows = usable(draw_from) if draw_from is not None else every
    if not rows or count == 0:
        return []
    # By word set: "Men's 100m 100m Breaststroke" is a real event asked clumsily, not another.
    known = {_word_set(key.format_map(row)) for row in every}
    facts: dict[str, Fact] = {}
    for _ in range(count * MAX_ATTEMPTS_PER_QUESTION):
        if len(facts) == count:
            break
        anchor = rng.choice(rows)
        values = {**anchor, **_invented_key(key_columns, anchor, rows, rng)}
        entity = key.format_map(values)
        if _word_set(entity) in known or entity in facts:
            continue
        facts[entity] = Fact(
            fact_id=hash_strings("unanswerable", template.name, entity),
            template=template.name, key=entity, fact="", answer=answer,
            questions=[q.format_map(values) for q in template.questions],
            source={"source": template.source, "file": None, "line": None},
            kind="unanswerable", entity=[values[c] for c in key_columns],
        )
    return sorted(facts.values(), key=lambda f: f.fact_id)


def _word_set(text: str) -> frozenset[str]:
    return frozenset(normalize(text).split())


def _invented_key(columns: list[str], anchor: dict[str, str], rows: list[dict[str, str]],
                  rng: random.Random) -> dict[str, str]:
    """Key values for one invented entity: `anchor`'s group columns, the last one made up."""
    *group, last = columns
    peers = [r for r in rows if all(r[c] == anchor[c] for c in group)]
    distinct = sorted({r[last] for r in peers})
    if len(distinct) < 2:  # a group with one value: its partner comes from another group
        distinct = [anchor[last], rng.choice(rows)[last]]
    first, second = rng.sample(distinct, 2) if len(distinct) > 2 else distinct
    return {**{c: anchor[c] for c in group}, last: _splice(first, second, rng)}


def _splice(first: str, second: str, rng: random.Random) -> str:
    """The front of one value joined to the back of another, by words or else by characters."""
    a, b = first.split(), second.split()
    if len(a) > 1 and len(b) > 1:
        return " ".join(a[: rng.randint(1, len(a) - 1)] + b[rng.randint(1, len(b) - 1):])
    cut_a, cut_b = max(1, len(first) // 2), max(1, len(second) // 2)
    return first[:cut_a] + second[cut_b:]
