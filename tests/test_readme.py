"""The README is a manual that does not lie: its commands, config and links exist."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import yaml

from tuneline.cli.main import cli
from tuneline.config import PipelineConfig, load_config

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
MANUALS = [README, *sorted((ROOT / "docs").glob("*.md"))]


def fenced(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_the_first_lines_give_the_demo_and_the_test_command() -> None:
    head = README.read_text(encoding="utf-8").splitlines()[:8]
    assert any(line.startswith("make demo") for line in head)
    assert any(line.startswith("make test") for line in head)


def test_the_readme_is_a_manual_of_at_most_300_lines() -> None:
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 300


def test_every_yaml_block_in_the_readme_is_a_valid_config(tmp_path: Path) -> None:
    blocks = fenced(README.read_text(encoding="utf-8"), "yaml")
    assert blocks, "the quickstart shows a config"
    for number, block in enumerate(blocks):
        path = tmp_path / f"block{number}.yaml"
        path.write_text(block, encoding="utf-8")
        assert isinstance(load_config(path, check_paths=False), PipelineConfig)
        assert isinstance(yaml.safe_load(block), dict)


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    paths = set()
    for name, command in group.commands.items():
        paths.add(prefix + (name,))
        if isinstance(command, click.Group):
            paths |= command_paths(command, prefix + (name,))
    return paths


@pytest.mark.parametrize("manual", MANUALS, ids=lambda p: p.name)
def test_every_command_a_manual_shows_exists(manual: Path) -> None:
    known = command_paths(cli)
    for block in fenced(manual.read_text(encoding="utf-8"), "bash"):
        for line in block.splitlines():
            words = line.split("#")[0].split()
            if not words or Path(words[0]).name != "tuneline":
                continue
            verbs = tuple(w for w in words[1:3] if re.fullmatch(r"[a-z][a-z-]*", w))
            assert verbs[:1] in known, f"{manual.name}: {line.strip()}"
            if len(verbs) == 2 and isinstance(cli.commands[verbs[0]], click.Group):
                assert verbs in known, f"{manual.name}: {line.strip()}"


@pytest.mark.parametrize("manual", MANUALS, ids=lambda p: p.name)
def test_every_relative_link_points_to_a_file(manual: Path) -> None:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", manual.read_text(encoding="utf-8")):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (manual.parent / target).exists(), f"{manual.name}: {target}"
