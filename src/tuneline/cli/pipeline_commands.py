"""`tuneline run` and one verb per stage (`ingest` ... `register`, `train`, `synthesize`)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tuneline.artifacts import Artifact
from tuneline.cli.output import (
    print_gate,
    print_metrics,
    print_registration,
    print_serve_hint,
    print_stage,
    print_suggestions,
    print_summary,
)
from tuneline.cli.shared import CONFIG_HELP, config_args, console, errors, load_cli_config
from tuneline.config import PipelineConfig
from tuneline.report.results import METRICS_FILE

if TYPE_CHECKING:
    from tuneline.synthesize.suggest import TableSuggestion

# Stages whose verb only runs the pipeline up to them (train and synthesize take more options).
PLAIN_STAGES = ("ingest", "index", "curate", "evaluate", "register")


@click.command(help=f"Run the whole pipeline. {CONFIG_HELP}")
@click.argument("args", nargs=-1, metavar="[CONFIG] [KEY=VALUE]...")
@click.option("--force", is_flag=True, help="Rerun every stage even when nothing changed.")
@click.option("--prefect", "with_prefect", is_flag=True,
              help="Run the stages as tasks of a Prefect flow (extra `prefect`), each cached "
              "under its fingerprint; without PREFECT_API_URL a temporary local Prefect "
              "server is started for the run.")
def run(args: tuple[str, ...], force: bool, with_prefect: bool) -> None:
    from tuneline.machine import this_machine
    from tuneline.pipeline import STAGES, run_pipeline

    if with_prefect:
        _run_with_prefect(args, force)
        return
    cfg = load_cli_config(args)
    errors.print(this_machine().summary())  # the timings below hold for this class of machine
    with _metrics_on_gate_failure(cfg):
        result = run_pipeline(cfg, force=frozenset(STAGES) if force else frozenset(),
                              on_stage=print_stage)
    print_summary(result.artifacts, result.report)
    print_gate(result.gate)
    print_registration(result.artifacts.get("register"))
    print_serve_hint(cfg, args)


def _run_with_prefect(args: tuple[str, ...], force: bool) -> None:
    from tuneline.orchestrate.prefect_flow import tuneline_pipeline
    from tuneline.pipeline import STAGES

    path, overrides = config_args(args)
    if path is None:
        raise click.UsageError("--prefect needs a config file (no ./tuneline.yaml here)")
    cfg = load_cli_config(args)  # config errors are reported before Prefect starts
    with _metrics_on_gate_failure(cfg):
        summary = tuneline_pipeline(str(path.resolve()), overrides,
                                    force=list(STAGES) if force else None)
    for stage, state in summary["stages"].items():
        console.print(f"{stage:<11} {state}")
    if summary["gate_passed"] is not None:
        console.print(f"gate: {'passed' if summary['gate_passed'] else 'failed'} "
                      f"({summary['run_dir']}/gate.json)")
    if summary["registered"]:
        console.print(f"registered: {summary['registered']}")
    print_serve_hint(cfg, args)


@contextlib.contextmanager
def _metrics_on_gate_failure(cfg: PipelineConfig) -> Iterator[None]:
    """A failed gate still shows the table it was judged on before the error."""
    from tuneline.errors import QualityGateFailed

    try:
        yield
    except QualityGateFailed:
        run_dir = cfg.run.runs_dir / cfg.run.name
        evaluated = run_dir / "evaluate"
        if (evaluated / METRICS_FILE).is_file():
            print_metrics(Artifact("evaluate", evaluated, {}), run_dir / "report.html")
        raise


def _stage_command(stage: str) -> click.Command:
    @click.command(name=stage, help=f"Run the pipeline up to the {stage} stage, rerunning "
                   f"{stage} when --force is given. {CONFIG_HELP}")
    @click.argument("args", nargs=-1, metavar="[CONFIG] [KEY=VALUE]...")
    @click.option("--force", is_flag=True, help=f"Rerun {stage} even when nothing changed.")
    def command(args: tuple[str, ...], force: bool) -> None:
        _run_until(stage, args, force)

    return command


def _run_until(stage: str, args: tuple[str, ...], force: bool, resume: bool = False) -> None:
    from tuneline.pipeline import run_pipeline

    cfg = load_cli_config(args)
    with _metrics_on_gate_failure(cfg):
        result = run_pipeline(cfg, until=stage,
                              force=frozenset({stage}) if force else frozenset(),
                              on_stage=print_stage, resume=resume)
    console.print(f"{stage} output: {result.artifacts[stage].path}")
    if stage in ("evaluate", "register"):
        print_metrics(result.artifacts["evaluate"], result.report)
        print_gate(result.gate)
        print_registration(result.artifacts.get("register"))


stage_commands = [_stage_command(name) for name in PLAIN_STAGES]


@click.command(help="Run the pipeline up to the train stage. A crashed training run resumes "
               f"from its latest checkpoint by itself. {CONFIG_HELP}")
@click.argument("args", nargs=-1, metavar="[CONFIG] [KEY=VALUE]...")
@click.option("--force", is_flag=True, help="Retrain from scratch, discarding checkpoints.")
@click.option("--resume", is_flag=True,
              help="Continue from the latest checkpoint; fail when there is none.")
@click.option("--num-processes", type=click.IntRange(min=1), default=None,
              help="Data-parallel processes through accelerate (overrides train.num_processes).")
def train(args: tuple[str, ...], force: bool, resume: bool, num_processes: int | None) -> None:
    if num_processes is not None:
        args = (*args, f"train.num_processes={num_processes}")
    _run_until("train", args, force, resume)


@click.command(help="Run the pipeline up to the synthesize stage, rerunning synthesize when "
               f"--force is given. {CONFIG_HELP} With --suggest, run ingest only and print "
               "templates suggested from each table's columns, as YAML for "
               "synthesize.templates.")
@click.argument("args", nargs=-1, metavar="[CONFIG] [KEY=VALUE]...")
@click.option("--force", is_flag=True,
              help="Rerun synthesize (with --suggest: ingest) even when nothing changed.")
@click.option("--suggest", is_flag=True,
              help="Print templates suggested from the ingested tables instead of synthesizing.")
@click.option("--source", "sources", multiple=True, metavar="NAME",
              help="With --suggest: only this ingest source (repeatable; default: every one).")
@click.option("--max", "max_templates", type=click.IntRange(min=1), default=None, metavar="N",
              help="With --suggest: at most N templates per table, the most useful first.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="With --suggest: write the YAML to FILE instead of stdout.")
def synthesize(args: tuple[str, ...], force: bool, suggest: bool, sources: tuple[str, ...],
               max_templates: int | None, output: Path | None) -> None:
    if suggest:
        _suggest(args, force, sources, max_templates, output)
        return
    if sources or max_templates is not None or output is not None:
        raise click.UsageError("--source, --max and --output only apply with --suggest")
    _run_until("synthesize", args, force)


def _suggest(args: tuple[str, ...], force: bool, sources: tuple[str, ...],
             max_templates: int | None, output: Path | None) -> None:
    """Ingest (or reuse the ingest artifact), then print or write suggested templates."""
    from tuneline.artifacts import write_text_atomic
    from tuneline.pipeline import run_pipeline
    from tuneline.synthesize.suggest import plan_templates, render_yaml

    cfg = load_cli_config(args)
    known = [s.name for s in cfg.ingest.sources]
    unknown = [name for name in sources if name not in known]
    if unknown:
        raise click.BadParameter(f"{', '.join(map(repr, unknown))} is not an ingest source of "
                                 f"this config (sources: {', '.join(known) or 'none'})",
                                 param_hint="--source")
    ingested = run_pipeline(cfg, until="ingest", force=frozenset({"ingest"} if force else ()),
                            on_stage=lambda a: print_stage(a, errors)).artifacts["ingest"]
    tables, rows = _ingested_tables(ingested)
    suggestions = [plan_templates(name, tables[name]["columns"], rows.get(name, []),
                                  max_templates) for name in (sources or list(tables))]
    text = render_yaml(suggestions, _suggest_header(args, suggestions))
    if output is None:
        click.echo(text, nl=False)
    else:
        write_text_atomic(output, text)
    print_suggestions(suggestions, output)


def _ingested_tables(ingested: Artifact) -> tuple[dict, dict[str, list[dict[str, str]]]]:
    from tuneline.artifacts import read_jsonl
    from tuneline.ingest.stage import RECORDS, TABLES

    tables = json.loads((ingested.path / TABLES).read_text(encoding="utf-8"))
    rows: dict[str, list[dict[str, str]]] = {}
    for record in read_jsonl(ingested.path / RECORDS):
        rows.setdefault(record["source"], []).append(record["data"])
    return tables, rows


def _suggest_header(args: tuple[str, ...], suggestions: list[TableSuggestion]) -> list[str]:
    config_arg = args[0] if args and "=" not in args[0] else "tuneline.yaml"
    return [
        f"Templates suggested by `tuneline synthesize {config_arg} --suggest`",
        f"from the columns of: {', '.join(s.table for s in suggestions)}.",
        "Review the wording, then merge this `synthesize:` section into the config (or set",
        "synthesize.auto_templates: true to use suggestions for tables no template names).",
        "Above each template: the column's type, the key, the facts it yields and the share of",
        "rows dropped as ambiguous (their key has several values).",
    ]
