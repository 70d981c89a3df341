"""Self-contained HTML run report: loss, metrics, judge verdicts, dataset card and samples."""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token

from tuneline.artifacts import read_jsonl, write_text_atomic
from tuneline.report import plots as html_plots

REPORT = "report.html"
SAMPLES_PER_SET = 5
JUDGED_SHOWN = 4
CATEGORY_KEY = "template"  # what evaluate groups `by_category` on (summarize_items' default)
_JUDGE, _RETRIEVAL = "judge", "retrieval"  # top-level metrics.json keys that are not variants
_TABLE_METRICS = (("accuracy", "accuracy"), ("hallucination_rate", "hallucination"),
                  ("abstention_rate", "abstention"), ("token_f1", "token F1"),
                  ("exact_match", "exact match"))
_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
_CSS = """
body{margin:0;background:#f4f6f9;color:#1d2430;font:15px/1.5 system-ui,-apple-system,
 "Segoe UI",Roboto,Helvetica,Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px}
header,section{background:#fff;border:1px solid #dde3ec;border-radius:10px;padding:18px 24px;
 margin-bottom:20px;box-shadow:0 1px 2px rgba(0,0,0,.04)}
h1{margin:0 0 8px;font-size:26px}h2{margin:0 0 12px;font-size:20px;color:#23395d}
h3{font-size:16px;margin:18px 0 8px}
table{border-collapse:collapse;width:100%;margin:8px 0 12px;font-size:14px}
th,td{border-bottom:1px solid #e6eaf0;padding:6px 10px;text-align:left;vertical-align:top}
th{background:#eef2f8;font-weight:600}td.num{text-align:right;white-space:nowrap}
.ci{color:#6b7686;font-size:12px}.note{color:#6b7686;font-style:italic}
.badge{display:inline-block;padding:3px 12px;border-radius:999px;font-weight:700;color:#fff}
.pass{background:#2e9d57}.fail{background:#d64541}.none{background:#8c96a6}
ul.checks{list-style:none;padding:0}ul.checks li{margin:4px 0}
.ok{color:#1f7a43}.bad{color:#c0392b}.ok::before{content:"\\2713  "}
.bad::before{content:"\\2717  "}
td.ok,td.bad{max-width:320px}.big{font-size:20px}
.verdict{font-weight:600;white-space:nowrap}.v-win{color:#1f7a43}.v-loss{color:#c0392b}
.v-tie{color:#b7791f}.v-invalid{color:#6b7686}
img{max-width:100%;height:auto}pre{background:#f6f8fa;padding:12px;overflow:auto}
.card{border-top:1px solid #e6eaf0;margin-top:8px}.card h1{font-size:19px}.card h2{font-size:17px}
"""


@dataclass
class RunFiles:
    """What the report reads from one run folder; None or empty where a file is absent."""

    name: str
    config: dict[str, Any]
    config_text: str | None
    train_log: list[dict[str, Any]] | None
    metrics: dict[str, Any]  # {variant: {set: summary}}, the judge entry taken out
    judge: dict[str, Any] | None
    retrieval: dict[str, Any] | None  # {set: {k, n, recall_at_k, mrr, ci95}}
    predictions: list[dict[str, Any]]
    judgments: list[dict[str, Any]]
    gate: dict[str, Any] | None
    card: str | None
    card_dir: Path


def render_html_report(run_dir: Path) -> str:
    """The run's report as one HTML page with every plot and image embedded.

    Args:
        run_dir: a run folder (`runs/<run>/`); missing inputs give a "not available" note.

    Returns:
        The HTML text; it references no external URL.
    """
    run = load_run(Path(run_dir))
    figures = html_plots.figure_module()
    sections = [_header(run), _loss_section(run, figures), _metrics_section(run),
                _category_section(run, figures), _judge_section(run), _card_section(run),
                _samples_section(run), _config_section(run)]
    return _page(f"tuneline report: {run.name}", sections)


def write_html_report(run_dir: Path) -> Path:
    """Render the report and write it atomically to `run_dir/report.html`; returns that path."""
    path = Path(run_dir) / REPORT
    write_text_atomic(path, render_html_report(run_dir))
    return path


# --- Reading the run folder ---------------------------------------------------------------


def load_run(run_dir: Path) -> RunFiles:
    """Read every input of the report from `run_dir`."""
    config_text = _read_text(run_dir / "config.yaml")
    config = _parse_yaml(config_text)
    metrics = _read_json(run_dir / "evaluate" / "metrics.json")
    metrics = dict(metrics) if isinstance(metrics, dict) else {}
    judge = metrics.pop(_JUDGE, None)
    retrieval = metrics.pop(_RETRIEVAL, None)
    return RunFiles(
        name=str((config.get("run") or {}).get("name") or run_dir.name),
        config=config, config_text=config_text,
        train_log=_read_rows(run_dir / "train" / "train_log.jsonl"),
        metrics={k: v for k, v in metrics.items() if isinstance(v, dict)},
        judge=judge if isinstance(judge, dict) else None,
        retrieval=retrieval if isinstance(retrieval, dict) else None,
        predictions=_read_rows(run_dir / "evaluate" / "predictions.jsonl") or [],
        judgments=_read_rows(run_dir / "evaluate" / "judgments.jsonl") or [],
        gate=_read_json(run_dir / "gate.json"),
        card=_read_text(run_dir / "curate" / "dataset_card.md"),
        card_dir=run_dir / "curate",
    )


def _read_text(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _read_rows(path: Path) -> list[dict[str, Any]] | None:
    return read_jsonl(path) if path.is_file() else None


def _parse_yaml(text: str | None) -> dict[str, Any]:
    try:
        parsed = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


# --- Page and small formatting helpers ------------------------------------------------------


def _page(title: str, sections: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
            "<body><main>\n" + "\n".join(s for s in sections if s) + "\n</main></body></html>\n")


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>'


def _note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def _table(header: list[str], rows: list[list[str]]) -> str:
    """An HTML table; header cells are escaped here, row cells are HTML already (wrapped in
    <td> unless they start with one)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row)
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _number(value: Any) -> float | None:
    if isinstance(value, dict):  # a rate reported with its interval
        value = value.get("value")
    return float(value) if isinstance(value, int | float) else None


def _pct(value: Any) -> str:
    number = _number(value)
    return "–" if number is None else f"{number:.1%}"


def _interval(ci: Any) -> str:
    ok = isinstance(ci, list | tuple) and len(ci) == 2
    return f' <span class="ci">[{_pct(ci[0])}, {_pct(ci[1])}]</span>' if ok else ""


# --- Sections ---------------------------------------------------------------------------------


def _header(run: RunFiles) -> str:
    base = (run.config.get("model") or {}).get("base")
    model = f"<p>Base model: <code>{escape(str(base))}</code></p>" if base else ""
    return f"<header><h1>Run report: {escape(run.name)}</h1>{model}{_gate(run.gate)}</header>"


def _gate(gate: dict[str, Any] | None) -> str:
    if not isinstance(gate, dict):
        return '<p>Quality gate: <span class="badge none">not run</span></p>' + _note(
            "gate.json not available: the gate has not been checked for this run.")
    passed = bool(gate.get("passed"))
    badge = (f'<span class="badge {"pass" if passed else "fail"}">'
             f'{"PASSED" if passed else "FAILED"}</span>')
    checks = "".join(
        f'<li class="{"ok" if c.get("passed") else "bad"}">{escape(str(c.get("message", "")))}'
        "</li>" for c in gate.get("checks", []))
    body = f'<ul class="checks">{checks}</ul>' if checks else _note("No thresholds configured.")
    return f"<p>Quality gate: {badge}</p>{body}"


def _loss_section(run: RunFiles, figures: ModuleType | None) -> str:
    log = run.train_log
    if not log:
        return _section("loss", "Training loss", _note(
            "Training log not available (no train/train_log.jsonl, e.g. the model was trained "
            "by a hosted provider)."))
    train = _series(log, "loss")
    val = _series(log, "val_loss")
    parts = []
    if train:
        parts.append(f"{len(train)} logged steps, training loss {train[0][1]:.3f} → "
                     f"{train[-1][1]:.3f}")
    if val:
        parts.append(f"last validation loss {val[-1][1]:.3f} (step {val[-1][0]})")
    plot = html_plots.plot(figures, "training and validation loss", (9, 3.4),
                           html_plots.draw_loss, train, val)
    return _section("loss", "Training loss", f"<p>{escape('; '.join(parts))}</p>{plot}")


def _series(log: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    return [(int(row.get("step", i)), float(row[key])) for i, row in enumerate(log)
            if isinstance(row.get(key), int | float)]


def _metrics_section(run: RunFiles) -> str:
    if not run.metrics:
        return _section("metrics", "Accuracy by variant and set",
                        _note("evaluate/metrics.json not available."))
    rows = []
    for set_name in _set_names(run.metrics):
        for variant, per_set in run.metrics.items():
            summary = per_set.get(set_name)
            if isinstance(summary, dict):
                rows.append(_metric_row(variant, set_name, summary))
    header = ["set", "variant", *(label for _, label in _TABLE_METRICS), "n"]
    return _section("metrics", "Accuracy by variant and set",
                    _table(header, rows) + _note("Brackets: bootstrap 95% interval.")
                    + _retrieval_table(run.retrieval))


def _retrieval_table(retrieval: dict[str, Any] | None) -> str:
    """Recall@k and MRR of the gold record, for the +rag variants."""
    if not retrieval:
        return ""
    rows = [[escape(name), f'<td class="num">{escape(str(m.get("k")))}</td>',
             f'<td class="num">{_pct(m.get("recall_at_k"))}'
             f'{_interval((m.get("ci95") or {}).get("recall_at_k"))}</td>',
             f'<td class="num">{_mrr(m.get("mrr"))}</td>',
             f'<td class="num">{_pct(m.get("no_passage"))}</td>',
             f'<td class="num">{escape(str(m.get("n")))}</td>']
            for name, m in retrieval.items() if isinstance(m, dict)]
    return ("<h3>Retrieval (gold record among the passages)</h3>"
            + _table(["set", "k", "recall@k", "MRR", "no passage", "n"], rows)
            + _note("No passage: questions for which retrieval found nothing the question "
                    "names (index.retrieval.match_question); the prompt then says so."))


def _mrr(value: Any) -> str:
    number = _number(value)
    return "–" if number is None else f"{number:.3f}"


def _set_names(metrics: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for per_set in metrics.values():
        names += [name for name in per_set if name not in names]
    return names


def _metric_row(variant: str, set_name: str, summary: dict[str, Any]) -> list[str]:
    ci = summary.get("ci95") or {}
    cells = [f'<td class="num">{_pct(summary.get(key))}{_interval(ci.get(key))}</td>'
             for key, _ in _TABLE_METRICS]
    n = summary.get("n")
    return [escape(set_name), escape(variant), *cells,
            f'<td class="num">{escape(str(n)) if n is not None else "–"}</td>']


def _category_section(run: RunFiles, figures: ModuleType | None) -> str:
    blocks = []
    for set_name in _set_names(run.metrics):
        table = _category_accuracy(run.metrics, set_name)
        if not table:
            continue
        plot = html_plots.plot(figures, f"accuracy per category, {set_name}",
                     (9, 1.2 + 0.5 * len(table) * max(1, len(run.metrics)) ** 0.5),
                     html_plots.draw_categories, table, set_name)
        numbers = _category_table(table)
        if plot:  # the numbers stay readable (and searchable) under the plot
            numbers = f"<details><summary>numbers</summary>{numbers}</details>"
        blocks.append(f"<h3>{escape(set_name)}</h3>{plot}{numbers}")
    body = "".join(blocks) or _note("No per-category metrics (metrics.json has no by_category).")
    return _section("categories", "Accuracy per category", body)


def _category_accuracy(metrics: dict[str, Any], set_name: str) -> dict[str, dict[str, float]]:
    """{category: {variant: accuracy}} for one set."""
    table: dict[str, dict[str, float]] = {}
    for variant, per_set in metrics.items():
        by_category = (per_set.get(set_name) or {}).get("by_category") or {}
        for category, summary in by_category.items():
            value = _number(summary.get("accuracy"))
            if value is not None:
                table.setdefault(category, {})[variant] = value
    return table


def _category_table(table: dict[str, dict[str, float]]) -> str:
    variants = list(dict.fromkeys(v for per in table.values() for v in per))
    rows = [[escape(category), *(f'<td class="num">{_pct(per.get(v))}</td>' for v in variants)]
            for category, per in table.items()]
    return _table(["category", *variants], rows)


def _judge_section(run: RunFiles) -> str:
    judge = run.judge
    if not judge:
        return _section("judge", "LLM judge", _note(
            "Judge results not available (metrics.json has no 'judge' entry; the LLM judge "
            "was not enabled for this run)."))
    challenger, champion = _sides(judge)
    headline = (f'<p class="big">{escape(challenger)} vs {escape(champion)}: win rate '
                f"<b>{_pct(judge.get('win_rate'))}</b>{_interval(judge.get('ci95'))}</p>")
    counts = _table(["wins", "losses", "ties", "invalid", "n"], [[
        f'<td class="num">{escape(str(judge.get(k, "–")))}</td>'
        for k in ("wins", "losses", "ties", "invalid", "n")]])
    model = (f"<p>Judge model: <code>{escape(str(judge.get('judge_model', '?')))}</code> at "
             f"<code>{escape(str(judge.get('base_url', '?')))}</code></p>")
    return _section("judge", "LLM judge", headline + counts + model + _judged_examples(run))


def _sides(judge: dict[str, Any] | None) -> tuple[str, str]:
    judge = judge or {}
    return str(judge.get("challenger", "tuned")), str(judge.get("champion", "base"))


def _judged_examples(run: RunFiles) -> str:
    picked = _pick_judgments(run.judgments, JUDGED_SHOWN)
    if not picked:
        return _note("No individual judgments (evaluate/judgments.jsonl not available).")
    challenger, champion = _sides(run.judge)
    rows = [[escape(str(j.get("question", ""))), escape(str(j.get("challenger_answer", ""))),
             escape(str(j.get("champion_answer", ""))), _verdict(j.get("verdict"), run.judge),
             _reasons(j.get("reasons"))] for j in picked]
    return ("<h3>Example verdicts</h3>"
            + _table(["question", challenger, champion, "verdict", "reasons"], rows))


def _pick_judgments(judgments: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The first judgment of each verdict kind, then the next ones, `n` in all."""
    firsts: dict[Any, dict[str, Any]] = {}
    for j in judgments:
        firsts.setdefault(j.get("verdict"), j)
    picked = list(firsts.values())[:n]
    rest = [j for j in judgments if all(j is not p for p in picked)]
    return picked + rest[: n - len(picked)]


def _verdict(verdict: Any, judge: dict[str, Any] | None) -> str:
    challenger, champion = _sides(judge)
    label = {"win": f"{challenger} wins", "loss": f"{champion} wins", "tie": "tie",
             "invalid": "invalid"}.get(str(verdict), str(verdict))
    kind = str(verdict) if verdict in ("win", "loss", "tie", "invalid") else "invalid"
    return f'<td><span class="verdict v-{kind}">{escape(label)}</span></td>'


def _reasons(reasons: Any) -> str:
    """The judge's reason per answer order (the challenger shown as answer A, then as B)."""
    if not isinstance(reasons, list) or not reasons:
        return "–"
    labels = ["challenger as A: ", "challenger as B: "] if len(reasons) == 2 else [""] * len(
        reasons)
    return "<ul>" + "".join(f"<li>{escape(label + str(r))}</li>"
                            for label, r in zip(labels, reasons, strict=True)) + "</ul>"


def _card_section(run: RunFiles) -> str:
    body = (_note("Dataset card not available (no curate/dataset_card.md).") if run.card is None
            else f'<div class="card">{render_markdown(run.card, run.card_dir)}</div>')
    return _section("card", "Dataset card", body)


def render_markdown(text: str, image_root: Path) -> str:
    """Markdown to HTML with raw HTML escaped and local images inlined as data URIs.

    An image outside `image_root`, missing or remote is replaced by its alt text, so the page
    never loads anything.
    """
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(text)
    for token in tokens:
        for child in token.children or []:
            if child.type == "image":
                _inline_image(child, image_root)
    return md.renderer.render(tokens, md.options, {})


def _inline_image(token: Token, root: Path) -> None:
    src = str(token.attrGet("src") or "")
    path = (root / src).resolve()
    mime = _IMAGE_TYPES.get(path.suffix.lower())
    inside = path.is_relative_to(root.resolve())
    if mime and inside and "://" not in src and path.is_file():
        token.attrSet("src", html_plots.data_uri(path.read_bytes(), mime))
        return
    alt = "".join(c.content for c in token.children or []) or src
    token.type, token.tag, token.children = "text", "", None
    token.content = f"[image not embedded: {alt}]"


def _samples_section(run: RunFiles) -> str:
    if not run.predictions:
        return _section("samples", "Sample answers",
                        _note("Predictions not available (no evaluate/predictions.jsonl)."))
    verdicts = _verdicts_by_question(run.judgments)
    sets = list(dict.fromkeys(str(p.get("set", "")) for p in run.predictions))
    blocks = [_sample_table(run, name, verdicts) for name in sets]
    return _section("samples", "Sample answers", "".join(blocks))


def _verdicts_by_question(judgments: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    """Verdict by (set, question), and by ("", question) for a lookup without the set."""
    found: dict[tuple[str, str], Any] = {}
    for j in judgments:
        question = str(j.get("question", ""))
        set_name = str((j.get("meta") or {}).get("set", ""))
        found.setdefault((set_name, question), j.get("verdict"))
        found.setdefault(("", question), j.get("verdict"))
    return found


def _sample_table(run: RunFiles, set_name: str, verdicts: dict[tuple[str, str], Any]) -> str:
    rows = [p for p in run.predictions if str(p.get("set", "")) == set_name][:SAMPLES_PER_SET]
    variants = [v for v in _variants(run) if any(f"{v}_answer" in p for p in rows)]
    body = []
    for p in rows:
        question = str(p.get("question", ""))
        verdict = verdicts.get((set_name, question), verdicts.get(("", question)))
        judged = _verdict(verdict, run.judge) if verdict is not None else "–"
        body.append([escape(question), _reference(p), *(_answer(p, v) for v in variants),
                     judged])
    return f"<h3>{escape(set_name)}</h3>" + _table(
        ["question", "reference", *variants, "judge"], body)


def _variants(run: RunFiles) -> list[str]:
    found = list(run.metrics) or ["base", "tuned"]
    extra = [k[: -len("_answer")] for p in run.predictions[:1] for k in p
             if k.endswith("_answer") and k[: -len("_answer")] not in found]
    return found + extra


def _reference(p: dict[str, Any]) -> str:
    fact = p.get("fact")
    shown = f'<br><span class="ci">fact: {escape(str(fact))}</span>' if fact else ""
    return escape(str(p.get("reference", ""))) + shown


def _answer(p: dict[str, Any], variant: str) -> str:
    if f"{variant}_answer" not in p:
        return "–"
    correct = p.get(f"{variant}_correct")
    mark = "" if correct is None else f' class="{"ok" if correct else "bad"}"'
    return f"<td{mark}>{escape(str(p[f'{variant}_answer']))}</td>"


def _config_section(run: RunFiles) -> str:
    text = run.config_text
    return "" if text is None else _section("config", "Configuration", (
        f"<details><summary>config.yaml</summary><pre>{escape(text)}</pre></details>"))
