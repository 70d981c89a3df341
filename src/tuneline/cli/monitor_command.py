"""`tuneline monitor CONFIG --live FILE | --traffic`: drift of live questions against the
training ones and, for recorded traffic, of the declined and no-passage shares."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import click

from tuneline.cli.shared import CONFIG_HELP, console, load_cli_config


@click.command(help=f"Compare live questions with the ones the run trained on; exit 10 when "
               f"they drifted. {CONFIG_HELP}")
@click.argument("args", nargs=-1, metavar="[CONFIG] [KEY=VALUE]...")
@click.option("--live", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="Live traffic: JSONL (question / prompt / messages per line) or text lines.")
@click.option("--traffic", is_flag=True,
              help="Live traffic as the server recorded it (serve.traffic): the questions' "
              "embeddings, and the shares of declined answers and of questions retrieval left "
              "without a passage, tested against the version's evaluation.")
@click.option("--window", type=int, default=None, metavar="N",
              help="Compare only the last N live questions (default: all of them).")
@click.option("--version", "reference", default=None, metavar="NAME@ALIAS|NAME/N",
              help="Compare with the baseline registered with this version (default: the "
              "run's own evaluate/drift-baseline, else its training questions).")
@click.option("--webhook", default=None, metavar="URL",
              help="On drift, POST the alerts as JSON to this URL (e.g. a Slack or Teams "
              "incoming webhook, or your pager's); default: $TUNELINE_DRIFT_WEBHOOK.")
def monitor(args: tuple[str, ...], live: Path | None, traffic: bool, window: int | None,
            reference: str | None, webhook: str | None) -> None:
    from tuneline.artifacts import write_json_atomic
    from tuneline.errors import ConfigError, DriftAlert
    from tuneline.monitor.check import check_recorded_traffic, check_window
    from tuneline.monitor.report import DRIFT_HTML, write_drift_html
    from tuneline.monitor.webhook import post_alert
    from tuneline.rag.embed import Embedder

    if (live is None) == (not traffic):
        raise ConfigError(["monitor: give --live FILE or --traffic (one of them)"])
    cfg = load_cli_config(args)
    embedder = Embedder(cfg.index.embedder)
    if live is not None:
        questions = _live_questions(live, window)
        check = check_window(cfg, embedder.embed(questions), {}, questions, reference, embedder)
    else:
        check = check_recorded_traffic(cfg, window, reference, embedder)
    report, rates, alerts, origin = check.report, check.rates, check.alerts, check.origin
    out = cfg.run.runs_dir / cfg.run.name / "monitor" / "drift.json"
    drift = {**report.to_dict(), "alerts": alerts, "alert": bool(alerts),
             "rates": [asdict(r) for r in rates], "baseline": str(origin),
             "baseline_rates": check.baseline.rates}
    write_json_atomic(out, drift)
    page = write_drift_html(out.parent / DRIFT_HTML, report, rates, str(origin),
                            check.questions, alerts)
    console.print(f"baseline: {origin}")
    console.print(f"{report.live} live questions against {len(check.baseline.embeddings)} "
                  f"training ones: classifier AUC {report.classifier_auc:.2f} (shuffled up to "
                  f"{report.classifier_auc_null:.2f}), MMD p {report.mmd_p_value:.3f}, PSI "
                  f"{report.psi:.2f}, out of coverage {report.out_of_coverage:.0%}; → {out}")
    for r in rates:
        console.print(f"{r.name}: live {r.live:.0%} (n={r.n}) vs {r.expected:.0%} at "
                      f"evaluation, p = {r.p_value:.2g}")
    console.print(f"report: {page}")
    if alerts:
        url = webhook or os.environ.get("TUNELINE_DRIFT_WEBHOOK")
        if url:
            sent = post_alert(url, {**drift, "run": cfg.run.name, "report": str(page)})
            console.print(f"webhook: {sent}")
        raise DriftAlert("drift: " + "; ".join(alerts))
    console.print("no drift")


def _live_questions(live: Path, window: int | None) -> list[str]:
    from tuneline.errors import DataError
    from tuneline.monitor.prompts import live_questions
    from tuneline.monitor.traffic import MIN_WINDOW

    questions = live_questions(live)[-window:] if window else live_questions(live)
    if len(questions) < MIN_WINDOW:
        raise DataError(f"{live}: {len(questions)} questions; drift needs a window of at "
                        f"least {MIN_WINDOW}")
    return questions
