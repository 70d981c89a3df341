"""The HTML drift report: what moved between a version's training questions and live ones.

One self-contained page beside drift.json: the verdict and each test against its threshold,
the live shares of declined answers and of questions without a passage, the cluster shares
(baseline vs live) and the coverage distances as plots, and, when the questions' text is
known (a `--live` file, or traffic recorded with `serve.log_prompts`), example questions
outside the training coverage and from the clusters that grew most.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from tuneline.artifacts import write_text_atomic
from tuneline.monitor.drift import DriftReport, RateCheck
from tuneline.report import plots

DRIFT_HTML = "drift.html"
EXAMPLES_SHOWN = 8
GROWN_CLUSTERS_SHOWN = 3
PER_CLUSTER_SHOWN = 3


@dataclass(frozen=True)
class TestRow:
    name: str
    value: str
    threshold: str
    alert: bool


@dataclass(frozen=True)
class GrownCluster:
    index: int
    baseline: float
    live: float
    questions: list[str]


def write_drift_html(path: Path, report: DriftReport, rates: Sequence[RateCheck],
                     baseline_origin: str, questions: Sequence[str | None] | None,
                     alerts: Sequence[str]) -> Path:
    """Render the report and write it atomically to `path`; returns `path`."""
    write_text_atomic(path, render_drift_html(report, rates, baseline_origin, questions, alerts))
    return path


def render_drift_html(report: DriftReport, rates: Sequence[RateCheck], baseline_origin: str,
                      questions: Sequence[str | None] | None, alerts: Sequence[str]) -> str:
    """The page's HTML; it references no external URL. `questions` are the live questions'
    texts in the report's order (None where not recorded)."""
    from tuneline.report.html import report_css

    texts = list(questions) if questions and any(q for q in questions) else None
    figures = plots.figure_module()
    shares = report.cluster_shares
    return _environment().get_template("drift.html.j2").render(
        report=report, rates=rates, alerts=alerts, baseline_origin=baseline_origin,
        css=Markup(report_css()), tests=_tests(report),
        shares_plot=plots.plot(figures, (8, 3.2), _draw_shares, shares["baseline"],
                               shares["live"]),
        coverage_plot=plots.plot(figures, (8, 3.0), _draw_coverage, report.coverage_ratio),
        outside=_outside_examples(report, texts), grown=_grown_clusters(report, texts),
        has_text=texts is not None)


def _tests(report: DriftReport) -> list[TestRow]:
    from tuneline.monitor.drift import COVERAGE_QUANTILE, DriftThresholds

    t = DriftThresholds()
    return [
        TestRow("classifier two-sample test (AUC)",
                f"{report.classifier_auc:.2f} (shuffled labels up to "
                f"{report.classifier_auc_null:.2f})",
                f"> shuffled and ≥ {t.min_auc}",
                report.classifier_auc > max(report.classifier_auc_null, t.min_auc)),
        TestRow("MMD (RBF kernel)", f"{report.mmd:.4f}, p = {report.mmd_p_value:.4f}",
                f"p < {t.p_value}", report.mmd_p_value < t.p_value),
        TestRow("cluster shares (PSI, chi-square)",
                f"PSI {report.psi:.2f}, p = {report.shares_p_value:.2g}",
                f"p < {t.p_value} and PSI > {t.psi}",
                report.shares_p_value < t.p_value and report.psi > t.psi),
        TestRow("out of coverage", f"{report.out_of_coverage:.1%}, p = "
                f"{report.out_of_coverage_p_value:.2g}",
                f"p < {t.p_value} (about {1 - COVERAGE_QUANTILE:.0%} expected)",
                report.out_of_coverage_p_value < t.p_value),
    ]


def _outside_examples(report: DriftReport, texts: list[str | None] | None) -> list[str]:
    """The live questions farthest outside the training coverage, farthest first."""
    if texts is None:
        return []
    outside = sorted((r, i) for i, r in enumerate(report.coverage_ratio) if r > 1)
    return [t for _, i in reversed(outside) if (t := texts[i])][:EXAMPLES_SHOWN]


def _grown_clusters(report: DriftReport, texts: list[str | None] | None) -> list[GrownCluster]:
    """The clusters whose live share grew most over the baseline's, with live examples."""
    baseline, live = report.cluster_shares["baseline"], report.cluster_shares["live"]
    grown = sorted((i for i in range(len(live)) if live[i] > baseline[i]),
                   key=lambda i: live[i] - baseline[i], reverse=True)[:GROWN_CLUSTERS_SHOWN]
    return [GrownCluster(i, baseline[i], live[i], [
        t for c, t in zip(report.live_clusters, texts or [], strict=False) if c == i and t
    ][:PER_CLUSTER_SHOWN]) for i in grown]


def _draw_shares(figure: Any, baseline: list[float], live: list[float]) -> None:
    axes = figure.subplots()
    index = range(len(baseline))
    axes.bar([i - 0.2 for i in index], baseline, width=0.4, color=plots.COLORS[0],
             label="training (baseline)")
    axes.bar([i + 0.2 for i in index], live, width=0.4, color=plots.COLORS[1], label="live")
    axes.set(xlabel="cluster of training questions", ylabel="share of questions",
             xticks=list(index))
    axes.grid(alpha=0.3, axis="y")
    axes.legend()


def _draw_coverage(figure: Any, ratios: list[float]) -> None:
    axes = figure.subplots()
    axes.hist(ratios, bins=30, color=plots.COLORS[1])
    axes.axvline(1.0, color=plots.COLORS[2], linestyle="--", label="coverage radius")
    axes.set(xlabel="distance to the nearest training question / coverage radius",
             ylabel="live questions")
    axes.legend()


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("tuneline.report", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = lambda value: f"{value:.1%}"
    return env
