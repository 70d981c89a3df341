"""Pairwise LLM-as-judge: challenger vs champion in both answer orders, verdicts, a win rate."""

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

PLACEHOLDERS = ("question", "reference", "answer_a", "answer_b")
_PLACEHOLDER_RE = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
# "VERDICT: A", "**Verdict:** b", "Verdict - TIE", "verdict: [[A]]", "Verdict: Answer B",
# "verdict: a tie" (the optional word keeps the article from reading as answer A).
_VERDICT_RE = re.compile(
    r"verdict[\s*_:=\-–—\[\](\"'`]*(?:(?:answer|an?)[ \t]+)?(tie|a|b)\b", re.IGNORECASE
)
_REASON_RE = re.compile(r"reason[\s*_]*[:\-–—][\s*_]*(.+)", re.IGNORECASE)
_TRIM = " \t\r\n*_[]()'\"`:;,.-–—"
_POINTS = {"win": 1.0, "tie": 0.5, "loss": 0.0}


@dataclass
class JudgePair:
    """One question with the two answers to compare; `meta` (set, category...) is passed through."""

    question: str
    reference: str
    challenger_answer: str
    champion_answer: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class JudgeOutcome:
    """The win rate (`summary`), one record per pair (`judgments`) and the request totals."""

    summary: dict[str, Any]
    judgments: list[dict[str, Any]]
    usage: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"summary": self.summary, "usage": self.usage, "judgments": self.judgments}


def load_rubric(path: Path | None) -> str:
    """The rubric prompt: the file at `path`, else the packaged `prompts/judge_rubric.md`.

    Raises:
        ConfigError: the file is missing or lacks a placeholder.
    """
    if path is None:
        packaged = resources.files("tuneline.evaluate") / "prompts" / "judge_rubric.md"
        return packaged.read_text(encoding="utf-8")
    if not path.is_file():
        raise ConfigError([f"evaluate.judge.rubric: no such file {path}"])
    text = path.read_text(encoding="utf-8")
    missing = [f"{{{name}}}" for name in PLACEHOLDERS if f"{{{name}}}" not in text]
    if missing:
        raise ConfigError([f"evaluate.judge.rubric: {path} lacks {', '.join(missing)}; add them "
                           "where the question, reference and the two answers go"])
    return text


def fill_rubric(rubric: str, question: str, reference: str, answer_a: str, answer_b: str) -> str:
    """The rubric with its placeholders filled in one pass (braces in the texts are kept)."""
    values = {"question": question, "reference": reference,
              "answer_a": answer_a, "answer_b": answer_b}
    return _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], rubric)


def parse_verdict(text: str | None) -> tuple[str, str]:
    """Read a judge reply: ("A" | "B" | "tie" | "invalid", reason).

    Tolerates case, markdown bold, "Verdict - A" and a verdict on any line; the first one found
    counts. Without a REASON line, the text after the verdict is the reason.
    """
    if text is None:
        return "invalid", "no reply"
    match = _VERDICT_RE.search(text)
    if match is None:
        return "invalid", f"no VERDICT line in reply: {_squash(text)[:200]!r}"
    verdict = match.group(1).upper()
    reason = _REASON_RE.search(text)
    rest = reason.group(1).strip("*_ ") if reason else text[match.end():].strip(_TRIM)
    return ("tie" if verdict == "TIE" else verdict), _squash(rest)


def combine(first: str, second: str) -> str:
    """Merge the verdicts of both orders into the challenger's outcome.

    `first` was given with the challenger shown as A, `second` with it shown as B. Each becomes
    win/loss/tie/invalid for the challenger, then: the same outcome twice stays; win + loss means
    the judge followed the position, so it is a tie; win or loss + tie keeps the win or loss; an
    invalid one defers to the other ("invalid" when both are).
    """
    a, b = _challenger_view(first, "A"), _challenger_view(second, "B")
    if a == "invalid" or b == "invalid":
        return b if a == "invalid" else a
    if a == b:
        return a
    if "tie" in (a, b):
        return b if a == "tie" else a
    return "tie"


def win_rate(outcomes: list[str], seed: int = 0, n_boot: int = 2000) -> dict[str, Any]:
    """(wins + ties / 2) / valid outcomes, with a seeded percentile bootstrap 95% interval.

    `win_rate` and `ci95` are None when no outcome is valid; `n` counts every outcome.
    """
    counts = {k: outcomes.count(k) for k in ("win", "loss", "tie", "invalid")}
    points = [_POINTS[o] for o in outcomes if o in _POINTS]
    rate = sum(points) / len(points) if points else None
    ci = list(bootstrap_ci(points, n_resamples=n_boot, seed=seed)) if points else None
    return {"win_rate": rate, "ci95": ci, "wins": counts["win"], "losses": counts["loss"],
            "ties": counts["tie"], "invalid": counts["invalid"], "n": len(outcomes)}


def judge_pairs(cfg: JudgeConfig, pairs: list[JudgePair], challenger: str = "tuned",
                champion: str = "base", cache_dir: Path | None = None) -> JudgeOutcome:
    """Judge each pair twice (challenger shown as A, then as B) through `cfg.endpoint`.

    Args:
        cfg: the judge section; its temperature and max_tokens replace the endpoint's.
        pairs: the questions and both answers; the first `cfg.max_pairs` are judged.
        challenger: name of the model under test, recorded in the summary.
        champion: name of the model it is compared with.
        cache_dir: response cache folder (None: no cache).

    Raises:
        ConfigError: the judge has no endpoint.
        LlmEndpointError: every request failed, or the endpoint cannot be reached.
    """
    if cfg.endpoint is None:
        raise ConfigError(["evaluate.judge.endpoint is not set; give it a base_url and model"])
    endpoint = cfg.endpoint.model_copy(
        update={"temperature": cfg.temperature, "max_tokens": cfg.max_tokens})
    pairs = pairs[:cfg.max_pairs] if cfg.max_pairs is not None else pairs
    rubric = load_rubric(cfg.rubric)
    conversations = [
        [{"role": "user", "content": fill_rubric(rubric, p.question, p.reference, a, b)}]
        for p in pairs
        for a, b in ((p.challenger_answer, p.champion_answer),
                     (p.champion_answer, p.challenger_answer))
    ]
    results, totals = chat_all(endpoint, conversations, cache_dir, "judge")
    usage = totals.to_json()
    judgments = [_judgment(p, results[2 * i], results[2 * i + 1]) for i, p in enumerate(pairs)]
    summary = {**win_rate([j["verdict"] for j in judgments]), "challenger": challenger,
               "champion": champion, "judge_model": endpoint.model, "base_url": endpoint.base_url}
    return JudgeOutcome(summary=summary, judgments=judgments, usage=usage)


def _judgment(pair: JudgePair, first: ChatResult, second: ChatResult) -> dict[str, Any]:
    """The record of one pair: both raw verdicts with their reasons, and the combined one."""
    (v1, r1), (v2, r2) = _read(first), _read(second)
    return {"question": pair.question, "reference": pair.reference,
            "challenger_answer": pair.challenger_answer,
            "champion_answer": pair.champion_answer, "meta": pair.meta,
            "verdict_challenger_first": v1, "verdict_challenger_second": v2,
            "reasons": [r1, r2], "verdict": combine(v1, v2)}


def _read(result: ChatResult) -> tuple[str, str]:
    if result.error is not None:
        return "invalid", f"request failed: {result.error}"
    return parse_verdict(result.text)


def _challenger_view(verdict: str, challenger_label: str) -> str:
    if verdict in ("A", "B"):
        return "win" if verdict == challenger_label else "loss"
    return "tie" if verdict == "tie" else "invalid"


def _squash(text: str) -> str:
    return " ".join(text.split())
