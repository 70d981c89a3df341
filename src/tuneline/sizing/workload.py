"""What a run will compute at its configured size, read from curate's output: the tokens train
computes, the replay prompts and evaluate's batches that the base model must answer (what the
answer cache holds costs nothing), and how long the tuned model's answers run."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tuneline.artifacts import Artifact, read_jsonl
from tuneline.config import PipelineConfig
from tuneline.models.generation import prefill_tokens, shared_prefix
from tuneline.train.budget import step_tokens
from tuneline.train.tokenize import IGNORE_INDEX, TokenizedExample, shared_prompt_prefix

REPLAY_TOKENS = 100  # a replay example: an everyday prompt and the base model's answer


@dataclass(frozen=True)
class GenerationBatch:
    """One batch of generation as evaluate runs it: rows padded to the longest prompt, the
    prompt prefix every row shares run once, then up to `new_tokens` decode steps."""

    rows: int
    width: int  # the longest prompt of the batch, in tokens
    shared: int  # leading tokens every row shares (models.generation.shared_prefix)
    new_tokens: int
    # what the prompt pass computes when it runs in parts (models.generation.prefill_tokens)
    prefill_tokens: int | None = None

    @property
    def prompt_tokens(self) -> int:
        """Tokens the prefill computes: the shared prefix once, every row's rest padded."""
        if self.prefill_tokens is not None:
            return self.prefill_tokens
        return self.shared + self.rows * (self.width - self.shared)


@dataclass
class Workload:
    """The work of train, replay and evaluate at the configured size (scale 1). Base-model
    answers already in the answer cache (models.answer_cache) cost nothing and are left out."""

    train_tokens: float  # padded, every epoch, replay examples included
    replay_prompts: int  # replay prompts whose base answers must be generated
    eval_batches: list[GenerationBatch]  # evaluate's, on the curated sets
    fixed_batches: list[GenerationBatch]  # the general probe's: it does not scale with the data


def measure_workload(cfg: PipelineConfig, curated: Artifact) -> Workload:
    """Tokens to train and prompts to answer at the configured size, from curate's output."""
    from tuneline.curate.declines import chat_format
    from tuneline.evaluate.stage import GENERAL, evaluation_items, retrieval_conversations
    from tuneline.evaluate.withheld import closed_book_positions
    from tuneline.models.loading import load_tokenizer
    from tuneline.rag.prompt import ANSWER_STOPS
    from tuneline.rag.retrieve import no_passage_reply
    from tuneline.train.replay import plain_declines, replay_count
    from tuneline.train.tokenize import tokenize_chat

    tokenizer = load_tokenizer(cfg.model.base, cfg.model.cache_dir)
    chats = read_jsonl(curated.path / "train.jsonl")
    examples = [tokenize_chat(tokenizer, chat["messages"], cfg.train.max_seq_len)
                for chat in chats]
    replay = replay_count(cfg.train.replay.fraction, len(chats), plain_declines(
        curated.path / "train.jsonl", cfg.synthesize.unanswerable.answer))
    examples += [_replay_stand_in([e for e, chat in zip(examples, chats, strict=True)
                                   if chat_format(chat) == "plain"])] * replay
    share = (cfg.train.share_prompt_prefix and not cfg.train.gradient_checkpointing
             and not cfg.train.packing)
    answer_tokens = _longest_answers(examples, [chat_format(chat) for chat in chats])
    cache = _base_answer_cache(cfg)
    evaluation = _Evaluation(cfg, tokenizer, cache)
    items = evaluation_items(cfg, curated)
    scalable = [item for item in items if item["set"] != GENERAL]
    batches = evaluation.closed_book([scalable[i] for i in closed_book_positions(scalable)],
                                     answer_tokens.get("plain"))
    if cfg.index.enabled and cfg.evaluate.rag and scalable:
        chosen, hits, asked = retrieval_conversations(cfg, scalable)
        declined = no_passage_reply(cfg) is not None  # no passage: no generation
        kept = [n for n, found in enumerate(hits) if found or not declined]
        batches += evaluation.work([asked[n] for n in kept],
                                   [scalable[chosen[n]] for n in kept], answer_tokens.get("rag"),
                                   ANSWER_STOPS)
    return Workload(
        train_tokens=_computed_tokens(examples, cfg.train.batch_size, share,
                                      cfg.train.max_micro_batch_tokens)
        * _epochs(cfg, len(examples)),
        replay_prompts=_replay_prompts_to_answer(cfg, replay, cache),
        eval_batches=batches,
        fixed_batches=evaluation.closed_book(
            [item for item in items if item["set"] == GENERAL], None))


def _base_answer_cache(cfg: PipelineConfig) -> Any:
    from tuneline.models.answer_cache import AnswerCache

    return AnswerCache.for_base(cfg.model.base, cfg.model.cache_dir, cfg.train.precision)


def _replay_prompts_to_answer(cfg: PipelineConfig, wanted: int, cache: Any) -> int:
    """Replay prompts the base model must answer for `wanted` examples: those of the first
    round of asking (train.replay) whose answers are not cached."""
    from tuneline.train.replay import ASKED_PER_ANSWER, shuffled_prompts

    if not wanted:
        return 0
    asked = shuffled_prompts(cfg)[:math.ceil(wanted * ASKED_PER_ANSWER)]
    return len(cache.missing(
        [[{"role": "user", "content": p["prompt"]}] for p in asked],
        cfg.train.replay.max_new_tokens))


def _longest_answers(examples: Sequence[TokenizedExample], formats: Sequence[str]
                     ) -> dict[str, int]:
    """The longest trained answer of each chat format ('plain', 'rag'), in tokens: a tuned
    model's answers end about there, so a batch of them stops early."""
    longest: dict[str, int] = {}
    for example, kind in zip(examples, formats, strict=False):  # replay stand-ins: no format
        key = "plain" if kind == "plain" else "rag"
        longest[key] = max(longest.get(key, 0), example.n_targets)
    return longest


class _Evaluation:
    """evaluate's generation work, batched as evaluate batches it: each token budget apart,
    in models.generation's batches, a batch's shared prompt prefix once. The base model
    answers what the answer cache lacks, for the whole budget; the tuned model answers
    everything and stops after its longest trained answer (+1 for the end token). Rows that
    end early leave their batch; the projection counts every row to the batch's last step,
    which overstates the base model's short answers."""

    def __init__(self, cfg: PipelineConfig, tokenizer: Any, cache: Any) -> None:
        self.cfg, self.tokenizer = cfg, tokenizer
        self.cache = cache if cfg.evaluate.cache_base_answers else None

    def closed_book(self, items: Sequence[dict[str, Any]], answer_tokens: int | None
                    ) -> list[GenerationBatch]:
        from tuneline.evaluate.stage import prompt_messages

        return self.work([prompt_messages(item) for item in items], items, answer_tokens)

    def work(self, conversations: Sequence[Sequence[dict[str, str]]],
             items: Sequence[dict[str, Any]], answer_tokens: int | None,
             stops: Sequence[str] = ()) -> list[GenerationBatch]:
        """The base and tuned variants' batches on `conversations` (answered with `stops`)."""
        from tuneline.evaluate.stage import answer_budget

        budgets = [answer_budget(self.cfg, item) for item in items]
        batches: list[GenerationBatch] = []
        for budget in sorted(set(budgets)):
            asked = [c for c, b in zip(conversations, budgets, strict=True) if b == budget]
            base = (asked if self.cache is None
                    else [asked[i] for i in self.cache.missing(asked, budget, stops)])
            tuned_steps = budget if answer_tokens is None else min(budget, answer_tokens + 1)
            for rows, steps in ((base, budget), (asked, tuned_steps)):
                batches += [_generation_batch(batch, steps) for batch in self._batches(rows)]
        return batches

    def _batches(self, conversations: Sequence[Sequence[dict[str, str]]]) -> list[list[list[int]]]:
        from tuneline.models.generation import generation_batches, prompt_ids

        rows = [prompt_ids(self.tokenizer, c) for c in conversations]
        return [[rows[i] for i in batch]  # in order of length, as generation takes them
                for batch in generation_batches(rows, self.cfg.evaluate.batch_size)]


def _generation_batch(rows: Sequence[Sequence[int]], steps: int) -> GenerationBatch:
    """A batch of prompt ids, in order of length, as generation runs it for `steps` steps."""
    shared = shared_prefix(rows)
    return GenerationBatch(rows=len(rows), width=len(rows[-1]), shared=shared, new_tokens=steps,
                           prefill_tokens=prefill_tokens(rows, shared))


def _replay_stand_in(plain: Sequence[TokenizedExample]) -> TokenizedExample:
    """A replay example as train will see it, before replay's answers exist: REPLAY_TOKENS
    tokens, starting with the prompt prefix that chats without passages share."""
    prefix = plain[0].input_ids[:shared_prompt_prefix(plain)] if plain else []
    filler = [0] * (REPLAY_TOKENS - len(prefix))
    return TokenizedExample(input_ids=[*prefix, *filler],
                            labels=[IGNORE_INDEX] * len(prefix) + filler)


def _computed_tokens(examples: Sequence[TokenizedExample], batch_size: int,
                     share_prefix: bool, max_micro_batch_tokens: int | None = None) -> int:
    """Tokens one epoch computes when rows of similar length are batched together: each
    batch padded to its longest row, its shared prompt prefix once when train shares it."""
    ordered = sorted(examples, key=lambda example: len(example.input_ids))
    return sum(step_tokens(ordered[i:i + batch_size], share_prefix, max_micro_batch_tokens)
               for i in range(0, len(ordered), batch_size))


def _epochs(cfg: PipelineConfig, examples: int) -> float:
    if cfg.train.max_steps:  # the loop trains max_steps whenever it is set
        return cfg.train.max_steps * cfg.train.batch_size / max(examples, 1)
    return float(cfg.train.epochs)
