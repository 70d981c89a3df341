"""Markdown evaluation report: the accuracy table and sample answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SAMPLES_PER_SET = 5
# The scores a gain is shown for, in the gain tables' column order.
GAIN_SCORES = ("accuracy", "rouge_l", "similarity", "token_f1")


def render_report(metrics: dict[str, Any], predictions: list[dict[str, Any]],
                  notes: tuple[str, ...] = ()) -> str:
    """A short markdown report: `notes` (paragraphs), accuracy per variant and set, then sample
    answers."""
    sets = list(dict.fromkeys(s for per_set in metrics.values() for s in per_set))
    lines = ["# Evaluation report", "", *[line for note in notes for line in (note, "")],
             *accuracy_table(metrics)]
    lines += _detail_table(metrics)
    lines += _gain_table(metrics)
    for name in sets:
        lines += ["", f"## Samples: {name}", ""]
        for p in [p for p in predictions if p["set"] == name][:SAMPLES_PER_SET]:
            if "rouge_l" in next(iter(metrics.values())).get(name, {}):
                lines += _free_text_sample(p, metrics)
                continue
            lines += [f"- **Q:** {p['question']}",
                      f"  - reference: {p['reference']} (fact: `{p['fact']}`)"]
            lines += [f"  - {v} ({_mark(p[f'{v}_correct'])}): {p[f'{v}_answer']}"
                      for v in metrics if f"{v}_answer" in p]
    return "\n".join(lines) + "\n"


def accuracy_table(metrics: dict[str, Any]) -> list[str]:
    """Markdown table lines per variant (rows) and set (columns): strict accuracy (with n), or
    for free-text sets ROUGE-L and embedding similarity."""
    sets = list(dict.fromkeys(s for per_set in metrics.values() for s in per_set))
    lines = ["| variant | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    for variant, per_set in metrics.items():
        cells = [_headline(per_set[s]) if s in per_set else "–" for s in sets]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return lines


def _headline(m: dict[str, Any]) -> str:
    if "accuracy" in m:
        return f"{m['accuracy']:.1%} (n={m['n']})"
    similarity = f", similarity {m['similarity']:.2f}" if "similarity" in m else ""
    return f"ROUGE-L {m['rouge_l']:.2f}{similarity} (n={m['n']})"


def _free_text_sample(p: dict[str, Any], metrics: dict[str, Any]) -> list[str]:
    lines = [f"- **Q:** {p['question']}", f"  - reference: {p['reference']}"]
    for variant in metrics:
        if f"{variant}_answer" in p:
            score = p.get(f"{variant}_rouge_l")
            shown = f" (ROUGE-L {score:.2f})" if score is not None else ""
            lines.append(f"  - {variant}{shown}: {p[f'{variant}_answer']}")
    return lines


def _detail_table(metrics: dict[str, Any]) -> list[str]:
    """Every metric per variant and set, rates with their bootstrap 95% interval."""
    rows = [(variant, name, m) for variant, per_set in metrics.items()
            for name, m in per_set.items() if "ci95" in m and "accuracy" in m]
    lines = _free_text_table(metrics)
    if not rows:
        return lines
    lines = [*lines, "", "## Metrics (95% bootstrap intervals)", "",
             "| variant | set | strict accuracy | exact match | containment | token F1 "
             "| hallucination | abstention | answer words |",
             "|---|---|---|---|---|---|---|---|---|"]
    for variant, name, m in rows:
        cells = [_with_ci(m, k) if k in m else "–"
                 for k in ("accuracy", "exact_match", "containment", "token_f1",
                           "hallucination_rate", "abstention_rate")]
        lines.append(f"| {variant} | {name} | " + " | ".join(cells)
                     + f" | {m['mean_answer_words']:.1f} |")
    return lines


def _free_text_table(metrics: dict[str, Any]) -> list[str]:
    """Replies graded against a reference reply, scores with their bootstrap 95% interval."""
    rows = [(variant, name, m) for variant, per_set in metrics.items()
            for name, m in per_set.items() if "rouge_l" in m]
    if not rows:
        return []
    lines = ["", "## Free-text replies against the reference (95% bootstrap intervals)", "",
             "| variant | set | ROUGE-L | similarity | token F1 | abstention | answer words | n |",
             "|---|---|---|---|---|---|---|---|"]
    for variant, name, m in rows:
        cells = [_score_with_ci(m, k) if k in m else "–"
                 for k in ("rouge_l", "similarity", "token_f1")]
        lines.append(f"| {variant} | {name} | " + " | ".join(cells)
                     + f" | {m['abstention_rate']:.1%} | {m['mean_answer_words']:.1f} "
                       f"| {m['n']} |")
    return lines


def _gain_table(metrics: dict[str, Any]) -> list[str]:
    """Each served variant's gain over the base model asked the same way, question by
    question, with its paired bootstrap 95% interval (evaluate/gains.py)."""
    rows = [(variant, name, m["gain"]) for variant, per_set in metrics.items()
            for name, m in per_set.items() if "gain" in m]
    if not rows:
        return []
    lines = ["", "## Gains over the base model asked the same way (paired 95% intervals)", "",
             "| variant | set | vs | strict accuracy | ROUGE-L | similarity | token F1 | n |",
             "|---|---|---|---|---|---|---|---|"]
    for variant, name, gain in rows:
        cells = [signed_with_ci(gain[k], gain["ci95"][k], percent=k == "accuracy")
                 if k in gain else "–" for k in GAIN_SCORES]
        lines.append(f"| {variant} | {name} | {gain['vs']} | " + " | ".join(cells)
                     + f" | {gain['n']} |")
    return lines


def signed_with_ci(value: float, interval: Sequence[float], percent: bool) -> str:
    """A gain and its interval, signed: accuracy in percentage points, scores as they are."""
    lo, hi = interval
    if percent:
        return f"{100 * value:+.1f} pts [{100 * lo:+.1f}, {100 * hi:+.1f}]"
    return f"{value:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def _score_with_ci(m: dict[str, Any], key: str) -> str:
    lo, hi = m["ci95"][key]
    return f"{m[key]:.3f} [{lo:.3f}, {hi:.3f}]"


def _with_ci(m: dict[str, Any], key: str) -> str:
    lo, hi = m["ci95"][key]
    return f"{m[key]:.1%} [{lo:.1%}, {hi:.1%}]"


def _mark(correct: bool) -> str:
    return "correct" if correct else "wrong"


def partial_report(metrics: dict[str, Any], skipped: dict[str, str]) -> str:
    """The report of a run some variant could not answer (a hosted model): accuracy per
    variant and set, and why a variant was skipped."""
    lines = ["# Evaluation report", ""]
    for variant, per_set in metrics.items():
        cells = ", ".join(f"{name} {m['accuracy']:.1%} (n={m['n']})"
                          for name, m in per_set.items())
        lines.append(f"- {variant}: {cells}")
    lines += [f"- {variant}: not evaluated: {reason}" for variant, reason in skipped.items()]
    return "\n".join(lines) + "\n"
