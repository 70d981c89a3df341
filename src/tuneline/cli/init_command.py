"""`tuneline init DATA...`: a config for your own tables that runs end to end with no edits."""

from __future__ import annotations

from pathlib import Path

import click

from tuneline.cli.shared import console


@click.command()
@click.argument("data", nargs=-1, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("tuneline.yaml"),
              show_default=True, help="The config file to write.")
@click.option("--name", default=None, help="Run and model name (default: the first table's).")
@click.option("--sql", "sql_url", metavar="URL", default=None,
              help="A database (SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db) to "
              "read tables from, with --query or --table; a password in it is written to the "
              "config as ${TUNELINE_DB_PASSWORD}.")
@click.option("--query", "queries", multiple=True, metavar="SQL",
              help="With --sql: a query whose rows are one table (repeatable).")
@click.option("--table", "tables", multiple=True, metavar="NAME",
              help="With --sql: a table read whole (repeatable).")
@click.option("--force", is_flag=True, help="Replace --output when it exists.")
def init(data: tuple[Path, ...], output: Path, name: str | None, sql_url: str | None,
         queries: tuple[str, ...], tables: tuple[str, ...], force: bool) -> None:
    """Write a commented config for DATA: tables (CSV, TSV, JSON, JSONL or Parquet files, or
    a database's queries and tables with --sql) or one folder of documents. For tables: the
    entity key and templates suggested from the data, retrieval over its rows and questions
    it cannot answer; for documents: their question-answer pairs (FAQ-shaped, found without
    an LLM) and retrieval over their chunks; a training budget of about 10 minutes on 2 CPU
    cores either way."""
    from tuneline.artifacts import write_text_atomic
    from tuneline.config import load_config
    from tuneline.synthesize.scaffold_documents import is_documents

    if output.exists() and not force:
        raise click.ClickException(f"{output} exists; choose another --output or pass --force")
    if (queries or tables) and sql_url is None:
        raise click.UsageError("--query and --table read from the database given by --sql URL")
    if sql_url is not None and not (queries or tables):
        raise click.UsageError("--sql needs --query SQL or --table NAME (or both)")
    if not data and sql_url is None:
        raise click.UsageError("give data files, a folder of documents, or --sql URL")
    documents = [path for path in data if is_documents(path)]
    if documents and (len(data) > 1 or sql_url is not None):
        raise click.UsageError(f"{documents[0]} holds documents: init takes one folder of "
                               "documents on its own, or tables (files and --sql)")
    if documents:
        text = _documents_config(documents[0], name, output)
    else:
        text = _tables_config(data, name, sql_url, queries, tables, output)
    write_text_atomic(output, text)
    load_config(output)  # what was written must load: a bug here is ours, not the user's
    console.print(f"wrote {output}; next: tuneline run {output}")


def _tables_config(data: tuple[Path, ...], name: str | None, sql_url: str | None,
                   queries: tuple[str, ...], tables: tuple[str, ...], output: Path) -> str:
    from tuneline.synthesize.scaffold import PASSWORD_VARIABLE, SqlInput, plan_init, render_config

    sql = SqlInput(sql_url, queries, tables) if sql_url is not None else None
    plan = plan_init(list(data), name, sql)
    for suggestion, index in plan.chosen:
        template = suggestion.templates[index]
        console.print(f"{suggestion.table}: key {' + '.join(suggestion.key)}, asks "
                      f"{template.questions[0]!r}")
    if any(f"${{{PASSWORD_VARIABLE}}}" in (s.url or "") for s in plan.sources):
        console.print(f"the database password is not written to the config: set "
                      f"{PASSWORD_VARIABLE} before `tuneline run`")
    return render_config(plan, output)


def _documents_config(path: Path, name: str | None, output: Path) -> str:
    from tuneline.synthesize.scaffold_documents import plan_documents, render_documents_config

    plan = plan_documents(path, name)
    console.print(f"{path}: {plan.files} {plan.format} file(s), {plan.pairs} question-answer "
                  "pairs")
    return render_documents_config(plan, output)
