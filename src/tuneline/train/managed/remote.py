"""Answers from a provider-hosted model for evaluate: OpenAI chat completions, Bedrock Converse."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from tuneline.config import PipelineConfig
from tuneline.errors import ManagedJobError

MAX_CONCURRENCY = 8


@dataclass
class RemoteAnswers:
    """A variant's answers, or why the provider could not be asked (answers is None)."""

    model_id: str
    answers: list[str] | None
    skipped: str | None = None


def answer_remote(
    cfg: PipelineConfig, remote: dict[str, Any], variant: str, questions: list[str]
) -> RemoteAnswers:
    """Greedy answers of the tuned model ('tuned') or of its base model ('base').

    OpenAI: chat completions at the endpoint the job ran on, with the fine-tuned model id (or
    the base model id); any error is raised. Bedrock: Converse with the provisioned model (or
    the custom model) or the base model id; when the very first request is refused (a custom
    model without provisioned throughput, an endpoint without Converse), the variant is
    skipped and the reason returned instead.
    """
    if remote["provider"] == "openai":
        return _answer_openai(cfg, remote, variant, questions)
    if remote["provider"] == "bedrock":
        return _answer_bedrock(cfg, remote, variant, questions)
    raise ManagedJobError(f"remote_model.json names an unknown provider {remote['provider']!r}")


def _answer_openai(
    cfg: PipelineConfig, remote: dict[str, Any], variant: str, questions: list[str]
) -> RemoteAnswers:
    from tuneline.train.managed.openai_job import openai_client, provider_call

    oc = cfg.train.openai.model_copy(update={"base_url": remote["endpoint"]})
    client = openai_client(oc)
    model = remote["model_id"] if variant == "tuned" else remote["base_model"]

    def ask(question: str) -> str:
        with provider_call(client, f"answering with {model}"):
            response = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": question}],
                max_tokens=cfg.evaluate.max_new_tokens, temperature=0.0,
            )
        return response.choices[0].message.content or ""

    return RemoteAnswers(model, _map(ask, questions, cfg, f"evaluate {variant} (openai)"))


def _answer_bedrock(
    cfg: PipelineConfig, remote: dict[str, Any], variant: str, questions: list[str]
) -> RemoteAnswers:
    from tuneline.train.managed.bedrock_job import aws_session, converse

    bc = cfg.train.bedrock.model_copy(update={"region": remote["region"]})
    runtime = aws_session(bc).client("bedrock-runtime")
    model = remote["invoke_model_id"] if variant == "tuned" else remote["base_model"]

    def ask(question: str) -> str:
        return converse(runtime, model, question, cfg.evaluate.max_new_tokens)

    if not questions:
        return RemoteAnswers(model, [])
    try:
        first = ask(questions[0])
    except NotImplementedError as exc:  # moto implements no Converse
        return RemoteAnswers(model, None, f"bedrock-runtime Converse is not implemented by "
                                          f"this endpoint ({exc})")
    except ManagedJobError as exc:
        return RemoteAnswers(model, None, str(exc))
    rest = _map(ask, questions[1:], cfg, f"evaluate {variant} (bedrock)")
    return RemoteAnswers(model, [first, *rest])


def _map(
    ask: Callable[[str], str], questions: list[str], cfg: PipelineConfig, desc: str
) -> list[str]:
    """Ask every question, a few at a time (evaluate.batch_size, at most 8), in order."""
    workers = max(1, min(MAX_CONCURRENCY, cfg.evaluate.batch_size))
    with ThreadPoolExecutor(workers) as pool, \
            tqdm(total=len(questions), desc=desc, unit="q", dynamic_ncols=True) as bar:
        answers = []
        for answer in pool.map(ask, questions):
            answers.append(answer)
            bar.update(1)
    return answers
