"""Replay against forgetting: the base model's own answers to general prompts, mixed into the
training set so that what the domain data teaches (a refusal sentence included) stays in its
domain while everyday behaviour keeps the base model's shape."""

from __future__ import annotations

import json
import math
import random
from importlib import resources
from pathlib import Path
from typing import Any

from tuneline.artifacts import hash_strings, read_jsonl, read_user_jsonl, write_jsonl
from tuneline.config import PipelineConfig
from tuneline.leakage import LeakGuard, message_text

REPLAY_FILE = "replay.jsonl"
PACKAGED_PROMPTS = "replay_data/general_prompts.jsonl"
ASKED_PER_ANSWER = 1.5  # prompts asked per answer still wanted: some run past the budget


def replay_prompts(cfg: PipelineConfig) -> list[dict[str, str]]:
    """The general prompts: the packaged set, or train.replay.prompts_file."""
    path = cfg.train.replay.prompts_file
    if path is None:
        text = resources.files("tuneline.train").joinpath(PACKAGED_PROMPTS).read_text("utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    rows = read_user_jsonl(path, ("prompt",), "train.replay.prompts_file", "a replay prompt")
    return [{"id": row.get("id", f"replay-{number}"), "prompt": row["prompt"]}
            for number, row in rows]


def shuffled_prompts(cfg: PipelineConfig) -> list[dict[str, str]]:
    """The general prompts in the order this run's seed asks them."""
    prompts = replay_prompts(cfg)
    random.Random(cfg.run.seed).shuffle(prompts)
    return prompts


def prompts_hash(cfg: PipelineConfig) -> str:
    """A hash of the replay prompts in use, so that new prompts retrain."""
    return hash_strings(*(f"{p['id']}\t{p['prompt']}" for p in replay_prompts(cfg)))


def replay_count(fraction: float, n_train: int, n_declines: int = 0) -> int:
    """How many replay examples go with `n_train` curated training examples, `n_declines` of
    them declines asked without passages: `fraction` of the examples, and with replay on at
    least one per such decline. A refusal trained on bare questions spreads to every bare
    question unless as many everyday ones are answered (docs/log.md, 2026-12-03 evening)."""
    if fraction == 0:
        return 0
    return max(round(fraction * n_train), n_declines)


def plain_declines(train_file: Path, abstention: str) -> int:
    """Training chats whose answer declines (`abstention` or a common refusal) to a question
    asked without retrieved passages."""
    from tuneline.curate.declines import chat_format, is_decline

    return sum(1 for chat in read_jsonl(train_file)
               if chat_format(chat) == "plain" and is_decline(chat, abstention))


def build_replay(cfg: PipelineConfig, n_train: int, out_path: Path,
                 guard: LeakGuard | None = None, n_declines: int = 0) -> dict[str, int]:
    """Answer general prompts with the base model (greedy) and write the finished answers as
    chat examples to `out_path`; an answer that states an evaluated fact (`guard`) is dropped,
    like any curated example. Returns counts for the manifest (empty when replay is off)."""
    wanted = replay_count(cfg.train.replay.fraction, n_train, n_declines)
    if wanted == 0:
        return {}
    examples, cut_off = _answer_until(cfg, shuffled_prompts(cfg), wanted)
    leaking = [e for e in examples if guard is not None and guard.stated(message_text(e))]
    examples = [e for e in examples if e not in leaking]
    write_jsonl(out_path, examples)
    return {"replay_examples": len(examples), "replay_wanted": wanted,
            "replay_cut_off": cut_off, "dropped:leak:replay": len(leaking)}


def _answer_until(cfg: PipelineConfig, prompts: list[dict[str, str]],
                  wanted: int) -> tuple[list[dict[str, Any]], int]:
    """Answer prompts in rounds until `wanted` answers finished within the budget, or the
    prompts run out; answers cut off by the budget would teach stopping mid-sentence."""
    from tuneline.models.answer_cache import AnswerCache
    from tuneline.models.generation import generate_with_progress
    from tuneline.models.loading import load_for_inference

    loaded: list[Any] = []

    def generate(conversations: list[Any]) -> list[Any]:
        if not loaded:  # only when an answer is not in the cache
            loaded.extend(load_for_inference(cfg.model.base, None, cfg.model.cache_dir,
                                             cfg.train.precision))
        return generate_with_progress(loaded[0], loaded[1], conversations,
                                      cfg.train.replay.max_new_tokens, cfg.evaluate.batch_size,
                                      "replay (base answers)")[0]

    cache = AnswerCache.for_base(cfg.model.base, cfg.model.cache_dir, cfg.train.precision)
    examples: list[dict[str, Any]] = []
    cut_off, start = 0, 0
    while len(examples) < wanted and start < len(prompts):
        chunk = prompts[start:start + math.ceil((wanted - len(examples)) * ASKED_PER_ANSWER)]
        start += len(chunk)
        conversations = [[{"role": "user", "content": p["prompt"]}] for p in chunk]
        generations, _ = cache.answer(conversations, cfg.train.replay.max_new_tokens, generate)
        for prompt, generation in zip(chunk, generations, strict=True):
            if generation.finish_reason != "stop" or not generation.text:
                cut_off += 1
                continue
            examples.append({"replay_id": prompt["id"], "messages": [
                {"role": "user", "content": prompt["prompt"]},
                {"role": "assistant", "content": generation.text}]})
    return examples[:wanted], cut_off
