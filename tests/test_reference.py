"""docs/config.md and docs/cli.md are generated, complete, deterministic and fresh."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest

from tuneline.cli.main import cli
from tuneline.config import PipelineConfig
from tuneline.reference import HEADER, cli_reference, config_reference, main

DOCS = Path(__file__).resolve().parents[1] / "docs"
REGENERATE = "stale: regenerate it with `python -m tuneline.reference` (or `make docs`)"


@pytest.fixture(scope="module")
def config_md() -> str:
    return config_reference()


@pytest.fixture(scope="module")
def cli_md() -> str:
    return cli_reference()


@pytest.mark.parametrize("page", ["config.md", "cli.md"])
def test_the_committed_docs_are_fresh(page: str) -> None:
    # A fresh process, as `make docs` runs it: click caches help options on the command
    # objects once a test has invoked a subcommand on its own, which would skew the text here.
    proc = subprocess.run([sys.executable, "-m", "tuneline.reference", "--check"],
                          capture_output=True, text=True, timeout=120)
    assert page not in proc.stdout + proc.stderr, f"docs/{page} is {REGENERATE}"
    assert proc.returncode == 0, proc.stdout + proc.stderr


def schema_keys(schema: dict[str, Any], node: dict[str, Any], path: str) -> set[str]:
    """Dotted paths of the leaf keys, read from pydantic's JSON schema (not from the generator)."""
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    if "anyOf" in node:
        return {key for option in node["anyOf"] if option.get("type") != "null"
                for key in schema_keys(schema, option, path)}
    if "properties" in node:
        return {key for name, child in node["properties"].items()
                for key in schema_keys(schema, child, f"{path}.{name}" if path else name)}
    items = node.get("items", {})
    if node.get("type") == "array" and ("$ref" in items or "properties" in items):
        return schema_keys(schema, items, f"{path}[]")
    return {path}


def test_every_config_key_has_a_row(config_md: str) -> None:
    schema = PipelineConfig.model_json_schema()
    keys = schema_keys(schema, schema, "")
    assert len(keys) > 150
    missing = sorted(key for key in keys if f"| `{key}` |" not in config_md)
    assert missing == []


def test_known_keys_render_type_default_and_constraints(config_md: str) -> None:
    rows = {line.split(" | ")[0][3:-1]: line for line in config_md.splitlines()
            if line.startswith("| `")}
    assert rows["train.lora.r"] == "| `train.lora.r` | `int` | `16` | ≥ 1 | LoRA rank. |"
    assert "`'vector' \\| 'text' \\| 'hybrid'` | `\"hybrid\"`" in rows["index.retrieval.mode"]
    assert "≥ 1, ≤ 50" in rows["index.retrieval.top_k"]
    assert "`Path \\| None` | `null`" in rows["ingest.sources[].path"]
    assert "*required*" in rows["ingest.sources[].name"]
    assert "min length 2" in rows["synthesize.templates[].questions"]
    assert '`"runs"`' in rows["run.runs_dir"]
    assert '`["openai"]`' in rows["curate.exports"]
    assert "[`LoraConfig`](#trainlora)" in rows["train.lora"]
    assert "[`LlmEndpointConfig \\| None`](#evaluatejudgeendpoint)" in rows[
        "evaluate.judge.endpoint"]
    assert "evaluate.judge.endpoint.model" in rows


def test_every_section_has_a_heading_in_declared_order(config_md: str) -> None:
    lines = config_md.splitlines()
    headings = [line[3:] for line in lines if line.startswith("## ")]
    assert headings == list(PipelineConfig.model_fields)
    assert list(PipelineConfig.model_fields)[:3] == ["run", "model", "ingest"]
    for nested in ("train.lora", "ingest.sources[]", "ingest.sources[].join[]",
                   "synthesize.templates[]", "train.bedrock.provisioned_throughput"):
        assert f"### `{nested}`" in lines


def test_description_text_cannot_break_the_markdown(config_md: str) -> None:
    # '<name>' would be read as an HTML tag, a bare '|' would split the table cell.
    assert "\\<runs_dir>/\\<name>/\\<stage>/" in config_md
    assert "'VERDICT: A\\|B\\|TIE'" in config_md
    for line in config_md.splitlines():
        if line.startswith("| `"):
            assert line.replace("\\|", "").count("|") == 6, line


def command_paths(command: click.Command, path: tuple[str, ...] = ()) -> list[str]:
    """Every visible command path, walked through click's own `commands` mappings."""
    found = [" ".join(("tuneline", *path))]
    for name, sub in getattr(command, "commands", {}).items():
        if not sub.hidden:
            found += command_paths(sub, (*path, name))
    return found


def test_every_command_has_its_help(cli_md: str) -> None:
    paths = command_paths(cli)
    assert {"tuneline", "tuneline run", "tuneline registry promote"} <= set(paths)
    headings = [line[3:] for line in cli_md.splitlines() if line.startswith("## ")]
    assert headings == ["tuneline", *sorted(paths[1:])]
    assert "Usage: tuneline registry promote [OPTIONS]" in cli_md
    assert "--num-processes" in cli_md.split("## tuneline train")[1]


def test_references_do_not_depend_on_the_machine(
    config_md: str, cli_md: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for text in (config_md, cli_md):
        assert str(Path.cwd()) not in text and str(Path.home()) not in text
        assert " at 0x" not in text  # no object reprs
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.setenv("TUNELINE_CACHE", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://elsewhere:5000")
    assert config_reference() == config_md
    assert cli_reference() == cli_md


def test_check_fails_on_missing_or_stale_files_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    assert main(["--docs", str(docs), "--check"]) == 1
    assert not docs.exists()
    assert main(["--docs", str(docs)]) == 0
    assert (docs / "config.md").read_text(encoding="utf-8").startswith(HEADER)
    assert main(["--docs", str(docs), "--check"]) == 0
    (docs / "cli.md").write_text(HEADER + "old\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["--docs", str(docs), "--check"]) == 1
    assert "cli.md is stale: run python -m tuneline.reference" in capsys.readouterr().err
    assert (docs / "cli.md").read_text(encoding="utf-8") == HEADER + "old\n"


def test_module_check_exit_code(tmp_path: Path) -> None:
    (tmp_path / "config.md").write_text("stale\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "tuneline.reference", "--check", "--docs",
                           str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1
    assert "config.md is stale" in proc.stderr and "cli.md is missing" in proc.stderr
