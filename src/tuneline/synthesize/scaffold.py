"""`tuneline init`: a whole commented config for tables nobody configured, every choice derived
from the data (key, templates, passages, what retrieval matches), sized to a time budget."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from tuneline.errors import DataError
from tuneline.index.defaults import match_fields_from, passages_from
from tuneline.ingest.config import JoinConfig, SourceConfig
from tuneline.ingest.joins import apply_join, build_lookup
from tuneline.ingest.records import Record
from tuneline.ingest.sources import read_source
from tuneline.synthesize.config import READING_FACTS_PER_TEMPLATE
from tuneline.synthesize.join_suggest import SuggestedJoin, suggest_joins
from tuneline.synthesize.suggest import TableSuggestion, plan_templates

FORMATS = {".csv", ".tsv", ".json", ".jsonl", ".parquet"}
# Two templates of 30 facts (with their retrieval practice, unanswerable and replay examples)
# train in about 8 minutes on 2 cores of the slower machine class; the whole run in about 13.
MAX_TEMPLATES = 2
FACTS_PER_TEMPLATE = 30
INIT_BUDGET_MINUTES = 10


@dataclass(frozen=True)
class InitSource:
    """One table `init` read: a file, or a database query or table (its URL as the config
    will hold it, a password replaced by an environment variable)."""

    name: str
    path: Path | None = None
    url: str | None = None
    query: str | None = None
    table: str | None = None
    joins: tuple[SuggestedJoin, ...] = ()

    @property
    def label(self) -> str:
        return str(self.path) if self.path is not None else f"{self.url} ({self.name})"

    def entry(self, config_dir: Path) -> dict[str, str]:
        """The source as `ingest.sources` lists it."""
        joins = {"join": [j.entry() for j in self.joins]} if self.joins else {}
        if self.path is not None:
            return {"name": self.name, "path": relative_to_config(self.path, config_dir),
                    **joins}
        assert self.url is not None
        what = {"query": self.query} if self.query is not None else {"table": self.table or ""}
        return {"name": self.name, "url": self.url, **what, **joins}


@dataclass(frozen=True)
class SqlInput:
    """`init --sql URL` with its `--query` and `--table` options."""

    url: str
    queries: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()


@dataclass(frozen=True)
class InitPlan:
    """What `tuneline init` found: the run's name, its sources and a suggestion per table."""

    name: str
    sources: list[InitSource]  # in the order given
    suggestions: list[TableSuggestion]

    @property
    def chosen(self) -> list[tuple[TableSuggestion, int]]:
        """(table, template index) of the templates the config trains, the budget's worth."""
        picked = [(s, i) for s in self.suggestions for i in range(len(s.templates))]
        # One per table first, so a second table is not crowded out by the first one's tail.
        picked.sort(key=lambda pair: pair[1])
        return picked[:MAX_TEMPLATES]


def plan_init(paths: list[Path], name: str | None = None, sql: SqlInput | None = None
              ) -> InitPlan:
    """Read each file (and each query or table of `sql`) and suggest its templates; a
    DataError says what init needs when nothing can give a single template, and nothing is
    written then."""
    if not paths and not (sql and (sql.queries or sql.tables)):
        raise DataError("init needs at least one data file (CSV, TSV, JSON, JSONL or Parquet), "
                        "or --sql URL with --query or --table")
    tables: dict[str, tuple[InitSource, list[Record]]] = {}
    for source, records in [*_file_tables(paths), *_sql_tables(sql)]:
        named = dataclasses.replace(source, name=_unique(source.name, set(tables)))
        tables[named.name] = (named, records)
    joins = suggest_joins({n: [r.data for r in recs] for n, (_, recs) in tables.items()})
    # A looked-up table never brings columns itself (no chains), so its suggestion, made here
    # for its key, is final.
    suggested = {n: _suggest(n, recs) for n, (_, recs) in tables.items()
                 if n in {j.right for j in joins}}
    for join in joins:
        left, records = tables[join.left]
        looked_up = tables[join.right][1]
        # The rows bring what names the looked-up entity (the state's name, not its statehood
        # year, which would be asked about the airport).
        join = dataclasses.replace(join, columns=tuple(
            c for c in suggested[join.right].key if c != join.right_column))
        config = JoinConfig.model_validate(join.entry())
        joined = list(apply_join(records, config, build_lookup(config, looked_up), Counter()))
        tables[join.left] = (dataclasses.replace(left, joins=(*left.joins, join)), joined)
    sources = [source for source, _ in tables.values()]
    suggestions = [suggested.get(source.name) or _suggest(source.name, records)
                   for source, records in tables.values()]
    plan = InitPlan(name or sources[0].name, sources, suggestions)
    if not plan.chosen:
        reasons = "; ".join(f"{s.table}: " + ", ".join(f"{c} ({why})" for c, why in
                                                      list(s.skipped.items())[:6])
                            for s in suggestions)
        raise DataError("init found nothing to ask about: no column names the rows (a key: "
                        "short, mostly unique values such as names or codes) with another "
                        f"column to ask for. Columns and why they were passed over: {reasons}")
    return plan


def render_config(plan: InitPlan, config_path: Path) -> str:
    """The config's YAML, commented, with source paths relative to its folder."""
    config_dir = config_path.parent
    chosen = plan.chosen
    templates = [s.templates[i] for s, i in chosen]
    tables = list(dict.fromkeys(s.table for s, _ in chosen))
    lines = [
        f"# Written by `tuneline init` for {', '.join(s.label for s in plan.sources)}.",
        f"# Run:       tuneline run {config_path}",
        "# Every choice below was derived from the data; each comment says from what.",
        *run_and_model_lines(plan.name), "ingest:", "  sources:",
    ]
    for source in plan.sources:
        lines += [f"    # {j.left}.{j.left_column} holds {j.right}.{j.right_column} values "
                  f"({j.coverage:.0%} of them): each row brings the columns of {j.right}"
                  for j in source.joins]
        lines.append(f"    - {flow_yaml(source.entry(config_dir))}")
    lines += ["", "synthesize:",
              f"  # {len(templates)} templates of {FACTS_PER_TEMPLATE} facts fit a run of about "
              "10 minutes on 2 CPU cores;",
              "  # more facts or templates cost time in proportion (max_facts_per_template).",
              f"  max_facts_per_template: {FACTS_PER_TEMPLATE}", "  templates:"]
    for suggestion, index in chosen:
        template = suggestion.templates[index]
        why = suggestion.notes.get(template.name, "")
        lines.append(f"    # {suggestion.table}, key {' + '.join(suggestion.key)}"
                     + (f": {why}" if why else ""))
        dumped = yaml.safe_dump([template.model_dump(exclude_defaults=True)], sort_keys=False,
                                allow_unicode=True, width=100)
        lines += ["    " + line for line in dumped.splitlines()]
    left = [t.name for s in plan.suggestions for t in s.templates if t not in templates]
    if left:
        lines.append("  # Also suggested, left out to keep the run short (`tuneline synthesize "
                     "CONFIG --suggest`")
        lines.append("  # prints them): " + _wrap(", ".join(left), "  # "))
    skipped = [f"{s.table}.{column} ({why})" for s in plan.suggestions
               for column, why in s.skipped.items()]
    if skipped:
        lines.append("  # Not asked about: " + _wrap("; ".join(skipped), "  # "))
    lines += [
        "  # Questions the data cannot answer (invented entities, an attribute no column holds,",
        "  # a qualifier outside the data) are made from these templates; the model learns to",
        "  # say so with this sentence.",
        "  unanswerable:", "    per_template: 24",
        "    answer: "
        + quote_yaml(f"I do not have information about that in my {plan.name} data."),
        "  # Reading practice: rows no evaluated fact uses, trained with their passage only.",
        "  reading_facts_per_template: "
        + flow_yaml({t.name: READING_FACTS_PER_TEMPLATE for t in templates}),
        "",
        "# Retrieval: one passage per row, the entity first, then what the templates ask for,",
        "# so the model reads what it is asked about before the value it copies.",
        "index:", "  enabled: true", f"  sources: {flow_yaml(tables)}", "  templates:",
    ]
    passages = passages_from(templates)
    lines += [f"    {table}: {quote_yaml(passages[table])}" for table in tables]
    lines += [
        "  retrieval: {mode: text, top_k: 5, match_question: true}",
        "  # Matching keeps only the passages holding every value of these columns that the",
        "  # question names: an invented entity gets no passage, and the model declines.",
        "  match_fields: " + flow_yaml(match_fields_from(templates)), "",
        "curate:", "  heldout_fraction: 0.2", "  val_fraction: 0.05",
        "  dev_fraction: 0.0   # dev sets come from synthesize.dev_facts_per_template instead",
        "  recall_phrasings: 1", "  unanswerable_train_fraction: 0.63",
        "  rag: {fraction: 0.1, gold_removed: 0.1, unanswerable_fraction: 0.5, "
        "reading_gold_removed: 0.2,", "        answer: passage}", "",
        "train:", "  epochs: 2", "  learning_rate: 2.0e-3", "  batch_size: 8",
        "  # max_seq_len: unset, every example trains whole (train's manifest records the",
        "  # longest); set it to cap memory: train stops if over 2% would be dropped.",
        "  lora: {r: 16, alpha: 32}", "  replay: {fraction: 0.1}   # against forgetting", "",
        "evaluate:", "  max_new_tokens: 40", "",
        "# A model below these is not registered (exit 7). What is served (below: the tuned",
        "# model with retrieval) is measured against the base model asked the same way",
        "# (base+rag): it may not answer trained facts (recall) or new ones (heldout) worse than",
        "# base did, and must decline a quarter of the questions about entities the data lacks",
        "# (base declines none). How far it is above base is in the report; raise min_gain to",
        "# demand it. max_regression (at most 20 points lost on everyday questions) holds the",
        "# closed-book model, when serve.retrieval: on_request serves it too.",
        "gate:", "  min_gain: {recall: {accuracy: 0.0}, heldout: {accuracy: 0.0}}",
        "  min_abstention: {unanswerable: 0.25}", "  max_regression: {general: 0.20}", "",
        "register:", f"  name: {plan.name}", "",
        "# Every request is answered from the table: retrieval keeps the rows the question",
        "# names and the model reads them; a question no row answers gets the decline above.",
        "# The closed-book model (no retrieval) is in the report, not served: on a table it",
        "# recalls some facts and forgets everyday ones (docs/benchmarks.md, the panel).",
        "serve:", "  retrieval: always", "",
    ]
    return "\n".join(lines)


def _suggest(table: str, records: list[Record]) -> TableSuggestion:
    return plan_templates(table, list(records[0].data), [r.data for r in records], None)


def run_and_model_lines(name: str) -> list[str]:
    """The `run:` and `model:` sections every config `init` writes."""
    return [
        "run:", f"  name: {name}", "  seed: 0",
        "  # After curate the run measures this machine and trains fewer steps, or fewer",
        "  # facts, when the whole run would not fit (<run>/sizing.json, train's manifest);",
        "  # remove for no limit.",
        f"  budget_minutes: {INIT_BUDGET_MINUTES}", "",
        "model:", "  base: embedded:smollm2-135m-instruct   # or a local HF model folder", "",
    ]


def _file_tables(paths: list[Path]) -> list[tuple[InitSource, list[Record]]]:
    tables = []
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        if path.suffix.lower() not in FORMATS:
            raise DataError(f"{path}: unknown format '{path.suffix}'; init reads "
                            f"{', '.join(sorted(FORMATS))} files (a folder of documents on "
                            "its own)")
        source = InitSource(slug(path.stem), path=path)
        tables.append((source, _rows(SourceConfig(name=source.name, path=path), str(path))))
    return tables


def _sql_tables(sql: SqlInput | None) -> list[tuple[InitSource, list[Record]]]:
    """Each --query (sources query, query_2, ...) and --table of the database, read now."""
    if sql is None:
        return []
    url = _absolute_sqlite(sql.url)
    written = password_as_variable(url)
    tables = []
    for number, query in enumerate(sql.queries, 1):
        source = InitSource("query" if number == 1 else f"query_{number}", url=written,
                            query=query)
        read = SourceConfig(name=source.name, url=url, query=query)
        tables.append((source, _rows(read, f"--query {query!r}")))
    for table in sql.tables:
        source = InitSource(slug(table), url=written, table=table)
        tables.append((source, _rows(SourceConfig(name=source.name, url=url, table=table),
                                     f"--table {table}")))
    return tables


def _rows(source: SourceConfig, label: str) -> list[Record]:
    rows = list(read_source(source))
    if not rows:
        raise DataError(f"{label}: the table is empty; init needs rows to learn from")
    if len(rows[0].data) < 2:
        raise DataError(f"{label}: one column only; init needs a column that names each row "
                        "and at least one more to ask about")
    return rows


PASSWORD_VARIABLE = "TUNELINE_DB_PASSWORD"


def password_as_variable(url: str) -> str:
    """The URL with its password (if any, and not already a variable) replaced by
    ${TUNELINE_DB_PASSWORD}: a config file is no place for a secret."""
    match = re.match(r"^([A-Za-z][\w+.-]*://[^/:@]*):([^@/]*)@", url)
    if match is None or match.group(2).startswith("${"):
        return url
    return f"{match.group(1)}:${{{PASSWORD_VARIABLE}}}@{url[match.end():]}"


def _absolute_sqlite(url: str) -> str:
    """A SQLite URL whose file path is relative resolves against the directory `tuneline run`
    starts in; the config holds it absolute, so it runs from anywhere."""
    prefix, _, rest = url.partition(":///")
    if not prefix.startswith("sqlite") or not rest or rest.startswith("/") or rest == ":memory:":
        return url
    return f"{prefix}:///{Path(rest).resolve()}"


def slug(text: str) -> str:
    slug = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()
    return slug if slug and not slug[0].isdigit() else f"t_{slug}"


def _unique(name: str, taken: set[str]) -> str:
    return next(n for n in [name, *(f"{name}_{i}" for i in range(2, 1000))] if n not in taken)


def relative_to_config(path: Path, config_dir: Path) -> str:
    """The path as the config reads it: relative to the config's folder."""
    return os.path.relpath(path.resolve(), config_dir.resolve())


def flow_yaml(value: object) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False,
                          allow_unicode=True).strip()


def quote_yaml(text: str) -> str:
    """A double-quoted YAML scalar (JSON's string syntax is YAML's)."""
    return json.dumps(text, ensure_ascii=False)


def _wrap(text: str, prefix: str, width: int = 96) -> str:
    """`text` as comment lines: the first continues a line, the others start with `prefix`."""
    return textwrap.fill(text, width, subsequent_indent=prefix, break_long_words=False,
                         break_on_hyphens=False)
