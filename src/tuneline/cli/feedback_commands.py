"""`tuneline feedback list|export`: user ratings collected by the server, as a training set."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from tuneline.cli.shared import console, load_cli_config
from tuneline.serve.feedback import MIN_RATING, FeedbackStore, feedback_db_path


@click.group()
def feedback() -> None:
    """List user ratings and export the well-rated answers for fine-tuning."""


def _open_store(args: tuple[str, ...]) -> FeedbackStore:
    return FeedbackStore(feedback_db_path(load_cli_config(args)), must_exist=True)


@feedback.command("list")
@click.argument("args", nargs=-1, metavar="[CONFIG] [KEY=VALUE]...")
@click.option("--last", "last", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many of the latest ratings to show.")
def feedback_list(args: tuple[str, ...], last: int) -> None:
    """The latest ratings: when, which response and model, the rating and the comment."""
    store = _open_store(args)
    table = Table(title=f"Feedback ({store.count()} ratings in {store.path})")
    for column in ("created", "response id", "model", "rating", "comment"):
        table.add_column(column, no_wrap=column in ("created", "response id"))
    for row in store.rows(limit=last):
        table.add_row(row["created"], escape(row["response_id"]),
                      escape(row["model"] or "(unknown response)"), str(row["rating"]),
                      escape(row["comment"] or ""))
    console.print(table)


@feedback.command("export")
@click.argument("args", nargs=-1, metavar="[CONFIG] [KEY=VALUE]...")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="Chat-format JSONL file to write.")
@click.option("--min-rating", type=click.IntRange(1, 5), default=MIN_RATING, show_default=True,
              help="Lowest rating (1-5) exported.")
def feedback_export(args: tuple[str, ...], output: Path, min_rating: int) -> None:
    """Write rated answers (latest rating per response) as OpenAI chat-format JSONL; a
    corrected answer is written with the correction, whatever its rating."""
    counts = _open_store(args).export(output, min_rating=min_rating)
    skipped = (f"{counts['skipped_low_rating']} rated below {min_rating}, "
               f"{counts['skipped_no_text']} without text, "
               f"{counts['skipped_invalid']} invalid")
    if not counts["written"]:
        raise click.ClickException(f"nothing to export ({skipped}); {output} not written")
    console.print(f"wrote {counts['written']} examples to {output}, {counts['corrected']} "
                  f"with the user's correction as the answer (skipped: {skipped})")
