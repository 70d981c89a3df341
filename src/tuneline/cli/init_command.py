"""`tuneline init DATA...`: a config for your own tables that runs end to end with no edits."""

from __future__ import annotations

from pathlib import Path

import click

from tuneline.cli.shared import console


@click.command()
@click.argument("data", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("tuneline.yaml"),
              show_default=True, help="The config file to write.")
@click.option("--name", default=None, help="Run and model name (default: the first table's).")
@click.option("--force", is_flag=True, help="Replace --output when it exists.")
def init(data: tuple[Path, ...], output: Path, name: str | None, force: bool) -> None:
    """Write a commented config for DATA (CSV, TSV, JSON, JSONL or Parquet files): the entity
    key and templates suggested from the data, retrieval over its rows, questions it cannot
    answer, and a training budget of about 10 minutes on 2 CPU cores."""
    from tuneline.artifacts import write_text_atomic
    from tuneline.config import load_config
    from tuneline.synthesize.scaffold import plan_init, render_config

    if output.exists() and not force:
        raise click.ClickException(f"{output} exists; choose another --output or pass --force")
    plan = plan_init(list(data), name)
    text = render_config(plan, output)
    write_text_atomic(output, text)
    load_config(output)  # what was written must load; a bug here is ours, not the user's
    for suggestion, index in plan.chosen:
        template = suggestion.templates[index]
        console.print(f"{suggestion.table}: key {' + '.join(suggestion.key)}, asks "
                      f"{template.questions[0]!r}")
    console.print(f"wrote {output}; next: tuneline run {output}")
