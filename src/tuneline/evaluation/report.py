"""Markdown evaluation report: the accuracy table and sample answers."""

from __future__ import annotations

from typing import Any

SAMPLES_PER_SET = 5


def render_report(metrics: dict[str, Any], predictions: list[dict[str, Any]]) -> str:
    """A short markdown report: accuracy per variant and set, then sample answers."""
    sets = list(next(iter(metrics.values())))
    lines = ["# Evaluation report", "", "| variant | " + " | ".join(sets) + " |",
             "|---|" + "---|" * len(sets)]
    for variant, per_set in metrics.items():
        cells = [f"{per_set[s]['accuracy']:.1%} (n={per_set[s]['n']})" for s in sets]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    for name in sets:
        lines += ["", f"## Samples: {name}", ""]
        for p in [p for p in predictions if p["set"] == name][:SAMPLES_PER_SET]:
            lines += [
                f"- **Q:** {p['question']}",
                f"  - reference: {p['reference']} (fact: `{p['fact']}`)",
                f"  - base ({_mark(p['base_correct'])}): {p['base_answer']}",
                f"  - tuned ({_mark(p['tuned_correct'])}): {p['tuned_answer']}",
            ]
    return "\n".join(lines) + "\n"


def _mark(correct: bool) -> str:
    return "correct" if correct else "wrong"
