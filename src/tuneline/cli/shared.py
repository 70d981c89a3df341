"""What every `tuneline` command shares: the consoles and how CONFIG [KEY=VALUE]... is read."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

from tuneline.config import PipelineConfig, load_config

# Output read by a program (a pipe, a log, CI) keeps each line whole: Rich would wrap it at
# 80 columns there, cutting a URL or a path in two.
console = Console(soft_wrap=not sys.stdout.isatty())
errors = Console(stderr=True, soft_wrap=not sys.stderr.isatty())

CONFIG_HELP = "YAML config, then dotted overrides such as train.epochs=2 (YAML-parsed values)."


def load_cli_config(args: tuple[str, ...], check_paths: bool = True) -> PipelineConfig:
    """First argument is the config file unless it looks like an override; `check_paths`
    False leaves files that do not exist yet (e.g. mirrored from S3 by `watch`) unchecked."""
    path, overrides = config_args(args)
    return load_config(path, overrides, check_paths=check_paths)


def config_args(args: tuple[str, ...]) -> tuple[Path | None, list[str]]:
    """(config file, KEY=VALUE overrides): the first argument unless it is an override, else
    ./tuneline.yaml when there is one."""
    if args and "=" not in args[0]:
        return Path(args[0]), list(args[1:])
    return (Path("tuneline.yaml") if Path("tuneline.yaml").is_file() else None), list(args)
