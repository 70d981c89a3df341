"""Suggest Q&A templates for an unseen table from its column names, types and values."""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import yaml

from tuneline.synthesize.column_types import profile_column
from tuneline.synthesize.config import TemplateConfig
from tuneline.synthesize.phrasing import (
    GROUP_WORDS,
    NAME_WORDS,
    build_template,
    humanize,
    is_year,
)
from tuneline.synthesize.profile import ColumnProfile
from tuneline.synthesize.thresholds import THRESHOLDS, SuggestThresholds

__all__ = [
    "THRESHOLDS",
    "ColumnProfile",
    "KeyFit",
    "SuggestThresholds",
    "TableSuggestion",
    "auto_templates_for",
    "build_template",
    "humanize",
    "key_fit",
    "plan_templates",
    "render_yaml",
    "suggest_templates",
]


_EXACT_KINDS = {"date", "integer", "float"}  # weighted 1 in usefulness, others text_kind_weight


@dataclass
class KeyFit:
    """How well a key determines a column: the share of rows left ambiguous, facts kept."""

    key: tuple[str, ...]
    ambiguous: float
    facts: int


@dataclass
class TableSuggestion:
    """Suggested templates for one table, its entity key and why other columns got none."""

    table: str
    key: tuple[str, ...]
    templates: list[TemplateConfig] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def plan_templates(
    table: str, columns: list[str], rows: list[dict[str, Any]], max_templates: int | None = None
) -> TableSuggestion:
    """Profile a table and suggest one template per attribute worth asking about.

    Args:
        table: The ingest source name (the templates' `source`).
        columns: The table's columns, in order.
        rows: The rows as column → value; an even sample of at most `sample_rows` distinct
            rows is profiled.
        max_templates: Keep at most this many templates, the most useful first.

    Returns:
        The entity key, the templates ranked by usefulness, a note per template (type, key,
        facts, ambiguity) and a reason for every column that got no template.
    """
    rows = _sample(_distinct(rows, columns))
    profiles = {c: profile_column(c, [str(r.get(c) or "") for r in rows]) for c in columns}
    candidates = _key_candidates(profiles, rows)
    suggestion = TableSuggestion(table, _entity_key(candidates, profiles, rows))
    if not rows:
        suggestion.skipped = dict.fromkeys(columns, "the table has no rows")
        return suggestion
    ranked = sorted(_attribute_templates(suggestion, profiles, rows, candidates),
                    key=lambda item: -item[0])
    for _, template, note in ranked[:max_templates]:
        suggestion.templates.append(template)
        suggestion.notes[template.name] = note
    for _, template, _ in ranked[len(suggestion.templates):]:
        suggestion.skipped[template.fact[1:-1]] = f"ranked below the top {max_templates}"
    return suggestion


def suggest_templates(
    table: str, columns: list[str], rows: list[dict[str, str]], max_templates: int | None = None
) -> list[TemplateConfig]:
    """Templates for a table nobody wrote templates for, the most useful first.

    Args:
        table: The ingest source name.
        columns: The table's columns.
        rows: The rows as column → value.
        max_templates: Keep at most this many.

    Returns:
        One template per attribute worth asking about; `plan_templates` says why the other
        columns were skipped.
    """
    return plan_templates(table, columns, rows, max_templates).templates


def auto_templates_for(
    tables: dict[str, dict[str, Any]],
    records_by_source: dict[str, list[Any]],
    named_sources: set[str],
    max_templates: int | None = None,
) -> list[TemplateConfig]:
    """Suggested templates for every ingested table that no configured template names.

    Args:
        tables: The ingest artifact's tables.json: source name → {"columns": [...], ...}.
        records_by_source: Source name → its records (`Record`s or plain row dicts).
        named_sources: Sources that configured templates already use; they are left alone.
        max_templates: At most this many templates per table.

    Returns:
        The suggested templates, table by table in ingest order.
    """
    templates: list[TemplateConfig] = []
    for name, table in tables.items():
        if name not in named_sources:
            rows = [getattr(r, "data", r) for r in records_by_source.get(name, [])]
            templates += suggest_templates(name, list(table["columns"]), rows, max_templates)
    return templates


def render_yaml(suggestions: list[TableSuggestion], header: list[str]) -> str:
    """YAML for a `synthesize:` section holding the suggested templates, each with a comment.

    Args:
        suggestions: One per table.
        header: Comment lines to open the text with (without the leading '# ').

    Returns:
        Text that `yaml.safe_load` reads back as `{"synthesize": {"templates": [...]}}`.
    """
    lines = [f"# {line}".rstrip() for line in header] + ["synthesize:", "  templates:"]
    for suggestion in suggestions:
        for template in suggestion.templates:
            lines.append(f"    # {suggestion.table}: {suggestion.notes.get(template.name, '')}")
            lines += ["    " + line for line in _dump(template).splitlines()]
    if not any(s.templates for s in suggestions):
        lines[-1] = "  templates: []"
    return "\n".join(lines) + "\n"


def _dump(template: TemplateConfig) -> str:
    data = template.model_dump(exclude_defaults=True)
    order = ("name", "source", "where", "key", "fact", "questions", "answer")
    return yaml.safe_dump([{k: data[k] for k in order if k in data}], sort_keys=False,
                          allow_unicode=True, width=100)


def _distinct(rows: list[dict[str, Any]], columns: list[str]) -> list[dict[str, Any]]:
    """The rows without exact repeats, which say nothing about what identifies a row."""
    unique = {tuple(str(row.get(c) or "").strip() for c in columns): row for row in rows}
    return list(unique.values())


def _sample(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every row, or `sample_rows` evenly spaced ones (deterministic)."""
    size = THRESHOLDS.sample_rows
    if len(rows) <= size:
        return rows
    step = len(rows) / size
    return [rows[int(i * step)] for i in range(size)]


# -- profiling ----------------------------------------------------------------------------------


# -- keys ---------------------------------------------------------------------------------------


def _key_score(p: ColumnProfile) -> float | None:
    """How well a column names the entity a row is about; None when it cannot."""
    if not _keyable(p):
        return None
    if p.kind == "date":  # a time series: "the close of msft on 2003-09-19"
        if p.uniqueness < THRESHOLDS.date_key_min_uniqueness:
            return None
        return THRESHOLDS.uniqueness_weight * p.uniqueness - THRESHOLDS.date_key_penalty
    if p.kind not in ("text", "categorical", "identifier"):
        return None
    score = THRESHOLDS.uniqueness_weight * p.uniqueness + _name_bonus(p)
    if _wordy(p):
        score -= THRESHOLDS.prose_key_penalty
    return score - (THRESHOLDS.identifier_penalty if p.kind == "identifier" else 0.0)


def _keyable(p: ColumnProfile) -> bool:
    """Mostly filled, several values, short enough to name an entity."""
    return (p.blank_share <= THRESHOLDS.key_max_blank_share
            and p.distinct >= THRESHOLDS.min_distinct
            and p.avg_len <= THRESHOLDS.key_max_avg_len)


def _name_bonus(p: ColumnProfile) -> float:
    """A column called a name whose values read like names (not prose that explains one)."""
    return THRESHOLDS.name_bonus if set(p.words) & NAME_WORDS and not _wordy(p) else 0.0


def _wordy(p: ColumnProfile) -> bool:
    """Values of more words than a name has: a sentence, an explanation, a list of names."""
    return p.avg_words > THRESHOLDS.key_max_name_words


def _values(rows: list[dict[str, str]], columns: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Stripped values of `columns` in the rows where all of them are filled."""
    picked = (tuple((row.get(c) or "").strip() for c in columns) for row in rows)
    return [values for values in picked if all(values)]


def _uniqueness(rows: list[dict[str, str]], columns: tuple[str, ...]) -> float:
    values = _values(rows, columns)
    return len(set(values)) / len(values) if values else 0.0


def _key_candidates(
    profiles: dict[str, ColumnProfile], rows: list[dict[str, str]]
) -> list[tuple[str, ...]]:
    """Single columns unique enough, most name-like first, then up to `max_pairs` pairs that
    are nearly unique and clearly more unique than either column alone."""
    scored = sorted(((s, n) for n, p in profiles.items()
                     if (s := _key_score(p)) is not None), reverse=True)
    singles = [(n,) for _, n in scored
               if profiles[n].uniqueness >= THRESHOLDS.single_key_min_uniqueness]
    # Codes and slugs may name an entity alone, but beside a name they read badly and can
    # give the answer away (sport + its slug).
    readable = [n for _, n in scored if profiles[n].kind not in ("identifier", "date")]
    years = [n for n, p in profiles.items() if is_year(p)]
    pool = readable[:THRESHOLDS.pair_pool]
    pairs = []
    for a, b in [*combinations(pool, 2), *((a, y) for a in pool for y in years)]:
        pair_u = _uniqueness(rows, (a, b))
        alone = max(profiles[a].uniqueness, profiles[b].uniqueness)
        if pair_u >= THRESHOLDS.pair_min_uniqueness and pair_u >= alone + THRESHOLDS.pair_min_gain:
            pairs.append((pair_u, (a, b)))
    best_pairs = sorted(pairs, key=lambda x: -x[0])[:THRESHOLDS.max_pairs]
    return singles + [pair for _, pair in best_pairs]


def _entity_key(
    candidates: list[tuple[str, ...]], profiles: dict[str, ColumnProfile],
    rows: list[dict[str, str]],
) -> tuple[str, ...]:
    """The key that best names what a row is about. A name-like column qualified by a grouping
    one (event + discipline) beats a unique column that is not name-like (winner)."""
    def score(key: tuple[str, ...]) -> float:
        first = profiles[key[0]]
        if len(key) == 1:
            if first.uniqueness < THRESHOLDS.entity_min_uniqueness:
                return THRESHOLDS.rejected_key_score
            return _key_score(first) or 0.0
        pair = THRESHOLDS.uniqueness_weight * _uniqueness(rows, key)
        qualifier = _qualifier_bonus(profiles[key[1]])
        return pair + _name_bonus(first) + qualifier - THRESHOLDS.pair_penalty

    return max(candidates, key=score, default=())


def _qualifier_bonus(p: ColumnProfile) -> float:
    """How well a second key column qualifies the first: a group best, another name less."""
    words = set(p.words)
    if words & GROUP_WORDS or is_year(p):  # a group, or the year of a time series
        return THRESHOLDS.group_qualifier_bonus
    return THRESHOLDS.name_qualifier_bonus if words & NAME_WORDS else 0.0


def key_fit(rows: list[dict[str, str]], key: tuple[str, ...], column: str) -> KeyFit:
    """How far `column` is a function of `key`, counted as `facts_from_records` will count it.

    Args:
        rows: The rows as column → value.
        key: The key columns.
        column: The attribute column.

    Returns:
        The share of usable rows whose key has several values of `column` (dropped as
        ambiguous) and the number of keys with exactly one value (the facts kept).
    """
    seen: dict[tuple[str, ...], set[str]] = defaultdict(set)
    counts: Counter[tuple[str, ...]] = Counter()
    for *key_values, value in _values(rows, (*key, column)):
        seen[tuple(key_values)].add(value)
        counts[tuple(key_values)] += 1
    usable = sum(counts.values())
    dropped = sum(n for k, n in counts.items() if len(seen[k]) > 1)
    kept = sum(1 for values in seen.values() if len(values) == 1)
    return KeyFit(key, dropped / usable if usable else 1.0, kept)


def _choose_key(
    rows: list[dict[str, str]], column: str, candidates: list[tuple[str, ...]]
) -> tuple[KeyFit | None, KeyFit | None]:
    """The first candidate making `column` a function of it (strictly, else the least ambiguous
    within `loose_ambiguity`), and the least ambiguous one tried (for the skip reason)."""
    tried = [key_fit(rows, key, column) for key in candidates if column not in key]
    tried = [fit for fit in tried if fit.facts >= THRESHOLDS.min_key_facts]
    best = min(tried, key=lambda fit: fit.ambiguous, default=None)
    strict = next((fit for fit in tried if fit.ambiguous <= THRESHOLDS.strict_ambiguity), None)
    if strict is not None:
        return strict, best
    loose = best is not None and best.ambiguous <= THRESHOLDS.loose_ambiguity
    return (best if loose else None), best


# -- attributes ---------------------------------------------------------------------------------


def _attribute_templates(
    suggestion: TableSuggestion, profiles: dict[str, ColumnProfile],
    rows: list[dict[str, str]], candidates: list[tuple[str, ...]],
) -> list[tuple[float, TemplateConfig, str]]:
    """A scored template for every column worth asking about; the others go to `skipped`."""
    ranked: list[tuple[float, TemplateConfig, str]] = []
    kept: list[str] = []
    if suggestion.key and profiles[suggestion.key[0]].kind != "date":
        # Rows named by a name are not asked "on {date}": date keys are for time series.
        candidates = [k for k in candidates if profiles[k[0]].kind != "date"]
    for name, p in profiles.items():
        reason = "the entity key" if name in suggestion.key else _static_skip(p)
        if reason is None and _row_number(rows, name):
            reason = "a row number (0 or 1, 2, 3 ... in row order)"
        other = None if reason else _repeats(rows, name, kept)
        if other:
            reason = f"repeats '{other}' (same value in ≥{THRESHOLDS.repeat_share:.0%} of rows)"
        elif not reason and (twin := _mirrors(rows, name, kept)):
            reason = f"one-to-one with '{twin}': the same fact in other words"
        fit, best = (None, None) if reason else _choose_key(rows, name, candidates)
        if fit is None:
            suggestion.skipped[name] = reason or _no_key_reason(best)
            continue
        kept.append(name)
        template = build_template(suggestion.table, p, fit.key, profiles,
                                  {t.name for _, t, _ in ranked})
        note = (f"{p.kind}, key {' + '.join(fit.key)}: ~{fit.facts} facts, "
                f"{fit.ambiguous:.0%} of rows ambiguous")
        ranked.append((_usefulness(p, fit, len(rows)), template, note))
    _mark_key_parts(suggestion, [t.key or "" for _, t, _ in ranked])
    return ranked


def _static_skip(p: ColumnProfile) -> str | None:
    """Why a column is not worth asking about, judged from the column alone."""
    if not _placeholder_ok(p.name):
        return "its name cannot be a {placeholder} (has . : ! [ or is a number)"
    if p.blank_share > THRESHOLDS.max_blank_share:
        return f"mostly empty ({p.blank_share:.0%} blank)"
    if _near_constant(p):
        return f"near-constant ('{_clip(p.top)}' in {p.top_count / p.filled:.0%} of rows)"
    if p.kind == "float" and (p.avg_len > THRESHOLDS.max_float_len
                              or _decimals(p.top) > THRESHOLDS.max_decimals):
        example = _clip(p.top, THRESHOLDS.float_quote_width)
        return f"high-precision numbers (e.g. '{example}'); round them first"
    return {
        "url": "URLs", "email": "email addresses (personal data)",
        "identifier": (None if letter_code(p) else
                       f"identifier or code (e.g. '{_clip(p.top)}')"),
        "free_text": f"long free text (~{p.avg_len:.0f} characters)",
        "boolean": "yes/no flag (a guessable true/false answer)",
    }.get(p.kind)


def letter_code(p: ColumnProfile) -> bool:
    """A short code of letters (FR, FRA, EUR, JFK, NY): a fact of the entity a name keys."""
    return (p.kind == "identifier" and p.avg_len <= THRESHOLDS.max_code_len
            and p.top.isalpha())


def _row_number(rows: list[dict[str, str]], column: str) -> bool:
    """An export's index column (R's rownames, pandas' unnamed first column): integers
    counting the rows from 0 or 1 in order, under an index-like name (atomic_number counts
    too, but is a fact)."""
    if column.strip().lower() not in ROW_INDEX_NAMES:
        return False
    values = [str(row.get(column) or "").strip() for row in rows]
    if len(values) < THRESHOLDS.row_number_min_rows or not all(v.isdigit() for v in values):
        return False
    numbers = [int(v) for v in values]
    return numbers[0] in (0, 1) and all(b > a for a, b in itertools.pairwise(numbers))


def _decimals(value: str) -> int:
    return len(value.partition(".")[2]) if "e" not in value.lower() else 0


def _near_constant(p: ColumnProfile) -> bool:
    """One value, or one value in nearly every row: a guessable answer."""
    return (p.distinct < THRESHOLDS.min_distinct
            or p.top_count >= THRESHOLDS.near_constant_share * p.filled)


def _placeholder_ok(column: str) -> bool:
    try:
        return ("{" + column + "}").format_map({column: "x"}) == "x"
    except (ValueError, KeyError, IndexError, AttributeError):
        return False


def _clip(text: str, width: int | None = None) -> str:
    width = THRESHOLDS.quote_width if width is None else width
    return text if len(text) <= width else text[: width - 1] + "…"


def _repeats(rows: list[dict[str, str]], column: str, kept: list[str]) -> str | None:
    """A column already asked about that holds the same value in `repeat_share` of rows."""
    for other in kept:
        pairs = _values(rows, (column, other))
        if pairs and sum(a == b for a, b in pairs) >= THRESHOLDS.repeat_share * len(pairs):
            return other
    return None


def _mirrors(rows: list[dict[str, str]], column: str, kept: list[str]) -> str | None:
    """A column already asked about whose repeating values pair one-to-one with this one's
    (sport and sport_code over the events): asking both asks one fact twice. Columns unique
    per row pair one-to-one with any other unique column and are not compared."""
    for other in kept:
        values = _values(rows, (column, other))
        pairs = set(values)
        firsts, seconds = {a for a, _ in pairs}, {b for _, b in pairs}
        repeating = len(firsts) <= THRESHOLDS.categorical_uniqueness * len(values)
        if repeating and len(firsts) > THRESHOLDS.min_distinct and len(pairs) == len(
                firsts) == len(seconds):
            return other
    return None


def _no_key_reason(best: KeyFit | None) -> str:
    if best is None:
        return "no column identifies the rows it describes"
    return (f"not a function of any key ({' + '.join(best.key)} leaves "
            f"{best.ambiguous:.0%} of rows ambiguous)")


def _mark_key_parts(suggestion: TableSuggestion, keys: list[str]) -> None:
    """Columns skipped for want of a key but used inside one are reported as key parts."""
    for key in keys:
        columns = re.findall(r"\{([^{}]+)\}", key)
        for column in columns:
            if suggestion.skipped.get(column, "").startswith(("not a function", "no column")):
                suggestion.skipped[column] = f"part of the key {' + '.join(columns)}"


ROW_INDEX_NAMES = {"", "rownames", "row", "rownum", "row_number", "index", "idx", "unnamed: 0",
                   "...1", "x"}


def _usefulness(p: ColumnProfile, fit: KeyFit, rows: int) -> float:
    """More facts, harder to guess, fewer ambiguous rows and a simple key rank higher."""
    coverage = min(fit.facts / rows, 1.0)
    unguessable = 1 - 1 / p.distinct
    simple = 1.0 if len(fit.key) == 1 else THRESHOLDS.pair_key_weight
    exact = (THRESHOLDS.code_kind_weight if p.kind == "identifier" else
             1.0 if p.kind in _EXACT_KINDS else THRESHOLDS.text_kind_weight)
    return coverage * unguessable * (1 - fit.ambiguous) * simple * exact

