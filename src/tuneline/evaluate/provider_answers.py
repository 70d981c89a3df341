"""A fine-tuning provider's models answering evaluation's closed-book questions."""

from __future__ import annotations

from typing import Any

from tuneline.artifacts import Artifact
from tuneline.config import PipelineConfig
from tuneline.evaluate.withheld import closed_book_positions, placed
from tuneline.train.managed.common import read_remote_model


def answer_with_provider(
    cfg: PipelineConfig, trained: Artifact, items: list[dict[str, Any]],
    variants: tuple[str, ...],
) -> tuple[dict[str, list[str | None]], dict[str, Any]]:
    """The variants ('base', 'tuned') through the provider: its base model id, and the
    fine-tuned one.

    A variant the provider cannot answer (Bedrock without Converse access to the custom
    model) is left out of the metrics, with the reason under details["skipped"].
    """
    from tuneline.train.managed.remote import answer_remote as ask_provider

    remote = read_remote_model(trained.path) or {}
    closed = closed_book_positions(items)
    questions = [items[i]["question"] for i in closed]
    answers: dict[str, list[str | None]] = {}
    details: dict[str, Any] = {"provider": remote["provider"], "models": {}, "skipped": {}}
    for variant in variants:
        result = ask_provider(cfg, remote, variant, questions)
        details["models"][variant] = result.model_id
        if result.answers is None:
            details["skipped"][variant] = result.skipped
        else:
            answers[variant] = placed(result.answers, closed, len(items))
    return answers, details
