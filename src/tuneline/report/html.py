"""Self-contained HTML run report: loss, metrics, judge verdicts, dataset card and samples."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from jinja2 import Environment, PackageLoader, StrictUndefined
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

from tuneline.artifacts import read_jsonl, write_text_atomic
from tuneline.report import plots as html_plots
from tuneline.report.markdown import GAIN_SCORES, signed_with_ci
from tuneline.report.results import (
    METRICS_FILE,
    EvalResults,
    GainScores,
    JudgeScores,
    Repeats,
    read_repeats,
    read_results,
)

REPORT = "report.html"
TEMPLATE = "report.html.j2"  # in tuneline/report/templates/; the style is report.css
SAMPLES_PER_SET = 5
JUDGED_SHOWN = 4
CATEGORY_KEY = "template"  # what evaluate groups `by_category` on (summarize_items' default)
TABLE_METRICS = (("accuracy", "strict accuracy"), ("exact_match", "exact match"),
                 ("containment", "containment"), ("hallucination_rate", "hallucination"),
                 ("abstention_rate", "abstention"), ("token_f1", "token F1"),
                 ("rouge_l", "ROUGE-L"), ("similarity", "similarity"))
VERDICTS = ("win", "loss", "tie", "invalid")
_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


@dataclass
class GateSummary:
    """gate.json as the report shows it: the verdict and each check's (passed, message)."""

    passed: bool
    checks: list[tuple[bool, str]]


@dataclass
class RunFiles:
    """What the report reads from one run folder; None or empty where a file is absent."""

    name: str
    config: dict[str, Any]
    config_text: str | None
    train_log: list[dict[str, Any]] | None
    results: EvalResults  # empty when evaluate/metrics.json is absent
    predictions: list[dict[str, Any]]
    judgments: list[dict[str, Any]]
    gate: GateSummary | None
    card: str | None
    card_dir: Path
    repeats: Repeats | None = None  # <run>/repeats.json, with run.repeats > 1

    @property
    def base_model(self) -> str | None:
        base = (self.config.get("model") or {}).get("base")
        return str(base) if base else None


@dataclass
class Plot:
    """An embedded PNG: its alt text and data URI."""

    alt: str
    uri: str


@dataclass
class CategoryBlock:
    """Accuracy per category of one set: {category: {variant: accuracy}}, maybe as a plot."""

    set_name: str
    table: dict[str, dict[str, float]]
    variants: list[str]
    plot: Plot | None
    # the same per group (an event's discipline), with the number of items in each
    groups: dict[str, dict[str, float]] = field(default_factory=dict)
    group_sizes: dict[str, int] = field(default_factory=dict)


@dataclass
class Answer:
    """One variant's answer to a sample question; `correct` None when it was not scored."""

    text: str
    correct: bool | None


@dataclass
class JudgedRow:
    """One example verdict: both answers and the judge's reason per answer order."""

    question: str
    challenger_answer: str
    champion_answer: str
    verdict: Any
    reasons: list[str]


@dataclass
class SampleRow:
    """One sample question with its reference and every variant's answer."""

    question: str
    reference: str
    fact: str | None
    answers: list[Answer | None]  # one per variant of the table; None: not answered
    verdict: Any  # the judge's verdict on this question, None when it was not judged


@dataclass
class SampleTable:
    """The first sample answers of one evaluation set."""

    set_name: str
    variants: list[str]
    rows: list[SampleRow] = field(default_factory=list)


def render_html_report(run_dir: Path) -> str:
    """The run's report as one HTML page with every plot and image embedded.

    Args:
        run_dir: a run folder (`runs/<run>/`); missing inputs give a "not available" note.

    Returns:
        The HTML text; it references no external URL.

    Raises:
        DataError: evaluate/metrics.json is malformed.
    """
    run = load_run(Path(run_dir))
    figures = html_plots.figure_module()
    return _environment().get_template(TEMPLATE).render(
        run=run, results=run.results, css=Markup(report_css()),
        metric_keys=[key for key, _ in TABLE_METRICS],
        metric_labels=[label for _, label in TABLE_METRICS],
        loss=_loss(run, figures), categories=_categories(run, figures),
        judged=[_judged_row(j) for j in _pick_judgments(run.judgments, JUDGED_SHOWN)],
        card=None if run.card is None else Markup(render_markdown(run.card, run.card_dir)),
        samples=_samples(run), gains=_gains(run.results), gain_scores=GAIN_SCORES,
        verdict_label=functools.partial(verdict_label, run.results.judge),
    )


def _gains(results: EvalResults) -> list[tuple[str, str, GainScores]]:
    """(set, variant, gain) for every variant and set evaluate measured a paired gain on."""
    return [(set_name, variant, scores.gain) for set_name in results.sets
            for variant, per_set in results.variants.items()
            if (scores := per_set.get(set_name)) is not None and scores.gain is not None]


def write_html_report(run_dir: Path) -> Path:
    """Render the report and write it atomically to `run_dir/report.html`; returns that path."""
    path = Path(run_dir) / REPORT
    write_text_atomic(path, render_html_report(run_dir))
    return path


@functools.cache
def _environment() -> Environment:
    """The template environment; autoescape makes the template the one place text is escaped."""
    env = Environment(loader=PackageLoader("tuneline.report", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters["pct"] = pct
    env.filters["mrr"] = lambda value: "–" if value is None else f"{value:.3f}"
    env.filters["gain"] = _gain_cell
    return env


def _gain_cell(gain: GainScores, key: str) -> str:
    value = getattr(gain, key)
    if value is None or key not in gain.ci95:
        return "–"
    return signed_with_ci(value, gain.ci95[key], percent=key == "accuracy")


@functools.cache
def report_css() -> str:
    return resources.files("tuneline.report").joinpath("report.css").read_text("utf-8")


def pct(value: float | None) -> str:
    """A share as a percentage with one decimal; "–" for a missing one."""
    return "–" if value is None else f"{value:.1%}"


# --- Reading the run folder ---------------------------------------------------------------


def load_run(run_dir: Path) -> RunFiles:
    """Read every input of the report from `run_dir`.

    Raises:
        DataError: evaluate/metrics.json is malformed.
    """
    config_text = _read_text(run_dir / "config.yaml")
    config = _parse_yaml(config_text)
    metrics = run_dir / "evaluate" / METRICS_FILE
    return RunFiles(
        name=str((config.get("run") or {}).get("name") or run_dir.name),
        config=config, config_text=config_text,
        train_log=_read_rows(run_dir / "train" / "train_log.jsonl"),
        results=read_results(metrics) if metrics.is_file() else EvalResults(),
        predictions=_read_rows(run_dir / "evaluate" / "predictions.jsonl") or [],
        judgments=_read_rows(run_dir / "evaluate" / "judgments.jsonl") or [],
        gate=_read_gate(run_dir / "gate.json"),
        card=_read_text(run_dir / "curate" / "dataset_card.md"),
        card_dir=run_dir / "curate",
        repeats=read_repeats(run_dir),
    )


def _read_text(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _read_gate(path: Path) -> GateSummary | None:
    gate = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    if not isinstance(gate, dict):
        return None
    checks = [(bool(c.get("passed")), str(c.get("message", ""))) for c in gate.get("checks", [])]
    return GateSummary(bool(gate.get("passed")), checks)


def _read_rows(path: Path) -> list[dict[str, Any]] | None:
    return read_jsonl(path) if path.is_file() else None


def _parse_yaml(text: str | None) -> dict[str, Any]:
    try:
        parsed = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


# --- What the sections show -------------------------------------------------------------------


@dataclass
class LossSummary:
    """The loss curve and a line about it."""

    summary: str
    plot: Plot | None


def _loss(run: RunFiles, figures: ModuleType | None) -> LossSummary | None:
    """The loss curve and a line about it; None without a training log."""
    if not run.train_log:
        return None
    train = _series(run.train_log, "loss")
    val = _series(run.train_log, "val_loss")
    parts = []
    if train:
        parts.append(f"{len(train)} logged steps, training loss {train[0][1]:.3f} → "
                     f"{train[-1][1]:.3f}")
    if val:
        parts.append(f"last validation loss {val[-1][1]:.3f} (step {val[-1][0]})")
    alt = "training and validation loss"
    uri = html_plots.plot(figures, (9, 3.4), html_plots.draw_loss, train, val)
    return LossSummary("; ".join(parts), Plot(alt, uri) if uri else None)


def _series(log: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    return [(int(row.get("step", i)), float(row[key])) for i, row in enumerate(log)
            if isinstance(row.get(key), int | float)]


def _categories(run: RunFiles, figures: ModuleType | None) -> list[CategoryBlock]:
    """Per set with categories: the accuracy table and (with matplotlib) its bar chart."""
    blocks = []
    for set_name in run.results.sets:
        table = _category_accuracy(run.results, set_name)
        if not table:
            continue
        groups, sizes = _group_accuracy(run.results, set_name)
        size = (9, 1.2 + 0.5 * len(table) * max(1, len(run.results.variants)) ** 0.5)
        uri = html_plots.plot(figures, size, html_plots.draw_categories, table, set_name)
        plot = Plot(f"accuracy per category, {set_name}", uri) if uri else None
        variants = list(dict.fromkeys(v for per in table.values() for v in per))
        blocks.append(CategoryBlock(set_name, table, variants, plot, groups, sizes))
    return blocks


def _group_accuracy(results: EvalResults, set_name: str
                    ) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    """({group: {variant: accuracy}}, {group: n}) for one set."""
    table: dict[str, dict[str, float]] = {}
    sizes: dict[str, int] = {}
    for variant, per_set in results.variants.items():
        scores = per_set.get(set_name)
        for group, summary in (scores.by_group if scores else {}).items():
            if summary.accuracy is not None:
                table.setdefault(group, {})[variant] = summary.accuracy
                sizes[group] = summary.n or 0
    return table, sizes


def _category_accuracy(results: EvalResults, set_name: str) -> dict[str, dict[str, float]]:
    """{category: {variant: accuracy}} for one set."""
    table: dict[str, dict[str, float]] = {}
    for variant, per_set in results.variants.items():
        scores = per_set.get(set_name)
        for category, summary in (scores.by_category if scores else {}).items():
            if summary.accuracy is not None:
                table.setdefault(category, {})[variant] = summary.accuracy
    return table


def verdict_label(judge: JudgeScores | None, verdict: Any) -> tuple[str, str]:
    """(CSS kind, label) of a judge verdict on the challenger: win → "tuned wins", ..."""
    judge = judge or JudgeScores()
    label = {"win": f"{judge.challenger} wins", "loss": f"{judge.champion} wins", "tie": "tie",
             "invalid": "invalid"}.get(str(verdict), str(verdict))
    return (str(verdict) if verdict in VERDICTS else "invalid"), label


def _pick_judgments(judgments: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The first judgment of each verdict kind, then the next ones, `n` in all."""
    firsts: dict[Any, dict[str, Any]] = {}
    for j in judgments:
        firsts.setdefault(j.get("verdict"), j)
    picked = list(firsts.values())[:n]
    rest = [j for j in judgments if all(j is not p for p in picked)]
    return picked + rest[: n - len(picked)]


def _judged_row(judgment: dict[str, Any]) -> JudgedRow:
    """A judgments.jsonl record, its reasons labelled by answer order (the challenger shown as
    answer A, then as B)."""
    reasons = judgment.get("reasons")
    reasons = reasons if isinstance(reasons, list) else []
    labels = (["challenger as A: ", "challenger as B: "] if len(reasons) == 2
              else [""] * len(reasons))
    return JudgedRow(str(judgment.get("question", "")),
                     str(judgment.get("challenger_answer", "")),
                     str(judgment.get("champion_answer", "")), judgment.get("verdict"),
                     [label + str(r) for label, r in zip(labels, reasons, strict=True)])


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


def _samples(run: RunFiles) -> list[SampleTable]:
    """The first answers of each set, every variant's, with the judge's verdict."""
    verdicts = _verdicts_by_question(run.judgments)
    sets = list(dict.fromkeys(str(p.get("set", "")) for p in run.predictions))
    return [_sample_table(run, name, verdicts) for name in sets]


def _verdicts_by_question(judgments: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    """Verdict by (set, question), and by ("", question) for a lookup without the set."""
    found: dict[tuple[str, str], Any] = {}
    for j in judgments:
        question = str(j.get("question", ""))
        set_name = str((j.get("meta") or {}).get("set", ""))
        found.setdefault((set_name, question), j.get("verdict"))
        found.setdefault(("", question), j.get("verdict"))
    return found


def _sample_table(run: RunFiles, set_name: str,
                  verdicts: dict[tuple[str, str], Any]) -> SampleTable:
    rows = [p for p in run.predictions if str(p.get("set", "")) == set_name][:SAMPLES_PER_SET]
    table = SampleTable(set_name, [v for v in _variants(run)
                                   if any(f"{v}_answer" in p for p in rows)])
    for p in rows:
        question = str(p.get("question", ""))
        answers = [Answer(str(p[f"{v}_answer"]), p.get(f"{v}_correct"))
                   if f"{v}_answer" in p else None for v in table.variants]
        table.rows.append(SampleRow(
            question, str(p.get("reference", "")), str(p["fact"]) if p.get("fact") else None,
            answers, verdicts.get((set_name, question), verdicts.get(("", question)))))
    return table


def _variants(run: RunFiles) -> list[str]:
    found = list(run.results.variants) or ["base", "tuned"]
    extra = [k[: -len("_answer")] for p in run.predictions[:1] for k in p
             if k.endswith("_answer") and k[: -len("_answer")] not in found]
    return found + extra
