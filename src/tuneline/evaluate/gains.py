"""Paired gains: each served variant against the base model asked the same way, question by
question, with a bootstrap interval of the mean difference.

Two variants' separate intervals say little about the gap between them: on the same questions
the hard ones are hard for both, and the difference of each question's scores varies far less
than either score. metrics.json gives it per set as `gain`:
{"vs": "base", "n": 12, "accuracy": 0.25, "ci95": {"accuracy": [0.08, 0.42]}}."""

from __future__ import annotations

from typing import Any

from tuneline.evaluate.free_text import REFERENCE_METRICS
from tuneline.evaluate.metrics import bootstrap_ci

# The base model asked the same way as each variant whose gain is measured.
BASE_OF = {"tuned": "base", "tuned+rag": "base+rag"}
# A score, and the per-question field of predictions.jsonl it is the mean of.
PER_QUESTION = {"accuracy": "correct", **{name: name for name in REFERENCE_METRICS}}


def add_gains(metrics: dict[str, Any], predictions: list[dict[str, Any]]) -> None:
    """Write `gain` into metrics[variant][set] for each variant of BASE_OF whose base was
    asked the same set."""
    for variant, base in BASE_OF.items():
        for set_name, scores in metrics.get(variant, {}).items():
            if set_name not in metrics.get(base, {}):
                continue
            rows = [p for p in predictions if p["set"] == set_name
                    and f"{variant}_answer" in p and f"{base}_answer" in p]
            gain = paired_gain(rows, variant, base)
            if gain is not None:
                scores["gain"] = {"vs": base, **gain}


def paired_gain(rows: list[dict[str, Any]], variant: str, base: str) -> dict[str, Any] | None:
    """Mean per-question difference `variant` − `base` of each score both have on every row,
    with its bootstrap 95% interval; None when there is none."""
    gain: dict[str, Any] = {"n": len(rows), "ci95": {}}
    for score, field in PER_QUESTION.items():
        if not rows or any(f"{variant}_{field}" not in r or f"{base}_{field}" not in r
                           for r in rows):
            continue
        differences = [float(r[f"{variant}_{field}"]) - float(r[f"{base}_{field}"])
                       for r in rows]
        gain[score] = sum(differences) / len(differences)
        gain["ci95"][score] = list(bootstrap_ci(differences))
    return gain if gain["ci95"] else None
