"""Config sections for the evaluate stage: evaluation, the LLM judge, the quality gate."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from tuneline.config_base import Section
from tuneline.llm.config import LlmEndpointConfig

_SETS = "Keys are evaluation set names (recall, heldout, unanswerable, ...)."
# Scores where higher is better, which min_score and min_gain may name.
GATED_SCORES = ("accuracy", "exact_match", "containment", "token_f1", "rouge_l", "similarity",
                "judge_correctness", "groundedness")


class JudgeConfig(Section):
    endpoint: LlmEndpointConfig | None = Field(
        None,
        description="The OpenAI-compatible endpoint of the judge model (any server: OpenAI, "
        "vLLM, Ollama, `tuneline serve`); unset: the judge is off.",
    )
    max_pairs: int | None = Field(
        None, ge=1,
        description="Judge at most this many questions (two requests each, one per answer "
        "order); unset: all of them.",
    )
    temperature: float = Field(
        0.0, ge=0, le=2,
        description="Judge sampling temperature; replaces endpoint.temperature (0: repeatable).",
    )
    max_tokens: int = Field(
        256, ge=1,
        description="Completion budget of each verdict; replaces endpoint.max_tokens.",
    )
    rubric: Path | None = Field(
        None,
        description="A rubric prompt file replacing the packaged one; it must keep the "
        "{question} {reference} {answer_a} {answer_b} placeholders and ask for "
        "'VERDICT: A|B|TIE' then 'REASON: ...'.",
    )


class EvaluateConfig(Section):
    max_new_tokens: int = Field(48, ge=1, description="Generation budget per answer.")
    cache_base_answers: bool = Field(
        True, description="Keep the base model's answers (base and base+rag; greedy) in "
        "<cache>/answers.sqlite, keyed by the model's content hash, precision, decoding rule, "
        "token budget and prompt: a rerun after a training change re-answers only the tuned "
        "variants.",
    )
    drift_baseline: bool = Field(
        True, description="Write drift-baseline/ (embeddings of the training questions with "
        "index.embedder, their clusters, and the served variant's abstention, no-passage and "
        "answer-length rates); track and register keep it with the version and `tuneline "
        "monitor --version` compares live traffic with it.",
    )
    reference_max_new_tokens: int = Field(
        160, ge=1, description="Generation budget per reply to a held-out conversation (the "
        "reference set: free text, graded against the reference reply).",
    )
    batch_size: int = Field(
        64, ge=1, description="Most prompts generated together: in order of prompt length, "
        "at most 8,192 prompt tokens a batch (padding counted), so long prompts go fewer at a "
        "time; a row leaves its batch when its answer ends. Replay's base answers use it too.",
    )
    max_examples: int | None = Field(
        None, ge=1, description="Evaluate at most this many questions per set."
    )
    general_probe: bool = Field(
        True, description="Also ask the packaged `general` set (everyday knowledge and "
        "instructions) to detect forgetting; gate it with gate.max_regression.general.",
    )
    general_probe_file: Path | None = Field(
        None, description="A JSONL probe set replacing the packaged one (fields: question, "
        "reference, fact, optional aliases and template).",
    )
    judge: JudgeConfig = Field(
        default_factory=JudgeConfig, description="Pairwise LLM-as-judge of tuned vs base (or "
        "vs the champion) through any OpenAI-compatible endpoint; off until endpoint is set.",
    )
    rag: bool = Field(
        True, description="With index.enabled, also answer the curated sets with retrieved "
        "passages in the prompt (variants base+rag and tuned+rag) and score the retrieval "
        "(recall@k and MRR of the gold record).",
    )
    split: Literal["test", "dev"] = Field(
        "test", description="Which curated sets to answer: 'test' (the verdict: the report "
        "and the gate; score it once per run) or 'dev' (eval/dev/, disjoint facts: for "
        "choosing knobs in sweeps and benches).",
    )
    compare_champion: bool = Field(
        True, description="When the registry has a champion of register.name with local "
        "weights, answer with it too (variant 'champion'): the gate's max_regression then "
        "also holds against it, and the judge compares tuned with it.",
    )


class Thresholds(Section):
    """Bounds on one variant's rates and scores per evaluation set."""

    min_accuracy: dict[str, float] = Field(
        default_factory=dict,
        description=f"Lowest tuned accuracy allowed per set, e.g. {{recall: 0.5}}. {_SETS}",
    )
    max_hallucination: dict[str, float] = Field(
        default_factory=dict,
        description="Highest tuned hallucination_rate (a confident wrong answer) allowed per "
        f"set, e.g. {{unanswerable: 0.3}}. {_SETS}",
    )
    min_abstention: dict[str, float] = Field(
        default_factory=dict,
        description="Lowest tuned abstention_rate (the model declines) allowed per set, e.g. "
        f"{{unanswerable: 0.5}}. {_SETS}",
    )
    min_score: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Lowest tuned value of any score per set, e.g. {reference: {rouge_l: 0.2, "
        "similarity: 0.6}} for held-out conversations (scores: rouge_l, similarity, token_f1, "
        "judge_correctness, groundedness (the judge's; tuned+rag), accuracy, exact_match, "
        "containment). Keys are evaluation set names.",
    )

    # GateConfig's max_regression and min_gain are checked alike (check_fields: not all here).
    @field_validator("min_accuracy", "max_hallucination", "min_abstention", "max_regression",
                     check_fields=False)
    @classmethod
    def _rates(cls, value: dict[str, float]) -> dict[str, float]:
        return _checked_rates(value)

    @field_validator("min_score", "min_gain", check_fields=False)
    @classmethod
    def _scores(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        return _checked_scores(value)


class GateConfig(Thresholds):
    max_regression: dict[str, float] = Field(
        default_factory=dict,
        description="How far tuned accuracy may fall below base accuracy per set, e.g. "
        "{general: 0.05}; when the registry's champion was evaluated too, also below the "
        f"champion's. {_SETS}",
    )
    variants: list[str] | None = Field(
        None, description="Variants the thresholds apply to; unset: the ones that are served, "
        "tuned and, when evaluate answered with retrieval, tuned+rag (on the sets it answers); "
        "with serve.retrieval: always, tuned+rag alone and no max_regression.",
    )
    retrieval: Thresholds = Field(
        default_factory=Thresholds,
        description="Further bounds for tuned+rag alone (the served variant that reads "
        "passages), e.g. {min_accuracy: {heldout: 0.9, variant_name: 0.9}}: facts it never "
        "trained on and names asked another way must be read from the passages, where the "
        "closed-book model cannot be held to that. A run without tuned+rag fails them.",
    )
    min_gain: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="How far each served variant must be above the base model asked the same "
        "way, per set and score, e.g. {recall: {accuracy: 0.1}}: tuned against base, and "
        "tuned+rag against base+rag on the sets both answered. Tuning must teach what the base "
        "model does not already say (or read).",
    )
    min_win_rate: float | None = Field(
        None, ge=0, le=1,
        description="Lowest LLM-judge win rate of tuned over base (metrics.json judge.win_rate); "
        "unset: not checked.",
    )


def _checked_rates(value: dict[str, float]) -> dict[str, float]:
    bad = [f"{name}={rate}" for name, rate in value.items() if not 0 <= rate <= 1]
    if bad:
        raise ValueError(f"rates must be between 0 and 1, got {', '.join(bad)}")
    return value


def _checked_scores(value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    problems = [f"{name}.{metric}: not a score (scores: {', '.join(GATED_SCORES)})"
                for name, per_set in value.items() for metric in per_set
                if metric not in GATED_SCORES]
    problems += [f"{name}.{metric}={bound}: must be between 0 and 1"
                 for name, per_set in value.items() for metric, bound in per_set.items()
                 if not 0 <= bound <= 1]
    if problems:
        raise ValueError("; ".join(problems))
    return value
