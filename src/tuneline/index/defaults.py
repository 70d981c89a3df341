"""What the index needs and a config does not say, derived from the synthesize templates: the
fields a question names (index.match_fields) and, per table a template asks about, a passage
that names the row's entity before what is asked (index.templates)."""

from __future__ import annotations

from collections.abc import Iterable

from tuneline.synthesize.config import TemplateConfig
from tuneline.synthesize.phrasing import humanize
from tuneline.synthesize.templates import placeholders, template_key


def match_fields_from(templates: Iterable[TemplateConfig]) -> dict[str, list[str]]:
    """Per source, the columns its templates' questions name a row by: each template's `where`
    columns and key columns, in order of first use."""
    fields: dict[str, dict[str, None]] = {}
    for template in templates:
        named = [*template.where, *placeholders(template_key(template))]
        fields.setdefault(template.source, {}).update(dict.fromkeys(named))
    return {source: list(named) for source, named in fields.items()}


def passages_from(templates: Iterable[TemplateConfig],
                  scope: str | None = None) -> dict[str, str]:
    """Per source, '{key}, scope: label {value}; label {value}.': the row's entity, then each
    `where` column and each column a template asks for (its `fact`), labelled with the column's
    words, so that a causal model reads which row and which field before the value it copies.
    The entity is the key columns no template asks for (a column one template keys on and
    another asks for, a champion's name, comes after the filter that picks the row: the medal);
    when every key column is asked for, all of them. `scope`, the data's own qualifier
    (synthesize.unanswerable.qualifiers, 'Paris 2024'), follows the entity, so a question about
    another (Tokyo 2020) reads a passage that says which it holds."""
    keys: dict[str, dict[str, None]] = {}
    asked: dict[str, dict[str, None]] = {}
    facts: set[tuple[str, str]] = set()
    for template in templates:
        keys.setdefault(template.source, {}).update(
            dict.fromkeys(placeholders(template_key(template))))
        asked.setdefault(template.source, {}).update(
            dict.fromkeys([*template.where, *placeholders(template.fact)]))
        facts.update((template.source, column) for column in placeholders(template.fact))
    passages = {}
    for source, key in keys.items():
        entity_columns = [c for c in key if (source, c) not in facts] or list(key)
        entity = " ".join("{" + column + "}" for column in entity_columns)
        if scope:
            entity = f"{entity}, {scope}"
        parts = [f"{' '.join(humanize(column)[0])} {{{column}}}" for column in asked[source]
                 if column not in entity_columns]
        passages[source] = f"{entity}: {'; '.join(parts)}." if parts else f"{entity}."
    return passages
