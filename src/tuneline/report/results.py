"""The one reader of evaluate's metrics.json: typed scores per variant and set, retrieval, judge."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Strict, ValidationError

from tuneline.errors import DataError

METRICS_FILE = "metrics.json"  # in the evaluate artifact folder
JUDGE, RETRIEVAL = "judge", "retrieval"  # the top-level keys that are not variants
# accuracy is strict (the first value claimed is the reference, nothing else of its column is
# named); containment is the lenient "the reference appears somewhere" beside it.
# rouge_l and similarity (embedding cosine to the reference) grade free-text replies: the
# reference sets of held-out conversations; with a judge endpoint, judge_correctness (against
# the reference: 1 correct, 0.5 partly, 0 incorrect) and, for +rag, groundedness.
FACT_RATES = ("accuracy", "exact_match", "containment", "token_f1", "hallucination_rate",
              "abstention_rate", "mean_answer_words")
RATES = (*FACT_RATES, "rouge_l", "similarity", "judge_correctness", "groundedness")


def _unwrap(value: Any) -> Any:
    """A rate reported with its interval, {"value": 0.9, "ci": [...]}, reads as its value."""
    return value["value"] if isinstance(value, dict) and "value" in value else value


# Numbers as JSON writes them: an int is a valid float, a bool or a numeric string is not.
Number = Annotated[float, Strict(), BeforeValidator(_unwrap)]
Count = Annotated[int, Strict()]
Interval = tuple[Annotated[float, Strict()], Annotated[float, Strict()]]


class _Scores(BaseModel):
    """Frozen; keys this reader does not know are ignored, so older readers read newer files."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class GainScores(_Scores):
    """A variant's mean per-question gain over the base model asked the same way (`vs`), on the
    `n` questions both answered, with paired bootstrap 95% intervals (evaluate/gains.py)."""

    vs: str
    n: Count
    accuracy: Number | None = None
    rouge_l: Number | None = None
    similarity: Number | None = None
    token_f1: Number | None = None
    ci95: dict[str, Interval] = {}


class SetScores(_Scores):
    """One variant on one evaluation set: mean per-answer scores (None where the file has none),
    their bootstrap 95% intervals, and the same per category (the items' `template`) and per
    group (their leading key value: an event's discipline)."""

    n: Count | None = None
    accuracy: Number | None = None
    exact_match: Number | None = None
    containment: Number | None = None
    token_f1: Number | None = None
    hallucination_rate: Number | None = None
    abstention_rate: Number | None = None
    mean_answer_words: Number | None = None
    rouge_l: Number | None = None
    similarity: Number | None = None
    judge_correctness: Number | None = None
    groundedness: Number | None = None
    ci95: dict[str, Interval] = {}
    gain: GainScores | None = None
    by_category: dict[str, SetScores] = {}
    by_group: dict[str, SetScores] = {}

    def rate(self, name: str) -> float | None:
        """The score called `name` (one of RATES); None when absent or not a score."""
        return getattr(self, name) if name in RATES else None


class RetrievalScores(_Scores):
    """Retrieval on one set for the +rag variants: whether the gold record was among the top k.

    A set without gold records (unanswerable) has no recall_at_k, mrr or ci95."""

    k: Count | None = None
    n: Count | None = None
    no_passage: Number | None = None  # share of questions left without any passage
    recall_at_k: Number | None = None
    mrr: Number | None = None
    ci95: dict[str, Interval] = {}


class JudgeScores(_Scores):
    """The pairwise LLM judge: challenger vs champion; win_rate is None without a valid verdict."""

    win_rate: Number | None = None
    ci95: Interval | None = None
    wins: Count | None = None
    losses: Count | None = None
    ties: Count | None = None
    invalid: Count | None = None
    n: Count | None = None
    challenger: str = "tuned"
    champion: str = "base"
    judge_model: str | None = None
    base_url: str | None = None


class EvalResults(_Scores):
    """Everything in metrics.json: {variant: {set: SetScores}}, retrieval per set, the judge."""

    variants: dict[str, dict[str, SetScores]] = {}
    retrieval: dict[str, RetrievalScores] = {}
    judge: JudgeScores | None = None

    @property
    def sets(self) -> list[str]:
        """Every set name, in the order the variants first list them."""
        return list(dict.fromkeys(name for per_set in self.variants.values() for name in per_set))

    def scores(self, variant: str, set_name: str) -> SetScores | None:
        """`variant` on `set_name`; None when it was not evaluated there."""
        return self.variants.get(variant, {}).get(set_name)


def read_results(path: Path) -> EvalResults:
    """Read evaluate's metrics.json.

    Args:
        path: the file, or the evaluate artifact folder holding it.

    Raises:
        DataError: the file is missing, is not JSON, or a field has the wrong type; the message
            names the file and every bad field.
    """
    path = Path(path)
    if path.is_dir() or path.suffix != ".json":
        path = path / METRICS_FILE
    if not path.is_file():
        raise DataError(f"{path}: no such file; run `tuneline evaluate` to write it")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}); rerun "
                        "`tuneline evaluate --force` to write it again") from None
    return parse_results(data, str(path))


def parse_results(data: Any, source: str = METRICS_FILE) -> EvalResults:
    """Type metrics.json's content (already parsed); `source` names it in errors.

    Raises:
        DataError: `data` is not an object of variants, or a field has the wrong type.
    """
    if not isinstance(data, Mapping):
        raise DataError(f"{source}: expected a JSON object of variants, got "
                        f"{type(data).__name__}; rerun `tuneline evaluate --force`")
    variants = {k: v for k, v in data.items() if k not in (JUDGE, RETRIEVAL)}
    try:
        return EvalResults.model_validate(
            {"variants": variants, "retrieval": data.get(RETRIEVAL) or {},
             "judge": data.get(JUDGE)})
    except ValidationError as exc:
        problems = "\n".join(f"  - {_field(error['loc'])}: {error['msg']} "
                             f"(got {error['input']!r})" for error in exc.errors())
        raise DataError(f"{source}: {exc.error_count()} malformed field(s):\n{problems}\n"
                        "rerun `tuneline evaluate --force` to write it again") from None


def _field(loc: tuple[int | str, ...]) -> str:
    """The dotted JSON path of a validation error (variants sit at the top of the file)."""
    parts = loc[1:] if loc and loc[0] == "variants" else loc
    return ".".join(str(part) for part in parts)


# --- Repeated runs (run.repeats) ----------------------------------------------------------

REPEATS_FILE = "repeats.json"  # in the run folder: {"seeds": [...], "metrics": {...}}


class Spread(_Scores):
    """One metric over the repeats: the median, the lowest and the highest run."""

    median: Number
    min: Number
    max: Number


class Repeats(_Scores):
    """Every metric of every variant and set over the repeated runs (one per seed)."""

    seeds: list[int] = []
    metrics: dict[str, dict[str, dict[str, Spread]]] = {}

    def medians(self) -> EvalResults:
        """The medians, shaped like metrics.json (what the gate checks with repeats)."""
        return parse_results({variant: {name: {metric: spread.median
                                               for metric, spread in rates.items()}
                                        for name, rates in per_set.items()}
                              for variant, per_set in self.metrics.items()})


def spread_of(runs: list[EvalResults], seeds: list[int]) -> Repeats:
    """Median and min–max of each rate (RATES) per variant and set, over the runs that have it."""
    metrics: dict[str, dict[str, dict[str, Spread]]] = {}
    for variant in dict.fromkeys(v for run in runs for v in run.variants):
        for name in dict.fromkeys(s for run in runs for s in run.variants.get(variant, {})):
            for metric in RATES:
                values = sorted(value for run in runs
                                if (scores := run.scores(variant, name)) is not None
                                and (value := scores.rate(metric)) is not None)
                if values:
                    metrics.setdefault(variant, {}).setdefault(name, {})[metric] = Spread(
                        median=statistics.median(values), min=values[0], max=values[-1])
    return Repeats(seeds=seeds, metrics=metrics)


def read_repeats(run_dir: Path) -> Repeats | None:
    """`<run>/repeats.json`, or None when the run was not repeated."""
    path = Path(run_dir) / REPEATS_FILE
    if not path.is_file():
        return None
    try:
        return Repeats.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise DataError(f"{path}: malformed ({exc.error_count()} field(s)); rerun the "
                        "pipeline to write it again") from None
