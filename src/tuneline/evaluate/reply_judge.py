"""Reference-guided grading of free-text replies through an LLM judge: correctness against the
reference reply (correct / partly / incorrect) and, for answers given with retrieved passages,
groundedness (is every claim in the passages). Each question is asked twice, the two texts in
both orders; two verdicts that differ give the lower one, so that a judge that follows the
position cannot raise a score."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tuneline.errors import ConfigError
from tuneline.evaluate.config import JudgeConfig
from tuneline.evaluate.metrics import bootstrap_ci
from tuneline.llm.client import ChatResult, chat_all

_VERDICT = re.compile(r"verdict[\s*_:=\-–—\[\](\"'`]*(correct|partly|incorrect|grounded|"
                      r"ungrounded)\b", re.IGNORECASE)
_REASON = re.compile(r"reason[\s*_]*[:\-–—][\s*_]*(.+)", re.IGNORECASE)
# The points of each verdict: the judged score is their mean.
CORRECTNESS = {"correct": 1.0, "partly": 0.5, "incorrect": 0.0}
GROUNDEDNESS = {"grounded": 1.0, "ungrounded": 0.0}
RUBRICS = {"correctness": ("correctness_rubric.md", ("REFERENCE", "CANDIDATE"), CORRECTNESS),
           "groundedness": ("groundedness_rubric.md", ("PASSAGES", "ANSWER"), GROUNDEDNESS)}


@dataclass
class GradeItem:
    """One reply to grade: the question, what it is checked against (the reference reply, or
    the passages it was given), the reply, and pass-through `meta` (set, variant, id)."""

    question: str
    against: str
    answer: str
    meta: dict[str, Any] = field(default_factory=dict)


def parse_grade(text: str | None, points: dict[str, float]) -> tuple[str, str]:
    """(verdict, reason) of a judge reply; 'invalid' without a verdict `points` knows."""
    if text is None:
        return "invalid", "no reply"
    match = _VERDICT.search(text)
    verdict = match.group(1).lower() if match else None
    if verdict not in points:
        return "invalid", f"no VERDICT line with {'/'.join(points).upper()}: {text[:200]!r}"
    reason = _REASON.search(text)
    return verdict, " ".join((reason.group(1) if reason else "").split())


def combine_grades(first: str, second: str, points: dict[str, float]) -> str:
    """The verdict of both orders: the same twice stays; an invalid one defers to the other;
    two that differ give the one with fewer points."""
    if first == "invalid" or second == "invalid":
        return second if first == "invalid" else first
    return min(first, second, key=lambda v: points[v])


def grade(cfg: JudgeConfig, kind: str, items: list[GradeItem], cache_dir: Path | None = None
          ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Grade every item twice (the texts in both orders): one record per item, and usage.

    Raises:
        ConfigError: no judge endpoint.
        LlmEndpointError: every request failed.
    """
    if cfg.endpoint is None:
        raise ConfigError(["evaluate.judge.endpoint is not set; give it a base_url and model"])
    name, (first, second), points = RUBRICS[kind]
    rubric = (resources.files("tuneline.evaluate") / "prompts" / name).read_text("utf-8")
    endpoint = cfg.endpoint.model_copy(update={"temperature": cfg.temperature,
                                               "max_tokens": cfg.max_tokens})
    conversations = [
        [{"role": "user", "content": _fill(rubric, item.question, labels, texts)}]
        for item in items
        for labels, texts in (((first, second), (item.against, item.answer)),
                              ((second, first), (item.answer, item.against)))
    ]
    results, totals = chat_all(endpoint, conversations, cache_dir, f"judge ({kind})")
    return [_record(item, results[2 * i], results[2 * i + 1], points)
            for i, item in enumerate(items)], totals.to_json()


def summarize_grades(records: list[dict[str, Any]], kind: str, seed: int = 0
                     ) -> dict[str, Any]:
    """Mean points over the valid verdicts with a bootstrap interval, and verdict counts."""
    points = RUBRICS[kind][2]
    valid = [points[r["verdict"]] for r in records if r["verdict"] in points]
    counts = {v: sum(r["verdict"] == v for r in records) for v in [*points, "invalid"]}
    return {"score": sum(valid) / len(valid) if valid else None,
            "ci95": list(bootstrap_ci(valid, seed=seed)) if valid else None,
            "n": len(records), **counts}


def _fill(rubric: str, question: str, labels: tuple[str, str], texts: tuple[str, str]) -> str:
    values = {"question": question, "label_1": labels[0], "label_2": labels[1],
              "text_1": texts[0], "text_2": texts[1]}
    return re.sub(r"\{(question|label_1|label_2|text_1|text_2)\}",
                  lambda m: values[m.group(1)], rubric)


def _record(item: GradeItem, first: ChatResult, second: ChatResult,
            points: dict[str, float]) -> dict[str, Any]:
    (v1, r1), (v2, r2) = (
        parse_grade(r.text, points) if r.error is None else ("invalid", r.error)
        for r in (first, second))
    return {**item.meta, "question": item.question, "answer": item.answer,
            "verdicts": [v1, v2], "reasons": [r1, r2],
            "verdict": combine_grades(v1, v2, points)}
