"""The `tuneline` command line: the root group, every command registered, the entry point."""

from __future__ import annotations

import sys

import click
from rich.markup import escape

from tuneline.cli.config_commands import config
from tuneline.cli.data_commands import data
from tuneline.cli.feedback_commands import feedback
from tuneline.cli.init_command import init
from tuneline.cli.model_commands import export, models
from tuneline.cli.monitor_command import monitor
from tuneline.cli.pipeline_commands import run, stage_commands, synthesize, train
from tuneline.cli.registry_commands import registry
from tuneline.cli.serve_commands import serve, serve_key
from tuneline.cli.shared import errors
from tuneline.cli.watch_command import watch
from tuneline.errors import TunelineError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tuneline")
def cli() -> None:
    """tuneline: domain data → grounded Q&A → LoRA fine-tune → evaluation → registry → server."""


for _command in (init, run, *stage_commands, train, synthesize, export, models, data, config,
                 registry, serve, serve_key, feedback, monitor, watch):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point: TunelineError → message on stderr and its exit code."""
    try:
        code = cli.main(standalone_mode=False)
    except TunelineError as exc:
        errors.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        errors.print("interrupted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
