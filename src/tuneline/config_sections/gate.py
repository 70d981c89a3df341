"""Config section for the quality gate: thresholds a tuned model must meet to be registered."""

from __future__ import annotations

from pydantic import Field, field_validator

from tuneline.config_sections.base import _Section

_SETS = "Keys are evaluation set names (recall, heldout, unanswerable, ...)."


class GateConfig(_Section):
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
    max_regression: dict[str, float] = Field(
        default_factory=dict,
        description="How far tuned accuracy may fall below base accuracy per set, e.g. "
        "{general: 0.05}; when the registry's champion was evaluated too, also below the "
        f"champion's. {_SETS}",
    )
    min_win_rate: float | None = Field(
        None, ge=0, le=1,
        description="Lowest LLM-judge win rate of tuned over base (metrics.json judge.win_rate); "
        "unset: not checked.",
    )

    @field_validator("min_accuracy", "max_hallucination", "min_abstention", "max_regression")
    @classmethod
    def _rates(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [f"{name}={rate}" for name, rate in value.items() if not 0 <= rate <= 1]
        if bad:
            raise ValueError(f"rates must be between 0 and 1, got {', '.join(bad)}")
        return value

