"""Suggest Q&A templates for an unseen table from its column names, types and values."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import yaml

from tuneline.config import TemplateConfig

SAMPLE_ROWS = 20_000
STRICT_AMBIGUITY = 0.05  # a key leaving at most this share of rows ambiguous is taken first
LOOSE_AMBIGUITY = 0.20  # "a function for most rows": beyond this no key answers the column
MAX_BLANK = 0.5

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

_ID_WORDS = {"id", "uuid", "guid", "sku", "code", "slug", "hash", "key", "ref", "isbn", "ean",
             "upc"}
_NAME_WORDS = {"name", "title", "label", "event", "country", "city", "product", "model",
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
_PARTICIPLES = {"birth": "born", "born": "born", "death": "died", "launch": "launched",
                "release": "released", "publication": "published", "founding": "founded",
                "founded": "founded", "creation": "created", "created": "created",
                "opening": "opened", "open": "opened", "start": "started", "end": "ended",
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
_GROUP_WORDS = {"category", "genre", "group", "sport", "discipline", "department", "division",
                "league", "section", "family", "segment", "tier", "series", "brand", "team",
                "club", "party", "band", "conference"}
_PERSON_WORDS = {"author", "director", "winner", "champion", "ceo", "founder", "manager",
                 "owner", "artist", "captain", "coach", "president", "leader", "composer",
                 "inventor", "designer", "architect", "creator", "mayor"}

# Phrasings per kind of attribute. curate holds the last one out to probe recall, so it is a
# real rewording. {e}: the entity, {the_e}: "the <noun> <entity>", {v}: the fact.
_PHRASES: dict[str, tuple[tuple[str, ...], str]] = {
    "born": (("When was {e} born?", "What is the date of birth of {e}?",
              "On what date was {the_e} born?", "What is the birth date of {e}?"),
             "{e} was born on {v}."),
    "event_date": (("When was {e} {p}?", "On what date was {the_e} {p}?",
                    "What is the {label} of {e}?", "What date was {e} {p}?"),
                   "{e} was {p} on {v}."),
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
}
_KIND_WEIGHT = {"date": 1.0, "integer": 1.0, "float": 1.0}  # text and categories: 0.9


@dataclass
class ColumnProfile:
    """What a column holds, inferred from its name and a sample of its values."""

    name: str
    words: list[str]
    unit: str | None
    kind: str  # integer float date boolean url email identifier free_text categorical text
    rows: int
    filled: int
    distinct: int
    top: str
    top_count: int
    avg_len: float

    @property
    def uniqueness(self) -> float:
        return self.distinct / self.filled if self.filled else 0.0

    @property
    def blank_share(self) -> float:
        return 1 - self.filled / self.rows if self.rows else 1.0


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
        rows: The rows as column → value; an even sample of at most SAMPLE_ROWS distinct
            rows is profiled.
        max_templates: Keep at most this many templates, the most useful first.

    Returns:
        The entity key, the templates ranked by usefulness, a note per template (type, key,
        facts, ambiguity) and a reason for every column that got no template.
    """
    rows = _sample(_distinct(rows, columns))
    profiles = {c: _profile(c, [str(r.get(c) or "") for r in rows]) for c in columns}
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
    """Every row, or SAMPLE_ROWS evenly spaced ones (deterministic)."""
    if len(rows) <= SAMPLE_ROWS:
        return rows
    step = len(rows) / SAMPLE_ROWS
    return [rows[int(i * step)] for i in range(SAMPLE_ROWS)]


# -- profiling ----------------------------------------------------------------------------------


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


def _profile(name: str, values: list[str]) -> ColumnProfile:
    filled = [v.strip() for v in values if v and v.strip()]
    counts = Counter(filled)
    top, top_count = counts.most_common(1)[0] if counts else ("", 0)
    words, unit = humanize(name)
    avg_len = sum(map(len, filled)) / len(filled) if filled else 0.0
    kind = _infer_kind(words, list(counts), len(filled), avg_len)
    return ColumnProfile(name, words, unit, kind, len(values), len(filled), len(counts), top,
                         top_count, avg_len)


def _share(pattern: re.Pattern[str], values: list[str]) -> float:
    return sum(bool(pattern.match(v)) for v in values) / len(values)


def _infer_kind(words: list[str], distinct: list[str], filled: int, avg_len: float) -> str:
    """The column's type, judged on its distinct values (95% must fit) and its name."""
    if not distinct:
        return "empty"
    id_named = bool(set(words) & _ID_WORDS)
    lowered = {v.lower() for v in distinct}
    if _share(_URL, distinct) >= 0.9:
        return "url"
    if _share(_EMAIL, distinct) >= 0.9:
        return "email"
    if lowered <= _BOOLEANS or (lowered <= {"0", "1"} and words[0] in {"is", "has"}):
        return "boolean"
    if _share(_DATE, distinct) >= 0.95:
        return "date"
    if _share(_NUM, distinct) >= 0.95:
        integer = _share(_INT, distinct) >= 0.95
        zero_padded = integer and any(len(v) > 1 and v.startswith("0") for v in distinct)
        if id_named or zero_padded:
            return "identifier"
        return "integer" if integer else "float"
    slug = _share(_SLUG, distinct) >= 0.95 and any("-" in v or "_" in v for v in distinct)
    if id_named or slug or _share(_CODE, distinct) >= 0.95:
        return "identifier"
    if avg_len > 80 or sum(v.count(" ") for v in distinct) / len(distinct) > 12:
        return "free_text"
    return "categorical" if len(distinct) <= 0.5 * filled else "text"


# -- keys ---------------------------------------------------------------------------------------


def _key_score(p: ColumnProfile) -> float | None:
    """How well a column names the entity a row is about; None when it cannot."""
    if p.blank_share > 0.2 or p.distinct < 2 or p.avg_len > 60:
        return None
    if p.kind == "date":  # a time series: "the close of msft on 2003-09-19"
        return 2 * p.uniqueness - 2.5 if p.uniqueness >= 0.95 else None
    if p.kind not in ("text", "categorical", "identifier"):
        return None
    score = 2 * p.uniqueness + (2.0 if set(p.words) & _NAME_WORDS else 0.0)
    return score - (1.5 if p.kind == "identifier" else 0.0)


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
    """Single columns at least half unique, most name-like first, then up to three pairs that
    are nearly unique and clearly more unique than either column alone."""
    scored = sorted(((s, n) for n, p in profiles.items()
                     if (s := _key_score(p)) is not None), reverse=True)
    singles = [(n,) for _, n in scored if profiles[n].uniqueness >= 0.5]
    # Codes and slugs may name an entity alone, but beside a name they read badly and can
    # give the answer away (sport + its slug).
    readable = [n for _, n in scored if profiles[n].kind not in ("identifier", "date")]
    pairs = []
    for a, b in combinations(readable[:5], 2):
        pair_u = _uniqueness(rows, (a, b))
        if pair_u >= 0.9 and pair_u >= max(profiles[a].uniqueness, profiles[b].uniqueness) + 0.05:
            pairs.append((pair_u, (a, b)))
    return singles + [pair for _, pair in sorted(pairs, key=lambda x: -x[0])[:3]]


def _entity_key(
    candidates: list[tuple[str, ...]], profiles: dict[str, ColumnProfile],
    rows: list[dict[str, str]],
) -> tuple[str, ...]:
    """The key that best names what a row is about. A name-like column qualified by a grouping
    one (event + discipline) beats a unique column that is not name-like (winner)."""
    def score(key: tuple[str, ...]) -> float:
        first = profiles[key[0]]
        if len(key) == 1:
            return (_key_score(first) or 0.0) if first.uniqueness >= 0.8 else -1.0
        second = set(profiles[key[1]].words)
        qualifier = 1.0 if second & _GROUP_WORDS else 0.5 if second & _NAME_WORDS else 0.0
        named = 2.0 if set(first.words) & _NAME_WORDS else 0.0
        return 2 * _uniqueness(rows, key) + named + qualifier - 1.5  # pairs read clumsier

    return max(candidates, key=score, default=())


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
    within LOOSE_AMBIGUITY), and the least ambiguous one tried (for the skip reason)."""
    tried = [key_fit(rows, key, column) for key in candidates if column not in key]
    tried = [fit for fit in tried if fit.facts >= 2]
    best = min(tried, key=lambda fit: fit.ambiguous, default=None)
    strict = next((fit for fit in tried if fit.ambiguous <= STRICT_AMBIGUITY), None)
    if strict is not None:
        return strict, best
    return (best if best is not None and best.ambiguous <= LOOSE_AMBIGUITY else None), best


# -- attributes ---------------------------------------------------------------------------------


def _attribute_templates(
    suggestion: TableSuggestion, profiles: dict[str, ColumnProfile],
    rows: list[dict[str, str]], candidates: list[tuple[str, ...]],
) -> list[tuple[float, TemplateConfig, str]]:
    """A scored template for every column worth asking about; the others go to `skipped`."""
    ranked: list[tuple[float, TemplateConfig, str]] = []
    kept: list[str] = []
    for name, p in profiles.items():
        reason = "the entity key" if name in suggestion.key else _static_skip(p)
        other = None if reason else _repeats(rows, name, kept)
        if other:
            reason = f"repeats '{other}' (same value in ≥95% of rows)"
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
    if p.blank_share > MAX_BLANK:
        return f"mostly empty ({p.blank_share:.0%} blank)"
    if p.distinct < 2 or p.top_count >= 0.98 * p.filled:
        return f"near-constant ('{_clip(p.top)}' in {p.top_count / p.filled:.0%} of rows)"
    if p.kind == "float" and p.avg_len > 12:
        return f"high-precision numbers (e.g. '{_clip(p.top, 12)}'); round them first"
    return {
        "url": "URLs", "email": "email addresses (personal data)",
        "identifier": f"identifier or code (e.g. '{_clip(p.top)}')",
        "free_text": f"long free text (~{p.avg_len:.0f} characters)",
        "boolean": "yes/no flag (a guessable true/false answer)",
    }.get(p.kind)


def _placeholder_ok(column: str) -> bool:
    try:
        return ("{" + column + "}").format_map({column: "x"}) == "x"
    except (ValueError, KeyError, IndexError, AttributeError):
        return False


def _clip(text: str, width: int = 30) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _repeats(rows: list[dict[str, str]], column: str, kept: list[str]) -> str | None:
    """A column already asked about that holds the same value in at least 95% of rows."""
    for other in kept:
        pairs = _values(rows, (column, other))
        if pairs and sum(a == b for a, b in pairs) >= 0.95 * len(pairs):
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


def _usefulness(p: ColumnProfile, fit: KeyFit, rows: int) -> float:
    """More facts, harder to guess, fewer ambiguous rows and a simple key rank higher."""
    coverage = min(fit.facts / rows, 1.0)
    unguessable = 1 - 1 / p.distinct
    simple = 1.0 if len(fit.key) == 1 else 0.8
    return coverage * unguessable * (1 - fit.ambiguous) * simple * _KIND_WEIGHT.get(p.kind, 0.9)


# -- wording ------------------------------------------------------------------------------------


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
    name = next(n for n in [base, *(f"{base}_{i}" for i in range(2, 999))] if n not in taken)
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
    entity = "{" + key[0] + "}" + "".join(f" ({{{c}}})" for c in key[1:])
    return entity, _entity_noun(table, profiles[key[0]])


def _entity_noun(table: str, key: ColumnProfile) -> str:
    """'country' for country_code, 'event' for event, 'product' for the name in products."""
    words = [w for w in key.words if w not in _NOT_NOUN | _ID_WORDS]
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
    if len(words) > 1 and words[-1] == "name":
        words = words[:-1]  # manager_name → manager
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


def _date_family(words: list[str], parts: dict[str, str]) -> tuple[str, dict[str, str]]:
    rest, participle = _event_word(words, {"date", "of", "on", "at", "day", "time"})
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


def _text_family(words: list[str], noun: str) -> str:
    if words[-1] in _PERSON_WORDS:
        return "person"
    if len(words) == 1 and words[0] in _PLACE_WORDS:
        # A country lies *in* a continent; a person or a product comes *from* a country.
        return "located" if noun.split(" ")[-1] in _PLACE_WORDS else "place"
    return "group" if words[-1] in _GROUP_WORDS else "generic"


def _is_plural(word: str) -> bool:
    return len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is"))


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
