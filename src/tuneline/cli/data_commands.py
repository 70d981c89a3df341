"""`tuneline data validate`: check chat JSONL files against OpenAI's fine-tuning format rules."""

from __future__ import annotations

from pathlib import Path

import click

from tuneline.cli.shared import errors


@click.group()
def data() -> None:
    """Inspect and check datasets."""


@data.command("validate")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--max-tokens", type=int, default=None,
              help="Also flag examples longer than this many tokens (needs the train extra).")
@click.option("--model", default="embedded:smollm2-135m-instruct", show_default=True,
              help="Whose tokenizer and chat template count tokens for --max-tokens.")
def data_validate(files: tuple[Path, ...], max_tokens: int | None, model: str) -> None:
    """Check chat JSONL files against OpenAI's fine-tuning format rules.

    Prints `file:line: rule: detail` for every problem; exits 0 when every file is clean, 1 if not.
    """
    from tuneline.curate.validate import validate_file

    count_tokens = None
    if max_tokens is not None:
        from tuneline.models.generation import chat_token_counter
        from tuneline.models.loading import load_tokenizer

        count_tokens = chat_token_counter(load_tokenizer(model))
    clean = True
    for path in files:
        report = validate_file(path, count_tokens, max_tokens)
        for problem in report.problems:
            click.echo(problem.render(path))
        summary = ", ".join(f"{rule}={n}" for rule, n in sorted(report.counts.items()))
        verdict = "ok" if report.ok else f"{len(report.bad_lines)} bad line(s): {summary}"
        errors.print(f"{path}: {report.examples} example(s), {verdict}", highlight=False)
        clean = clean and report.ok
    raise click.exceptions.Exit(0 if clean else 1)
