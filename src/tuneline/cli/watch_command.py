"""`tuneline watch CONFIG`: rerun the pipeline whenever the data changes."""

from __future__ import annotations

import click

from tuneline.cli.shared import CONFIG_HELP, console, load_cli_config


@click.command(help=f"Poll the data sources (file and folder contents, SQL query rows, the "
               f"S3 prefixes in watch.s3) every watch.interval_s seconds and run the pipeline "
               f"when they changed: the gate decides, a passing model is registered as "
               f"@candidate. Ctrl-C stops. {CONFIG_HELP}")
@click.argument("args", nargs=-1, metavar="[CONFIG] [KEY=VALUE]...")
@click.option("--once", is_flag=True, help="Poll once and exit (for cron or an orchestrator).")
def watch(args: tuple[str, ...], once: bool) -> None:
    from tuneline.watch.polling import Poll
    from tuneline.watch.polling import watch as watch_loop

    cfg = load_cli_config(args, check_paths=False)  # S3 objects land in the first poll
    folder = cfg.run.runs_dir / cfg.run.name / "watch"
    console.print(f"watching {len(cfg.ingest.sources)} sources and {len(cfg.watch.s3)} S3 "
                  f"prefixes every {cfg.watch.interval_s:g}s; log: {folder / 'log.jsonl'}")

    def report(poll: Poll) -> None:
        console.print(poll.describe(), highlight=False)

    try:
        watch_loop(cfg, report, polls=1 if once else None)
    except KeyboardInterrupt:
        console.print("stopped")
