"""`tuneline config schema|show`: the config's JSON Schema and the resolved config."""

from __future__ import annotations

import json

import click

from tuneline.cli.shared import load_cli_config
from tuneline.config import PipelineConfig


@click.group()
def config() -> None:
    """Inspect configuration."""


@config.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the pipeline config."""
    click.echo(json.dumps(PipelineConfig.model_json_schema(), indent=2))


@config.command("show")
@click.argument("args", nargs=-1, metavar="[CONFIG] [KEY=VALUE]...")
def config_show(args: tuple[str, ...]) -> None:
    """Print the resolved config (defaults < YAML < overrides)."""
    import yaml

    click.echo(yaml.safe_dump(load_cli_config(args).model_dump(mode="json"), sort_keys=False))
