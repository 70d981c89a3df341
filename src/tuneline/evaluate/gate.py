"""The quality gate: a pure check of evaluate's metrics.json against configured thresholds."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tuneline.evaluate.config import GateConfig

TUNED, BASE, CHAMPION = "tuned", "base", "champion"


@dataclass
class GateCheck:
    """One threshold: what was required, what was measured, and whether it held."""

    name: str
    threshold: float
    value: float | None
    passed: bool
    message: str


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


def check_gate(gate: GateConfig, metrics: dict[str, Any]) -> GateResult:
    """Check `metrics` ({variant: {set: {accuracy, abstention_rate, ...}}}) against `gate`.

    A metric that a threshold needs but metrics.json lacks is a failed check saying which
    metric is missing, never an exception. No thresholds: the gate passes with no checks.
    """
    checks: list[GateCheck] = []
    for name, threshold in gate.min_accuracy.items():
        checks.append(_bound(f"min_accuracy.{name}", metrics, name, "accuracy", threshold, True))
    for name, threshold in gate.max_hallucination.items():
        checks.append(_bound(f"max_hallucination.{name}", metrics, name, "hallucination_rate",
                             threshold, False))
    for name, threshold in gate.min_abstention.items():
        checks.append(_bound(f"min_abstention.{name}", metrics, name, "abstention_rate",
                             threshold, True))
    for name, threshold in gate.max_regression.items():
        checks.append(_regression(f"max_regression.{name}", metrics, name, threshold, BASE))
        if CHAMPION in metrics:
            checks.append(_regression(f"max_regression.{name} (vs champion)", metrics, name,
                                      threshold, CHAMPION))
    if gate.min_win_rate is not None:
        checks.append(_win_rate(metrics, gate.min_win_rate))
    return GateResult(passed=all(c.passed for c in checks), checks=checks)


def _metric(metrics: dict[str, Any], variant: str, set_name: str, metric: str) -> float | str:
    """The number, or a string saying what is missing."""
    per_set = metrics.get(variant)
    if not isinstance(per_set, dict):
        return f"metrics.json has no '{variant}' variant"
    values = per_set.get(set_name)
    if not isinstance(values, dict):
        known = ", ".join(sorted(per_set)) or "none"
        return f"metrics.json has no '{set_name}' set for {variant} (sets: {known})"
    value = values.get(metric)
    if isinstance(value, dict):  # a rate reported with its interval
        value = value.get("value")
    if not isinstance(value, int | float):
        return f"metrics.json has no '{metric}' metric for {variant}/{set_name}"
    return float(value)


def _bound(name: str, metrics: dict[str, Any], set_name: str, metric: str, threshold: float,
           at_least: bool) -> GateCheck:
    value = _metric(metrics, TUNED, set_name, metric)
    if isinstance(value, str):
        return GateCheck(name, threshold, None, False, f"{name}: {value}")
    passed = value >= threshold if at_least else value <= threshold
    relation = ">=" if at_least else "<="
    verdict = "ok" if passed else "FAILED"
    return GateCheck(name, threshold, value, passed,
                     f"{name}: tuned {metric} {value:.3f}, required {relation} {threshold:.3f} "
                     f"({verdict})")


def _regression(name: str, metrics: dict[str, Any], set_name: str, threshold: float,
                reference: str) -> GateCheck:
    tuned = _metric(metrics, TUNED, set_name, "accuracy")
    base = _metric(metrics, reference, set_name, "accuracy")
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


def _win_rate(metrics: dict[str, Any], threshold: float) -> GateCheck:
    name = "min_win_rate"
    judge = metrics.get("judge")
    value = judge.get("win_rate") if isinstance(judge, dict) else None
    if isinstance(value, dict):
        value = value.get("value")
    if isinstance(judge, dict) and value is None:
        return GateCheck(name, threshold, None, False,
                         f"{name}: the judge gave no valid verdict ({judge.get('invalid', 0)} "
                         f"invalid of {judge.get('n', 0)}); see evaluate/judgments.jsonl")
    if not isinstance(value, int | float):
        return GateCheck(name, threshold, None, False,
                         f"{name}: metrics.json has no 'judge.win_rate' metric (is the LLM "
                         "judge configured?); unset gate.min_win_rate or enable the judge")
    passed = value >= threshold
    verdict = "ok" if passed else "FAILED"
    return GateCheck(name, threshold, float(value), passed,
                     f"{name}: judge win rate {value:.3f}, required >= {threshold:.3f} "
                     f"({verdict})")
