"""`tuneline monitor CONFIG --live FILE`: drift of live questions against the training ones."""

from __future__ import annotations

from pathlib import Path

import click

from tuneline.cli.shared import CONFIG_HELP, console, load_cli_config


@click.command(help=f"Compare live questions with the ones the run trained on; exit 10 when "
               f"they drifted. {CONFIG_HELP}")
@click.argument("args", nargs=-1, metavar="[CONFIG] [KEY=VALUE]...")
@click.option("--live", type=click.Path(path_type=Path), required=True, metavar="FILE",
              help="Live traffic: JSONL (question / prompt / messages per line) or text lines.")
@click.option("--window", type=int, default=None, metavar="N",
              help="Compare only the last N live questions (default: all of them).")
def monitor(args: tuple[str, ...], live: Path, window: int | None) -> None:
    from tuneline.artifacts import write_json_atomic
    from tuneline.errors import DataError, DriftAlert
    from tuneline.monitor.drift import build_baseline, compare
    from tuneline.monitor.prompts import live_questions, training_questions
    from tuneline.rag.embed import Embedder

    cfg = load_cli_config(args)
    run_dir = cfg.run.runs_dir / cfg.run.name
    train = run_dir / "curate" / "train.jsonl"
    if not train.is_file():
        raise DataError(f"{train} does not exist: run `tuneline curate` (or the pipeline) first")
    questions = live_questions(live)[-window:] if window else live_questions(live)
    if len(questions) < 20:
        raise DataError(f"{live}: {len(questions)} questions; drift needs a window of at "
                        "least 20")
    embedder = Embedder(cfg.index.embedder)
    baseline = build_baseline(embedder.embed(training_questions(train)), seed=cfg.run.seed)
    report = compare(baseline, embedder.embed(questions), seed=cfg.run.seed)
    out = run_dir / "monitor" / "drift.json"
    write_json_atomic(out, report.to_dict())
    console.print(f"{report.live} live questions against {len(baseline.embeddings)} training "
                  f"ones: classifier AUC {report.classifier_auc:.2f} (shuffled up to "
                  f"{report.classifier_auc_null:.2f}), MMD p {report.mmd_p_value:.3f}, PSI "
                  f"{report.psi:.2f}, out of coverage {report.out_of_coverage:.0%}; → {out}")
    if report.alert:
        raise DriftAlert("drift: " + "; ".join(report.alerts))
    console.print("no drift")
