"""What the pipeline commands print: stage lines, the stage table, metrics, gate, next steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tuneline.artifacts import Artifact
from tuneline.cli.shared import console, errors
from tuneline.config import PipelineConfig
from tuneline.report.results import SetScores, read_repeats, read_results

if TYPE_CHECKING:
    from tuneline.evaluate.gate import GateResult
    from tuneline.synthesize.suggest import TableSuggestion


def print_stage(artifact: Artifact, out: Console = console) -> None:
    """One line per stage as it finishes: ran or skipped, seconds, counts."""
    counts = ", ".join(f"{k}={v}" for k, v in artifact.manifest["counts"].items()
                       if ":" not in k)
    if artifact.skipped:
        status = f"[dim]skipped (unchanged; took {artifact.seconds:.1f}s when it ran)[/dim]"
    else:
        status = f"[green]done[/green] {artifact.seconds:7.1f}s"
    out.print(f"[bold]{artifact.stage:<10}[/bold] {status}  {counts}")


def print_summary(artifacts: dict[str, Artifact], report: Path | None = None) -> None:
    """The table of stages, then the metrics when evaluate ran."""
    table = Table(title="Stages")
    for column in ("stage", "status", "seconds when it ran"):
        table.add_column(column)
    for artifact in artifacts.values():
        table.add_row(artifact.stage, "skipped (unchanged)" if artifact.skipped else "ran",
                      f"{artifact.seconds:.1f}")
    console.print(table)
    if "evaluate" in artifacts:
        print_metrics(artifacts["evaluate"], report)


def print_metrics(evaluated: Artifact, report: Path | None = None) -> None:
    """Accuracy per variant and set, the judge's win rate, retrieval; where the report is."""
    results = read_results(evaluated.path)
    if not results.variants:
        console.print(f"no variant could be evaluated; see {evaluated.path / 'report.md'}")
        return
    table = Table(title="Strict accuracy [95% interval]: the first value the answer claims is "
                  "the reference and it names no other (unanswerable: it declines and claims "
                  "nothing); below it, exact match / containment (the reference anywhere)")
    table.add_column("variant")
    for name in results.sets:
        table.add_column(name, justify="right")
    for variant, per_set in results.variants.items():
        table.add_row(variant, *(_accuracy_cell(per_set.get(s)) for s in results.sets))
    console.print(table)
    _print_repeats(evaluated.path.parent)
    judge = results.judge
    if judge is not None and judge.win_rate is not None and judge.ci95 is not None:
        lo, hi = judge.ci95
        console.print(f"LLM judge ({judge.judge_model}): {judge.challenger} vs "
                      f"{judge.champion} win rate {judge.win_rate:.1%} [{lo:.1%}, {hi:.1%}] "
                      f"({judge.wins} wins, {judge.losses} losses, {judge.ties} ties, "
                      f"{judge.invalid} invalid)")
    for name, m in results.retrieval.items():
        found = (f"gold record in the top {m.k} for {m.recall_at_k:.1%} of {m.n} "
                 f"questions, MRR {m.mrr:.3f}"
                 if m.recall_at_k is not None and m.mrr is not None else f"{m.n} questions")
        left = f", {m.no_passage:.1%} left without a passage" if m.no_passage else ""
        console.print(f"retrieval on {name}: {found}{left}")
    console.print(f"report: {report or evaluated.path / 'report.md'}")


def _print_repeats(run_dir: Path) -> None:
    repeats = read_repeats(run_dir)
    if repeats is None:
        return
    table = Table(title=f"Over {len(repeats.seeds)} seeds: median strict accuracy [min-max] "
                  "(the gate checks the medians)")
    table.add_column("variant")
    sets = list(dict.fromkeys(s for per_set in repeats.metrics.values() for s in per_set))
    for name in sets:
        table.add_column(name, justify="right")
    for variant, per_set in repeats.metrics.items():
        cells = []
        for name in sets:
            rates = per_set.get(name, {})
            if "accuracy" not in rates and "rouge_l" in rates:
                spread = rates["rouge_l"]
                cells.append(f"ROUGE-L {spread.median:.2f} [{spread.min:.2f}-{spread.max:.2f}]")
                continue
            spread = rates.get("accuracy")
            cells.append("-" if spread is None else
                         f"{spread.median:.1%} [{spread.min:.0%}-{spread.max:.0%}]")
        table.add_row(variant, *cells)
    console.print(table)


def _accuracy_cell(scores: SetScores | None) -> str:
    if scores is not None and scores.accuracy is None and scores.rouge_l is not None:
        ci = scores.ci95.get("rouge_l")
        interval = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
        similarity = "-" if scores.similarity is None else f"{scores.similarity:.2f}"
        return f"ROUGE-L {scores.rouge_l:.2f}{interval} n={scores.n}\nsimilarity {similarity}"
    if scores is None or scores.accuracy is None:
        return "-"
    ci = scores.ci95.get("accuracy")
    interval = f" [{ci[0]:.0%}, {ci[1]:.0%}]" if ci else ""
    lenient = " / ".join(f"{value:.0%}" if value is not None else "-"
                         for value in (scores.exact_match, scores.containment))
    return f"{scores.accuracy:.1%}{interval} n={scores.n}\nEM/contains {lenient}"


def print_gate(gate: GateResult | None) -> None:
    """A passed gate (a failed one is an error, printed by main)."""
    if gate is not None:
        checks = f"{len(gate.checks)} check(s)" if gate.checks else "no thresholds configured"
        console.print(f"quality gate: [green]passed[/green] ({checks})")
        for check in gate.checks:
            if check.unsettled:
                console.print(f"  [yellow]not settled[/yellow]: {check.message}")


def print_registration(registered: Artifact | None) -> None:
    """The version registered, and how to make it the champion."""
    if registered is None:
        return
    record = json.loads((registered.path / "registration.json").read_text())
    reference = f"{record['name']}/{record['version']}"
    console.print(f"registered {reference} (@candidate) in {record.get('registry', '')}; "
                  f"make it the champion: tuneline registry promote {reference}")


def print_serve_hint(cfg: PipelineConfig, args: tuple[str, ...]) -> None:
    """How to serve and query the tuned model."""
    config_arg = args[0] if args and "=" not in args[0] else ""
    url = f"http://{cfg.serve.host}:{cfg.serve.port}/v1"
    console.print(f"""
Serve the tuned model:  tuneline serve {config_arg}
Query it:  curl -s {url}/chat/completions -H 'Content-Type: application/json' \\
  -d '{{"model": "{cfg.register.name}", "messages": [{{"role": "user", "content": "..."}}]}}'
or with the openai client: OpenAI(base_url="{url}", api_key="none")""")


def print_suggestions(suggestions: list[TableSuggestion], output: Path | None) -> None:
    """The templates `synthesize --suggest` found per table, on stderr."""
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
