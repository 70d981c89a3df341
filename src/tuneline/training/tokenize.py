"""Tokenize chat examples with loss only on the assistant answer and its end-of-turn token."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from tuneline._optional import require
from tuneline.errors import DataError

IGNORE_INDEX = -100


@dataclass
class TokenizedExample:
    """Token ids and labels (-100 where no loss is taken)."""

    input_ids: list[int]
    labels: list[int]


def tokenize_chat(tokenizer: Any, messages: list[dict[str, str]], max_len: int) -> TokenizedExample:
    """Tokenize a conversation whose last message is the assistant answer to learn.

    The prompt (everything up to the assistant header) is masked out. Labels cover the answer
    and the end-of-turn token, so the model learns to stop; text the template adds after that
    token (e.g. a newline) is dropped.
    """
    if not messages or messages[-1]["role"] != "assistant":
        raise DataError("a training example must end with an assistant message")
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False,
                                           add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):
        raise DataError("the chat template renders the prompt differently inside the full chat")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(full[len(prompt):], add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    end = answer_ids.index(eos) + 1 if eos in answer_ids else None
    answer_ids = answer_ids[:end] if end else [*answer_ids, eos]
    input_ids = (prompt_ids + answer_ids)[:max_len]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + answer_ids)[:max_len]
    return TokenizedExample(input_ids, labels)


def length_grouped_batches(
    examples: list[TokenizedExample], batch_size: int, rng: random.Random
) -> list[list[TokenizedExample]]:
    """Batches of similar length (little padding), in random order."""
    shuffled = examples[:]
    rng.shuffle(shuffled)
    # Sort within windows of 50 batches: similar lengths together, still a different mix per epoch.
    window = batch_size * 50
    batches = []
    for start in range(0, len(shuffled), window):
        chunk = sorted(shuffled[start : start + window], key=lambda e: len(e.input_ids))
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(batch: list[TokenizedExample], pad_id: int) -> dict[str, Any]:
    """Right-pad a batch into tensors; padding is masked in attention and labels."""
    torch = require("torch")
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, example in enumerate(batch):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}
