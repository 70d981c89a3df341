"""Tokenize chats with loss only on assistant turns; batch them padded or packed padding-free."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tuneline._optional import require
from tuneline.errors import DataError
from tuneline.models.prefix import usable_prefix_length

IGNORE_INDEX = -100


@dataclass
class TokenizedExample:
    """Token ids and labels (-100 where no loss is taken)."""

    input_ids: list[int]
    labels: list[int]
    # Answer tokens cut off by max_len: such an example would teach answers that never end.
    cut_targets: int = 0
    # Its row in curate's train.jsonl (1-based); None for an example from elsewhere (replay).
    row: int | None = None

    @property
    def n_targets(self) -> int:
        """Positions that carry loss: labels shifted by one, as the causal LM loss sees them."""
        return sum(1 for label in self.labels[1:] if label != IGNORE_INDEX)


def tokenize_chat(tokenizer: Any, messages: list[dict[str, str]], max_len: int) -> TokenizedExample:
    """Tokenize a conversation through the model's own chat template, learning every assistant turn.

    Everything the template renders before an assistant turn (system, user, the assistant header)
    is masked out. Labels cover each answer and its end-of-turn token, so the model learns to
    stop; text the template adds after that token (e.g. a newline) is masked too.
    """
    if not messages or messages[-1]["role"] != "assistant":
        raise DataError("a training example must end with an assistant message")
    input_ids: list[int] = []
    labels: list[int] = []
    rendered = ""
    for turn, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = tokenizer.apply_chat_template(messages[:turn], tokenize=False,
                                               add_generation_prompt=True)
        full = tokenizer.apply_chat_template(messages[: turn + 1], tokenize=False)
        if not prompt.startswith(rendered) or not full.startswith(prompt):
            raise DataError("the chat template renders earlier turns differently inside the "
                            "longer chat; cannot mask the prompt reliably")
        context_ids = _ids(tokenizer, prompt[len(rendered):])
        answer_text = full[len(prompt):]
        answer_ids = _answer_ids(tokenizer, answer_text)
        input_ids += context_ids + answer_ids
        labels += [IGNORE_INDEX] * len(context_ids) + answer_ids
        # What follows the end-of-turn token (a newline) belongs to the next turn's context.
        end = answer_text.find(tokenizer.eos_token) if tokenizer.eos_token else -1
        rendered = prompt + (answer_text[: end + len(tokenizer.eos_token)] if end >= 0
                             else answer_text)
    cut = sum(1 for label in labels[max_len:] if label != IGNORE_INDEX)
    return TokenizedExample(input_ids[:max_len], labels[:max_len], cut)


def _ids(tokenizer: Any, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def _answer_ids(tokenizer: Any, answer_text: str) -> list[int]:
    """The answer's ids up to and including the end-of-turn token (appended when missing)."""
    ids = _ids(tokenizer, answer_text)
    eos = tokenizer.eos_token_id
    return ids[: ids.index(eos) + 1] if eos in ids else [*ids, eos]


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


def shared_prompt_prefix(batch: Sequence[TokenizedExample]) -> int:
    """How many leading tokens every example of `batch` has in common, none of them predicting
    a labelled token: the part of the prompt (system prompt, RAG instruction) that a step can
    run once for the whole batch. 0 for a single example, and below MIN_SHARED_PREFIX."""
    # The hidden state at position p predicts token p + 1: the shared part must end before the
    # position that predicts each example's first labelled token.
    first_labelled = min(next((i for i, label in enumerate(e.labels) if label != IGNORE_INDEX),
                              len(e.labels)) for e in batch)
    return usable_prefix_length([e.input_ids for e in batch], first_labelled - 1)


def collate(batch: list[TokenizedExample], pad_id: int) -> dict[str, Any]:
    """Right-pad a batch into tensors; padding is masked in attention and labels.
    `shared_prefix`: the tokens every row starts with, which may run once
    (shared_prompt_prefix)."""
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
    return {"input_ids": ids, "labels": labels, "attention_mask": mask,
            "shared_prefix": shared_prompt_prefix(batch)}


def collate_packed(batch: list[TokenizedExample]) -> dict[str, Any]:
    """Flatten a batch into one padding-free row.

    Position ids restart at 0 for each example; with no attention mask, transformers derives a
    block-diagonal causal mask from them (varlen kernels on FlashAttention), so no token attends
    across examples. The first label of each example is masked so no loss predicts one example
    from the end of the previous one.
    """
    torch = require("torch")
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for example in batch:
        ids += example.input_ids
        labels += [IGNORE_INDEX, *example.labels[1:]]
        positions += range(len(example.input_ids))
    return {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels]),
            "position_ids": torch.tensor([positions])}
