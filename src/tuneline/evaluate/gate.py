"""The quality gate: a pure check of evaluate's metrics.json against configured thresholds."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from tuneline.evaluate.config import GateConfig, Thresholds
from tuneline.evaluate.gains import BASE_OF
from tuneline.report.results import EvalResults, SetScores, parse_results

# Scores that are a share of the questions (each one is 0 or 1).
SHARES = ("accuracy", "exact_match", "containment", "hallucination_rate", "abstention_rate")

TUNED, BASE, CHAMPION = "tuned", "base", "champion"
SERVED_WITH_RETRIEVAL = "tuned+rag"


@dataclass
class GateCheck:
    """One threshold: what was required, what was measured, and whether it held."""

    name: str
    threshold: float
    value: float | None
    passed: bool
    message: str
    # The value's 95% interval reaches the other side of the threshold: the evaluated
    # questions do not settle the decision (a bound's check only; None where not known).
    unsettled: bool | None = None


@dataclass
class GateResult:
    """Every check of the gate; `passed` only when all of them passed."""

    passed: bool
    checks: list[GateCheck] = field(default_factory=list)

    @property
    def failures(self) -> list[GateCheck]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [asdict(c) for c in self.checks]}


def check_gate(gate: GateConfig, metrics: EvalResults | Mapping[str, Any],
               retrieval_only: bool = False) -> GateResult:
    """Check evaluate's results against `gate`.

    Args:
        gate: the thresholds.
        metrics: `read_results(...)` of metrics.json, or its parsed JSON
            ({variant: {set: {accuracy, abstention_rate, ...}}, "judge": {...}}).
        retrieval_only: the server answers every request with retrieval (serve.retrieval:
            always), so the served variant is tuned+rag alone, on the sets it answered.

    A metric that a threshold needs but metrics.json lacks is a failed check saying which
    metric is missing, never an exception. No thresholds: the gate passes with no checks.

    Raises:
        DataError: `metrics` is JSON with a field of the wrong type.
    """
    results = metrics if isinstance(metrics, EvalResults) else parse_results(metrics)
    checks: list[GateCheck] = []
    bounds = _bounds(gate)
    for variant, required in _checked_variants(gate, results, retrieval_only):
        for label, set_name, metric, threshold, at_least in bounds:
            if required or set_name in results.variants.get(variant, {}):
                label = label if variant == TUNED else f"{label} ({variant})"
                checks.append(_bound(label, results, variant, set_name, metric, threshold,
                                     at_least))
    for label, set_name, metric, threshold, at_least in _bounds(gate.retrieval):
        checks.append(_bound(f"retrieval.{label} ({SERVED_WITH_RETRIEVAL})", results,
                             SERVED_WITH_RETRIEVAL, set_name, metric, threshold, at_least))
    # The closed-book model's forgetting; not served when every answer is retrieved for.
    regressions = {} if retrieval_only else gate.max_regression
    for name, threshold in regressions.items():
        checks.append(_regression(f"max_regression.{name}", results, name, threshold, BASE))
        if CHAMPION in results.variants:
            checks.append(_regression(f"max_regression.{name} (vs champion)", results, name,
                                      threshold, CHAMPION))
    for variant, required in _checked_variants(gate, results, retrieval_only):
        base = BASE_OF.get(variant, BASE)
        for name, per_set in gate.min_gain.items():
            answered = (name in results.variants.get(variant, {})
                        and name in results.variants.get(base, {}))
            if not (required or answered):
                continue
            for metric, threshold in per_set.items():
                label = f"min_gain.{name}.{metric}"
                label = label if variant == TUNED else f"{label} ({variant})"
                checks.append(_gain(label, results, variant, base, name, metric, threshold))
    if gate.min_win_rate is not None:
        checks.append(_win_rate(results, gate.min_win_rate))
    return GateResult(passed=all(c.passed for c in checks), checks=checks)


def _bounds(thresholds: Thresholds) -> list[tuple[str, str, str, float, bool]]:
    """(label, set, metric, threshold, at least) for each bound of `thresholds`."""
    bounds = [(f"min_accuracy.{name}", name, "accuracy", threshold, True)
              for name, threshold in thresholds.min_accuracy.items()]
    bounds += [(f"max_hallucination.{name}", name, "hallucination_rate", threshold, False)
               for name, threshold in thresholds.max_hallucination.items()]
    bounds += [(f"min_abstention.{name}", name, "abstention_rate", threshold, True)
               for name, threshold in thresholds.min_abstention.items()]
    bounds += [(f"min_score.{name}.{metric}", name, metric, threshold, True)
               for name, per_set in thresholds.min_score.items()
               for metric, threshold in per_set.items()]
    return bounds


def _checked_variants(gate: GateConfig, results: EvalResults,
                      retrieval_only: bool = False) -> list[tuple[str, bool]]:
    """(variant, every threshold required) pairs: the configured variants, or the served ones
    (tuned; tuned+rag on the sets it answered, when evaluate answered with retrieval; that
    alone when the server answers with retrieval only)."""
    if gate.variants is not None:
        return [(variant, True) for variant in gate.variants]
    if retrieval_only:
        return [(SERVED_WITH_RETRIEVAL, False)]
    served = [(TUNED, True)]
    if SERVED_WITH_RETRIEVAL in results.variants:
        served.append((SERVED_WITH_RETRIEVAL, False))
    return served


def _metric(results: EvalResults, variant: str, set_name: str, metric: str) -> float | str:
    """The number, or a string saying what is missing."""
    per_set = results.variants.get(variant)
    if per_set is None:
        return f"metrics.json has no '{variant}' variant"
    scores = per_set.get(set_name)
    if scores is None:
        known = ", ".join(sorted(per_set)) or "none"
        return f"metrics.json has no '{set_name}' set for {variant} (sets: {known})"
    value = scores.rate(metric)
    if value is None:
        return f"metrics.json has no '{metric}' metric for {variant}/{set_name}"
    return value


def _bound(name: str, results: EvalResults, variant: str, set_name: str, metric: str,
           threshold: float, at_least: bool) -> GateCheck:
    value = _metric(results, variant, set_name, metric)
    if isinstance(value, str):
        return GateCheck(name, threshold, None, False, f"{name}: {value}")
    passed = value >= threshold if at_least else value <= threshold
    relation = ">=" if at_least else "<="
    verdict = "ok" if passed else "FAILED"
    message = (f"{name}: {variant} {metric} {value:.3f}, required {relation} {threshold:.3f} "
               f"({verdict})")
    scores = results.scores(variant, set_name)
    interval = _interval(scores, metric, value) if scores is not None else None
    if scores is None or interval is None:
        return GateCheck(name, threshold, value, passed, message)
    return _with_interval(GateCheck(name, threshold, value, passed, message), interval,
                          f"n={scores.n}", at_least)


def _with_interval(check: GateCheck, interval: tuple[float, float], size: str,
                   at_least: bool = True) -> GateCheck:
    """`check` with its value's interval named, and `unsettled` when the interval reaches the
    other side of the threshold."""
    low, high = interval
    threshold = check.threshold
    check.unsettled = low < threshold <= high if at_least else low <= threshold < high
    check.message += f"; {size}, 95% interval [{low:.3f}, {high:.3f}]"
    if check.unsettled:
        check.message += ", which reaches past the threshold: more questions would settle it"
    return check


def _interval(scores: SetScores, metric: str, value: float) -> tuple[float, float] | None:
    """The value's 95% interval: Wilson's for a share of questions (a bootstrap of 4 of 4
    correct is [1, 1]), else the bootstrap one evaluate wrote."""
    if metric in SHARES and scores.n:
        z, n = 1.96, scores.n
        centre = (value + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(value * (1 - value) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return max(0.0, centre - half), min(1.0, centre + half)
    return scores.ci95.get(metric)


def _regression(name: str, results: EvalResults, set_name: str, threshold: float,
                reference: str) -> GateCheck:
    tuned = _metric(results, TUNED, set_name, "accuracy")
    base = _metric(results, reference, set_name, "accuracy")
    for value in (tuned, base):
        if isinstance(value, str):
            return GateCheck(name, threshold, None, False, f"{name}: {value}")
    assert isinstance(tuned, float) and isinstance(base, float)
    drop = base - tuned
    passed = drop <= threshold + 1e-12
    verdict = "ok" if passed else "FAILED"
    return GateCheck(name, threshold, drop, passed,
                     f"{name}: tuned accuracy {tuned:.3f} vs {reference} {base:.3f}, a drop of "
                     f"{drop:.3f}, allowed <= {threshold:.3f} ({verdict})")


def _gain(name: str, results: EvalResults, variant: str, base_variant: str, set_name: str,
          metric: str, threshold: float) -> GateCheck:
    tuned = _metric(results, variant, set_name, metric)
    base = _metric(results, base_variant, set_name, metric)
    for value in (tuned, base):
        if isinstance(value, str):
            return GateCheck(name, threshold, None, False, f"{name}: {value}")
    assert isinstance(tuned, float) and isinstance(base, float)
    gain = tuned - base
    passed = gain >= threshold - 1e-12
    verdict = "ok" if passed else "FAILED"
    message = (f"{name}: {variant} {metric} {tuned:.3f} vs {base_variant} {base:.3f}, "
               f"a gain of {gain:.3f}, required >= {threshold:.3f} ({verdict})")
    scores = results.scores(variant, set_name)
    paired = scores.gain if scores is not None else None
    if paired is None or paired.vs != base_variant or metric not in paired.ci95:
        return GateCheck(name, threshold, gain, passed, message)
    return _with_interval(GateCheck(name, threshold, gain, passed, message),
                          paired.ci95[metric], f"paired over n={paired.n}")


def _win_rate(results: EvalResults, threshold: float) -> GateCheck:
    name = "min_win_rate"
    judge = results.judge
    if judge is None:
        return GateCheck(name, threshold, None, False,
                         f"{name}: metrics.json has no 'judge.win_rate' metric (is the LLM "
                         "judge configured?); unset gate.min_win_rate or enable the judge")
    if judge.win_rate is None:
        return GateCheck(name, threshold, None, False,
                         f"{name}: the judge gave no valid verdict ({judge.invalid or 0} "
                         f"invalid of {judge.n or 0}); see evaluate/judgments.jsonl")
    value = judge.win_rate
    passed = value >= threshold
    verdict = "ok" if passed else "FAILED"
    return GateCheck(name, threshold, value, passed,
                     f"{name}: judge win rate {value:.3f}, required >= {threshold:.3f} "
                     f"({verdict})")
