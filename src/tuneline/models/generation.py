"""Batched chat generation shared by evaluation and serving."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tuneline._optional import require
from tuneline.models.prefix import (
    cache_kwarg,
    keeps_logits_kwargs,
    repeated_prefix_cache,
    usable_prefix_length,
)

# The prompts of a batch are padded to its longest, and their pass runs near the machine's
# matmul peak, so padding costs what a real token does: a batch holds at most this many prompt
# tokens, padding included. On the demo's 66 base+rag prompts (144-348 tokens), 64 rows a
# batch took 32 s for the prompts against 16 s in batches of 16 (docs/log.md, 2026-12-07
# (midday)); short prompts still fill batches of 64.
BATCH_PROMPT_TOKENS = 8192
# How answers are decoded, part of the answer cache's key: answers kept under another rule
# (transformers' generate stopped only at the tokenizer's EOS) are not reused.
DECODING = "greedy, ends at the tokenizer's or the generation config's end tokens"


@dataclass
class Generation:
    """One generated answer and its token accounting."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


def render_prompt(tokenizer: Any, messages: Sequence[dict[str, str]]) -> str:
    """The chat-template prompt that asks the model for the next assistant turn."""
    return str(
        tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    )


def prompt_ids(tokenizer: Any, messages: Sequence[dict[str, str]]) -> list[int]:
    """Token ids of the chat-template prompt for the next assistant turn."""
    return list(tokenizer(render_prompt(tokenizer, messages), add_special_tokens=False)
                ["input_ids"])


def generate_batch(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[Sequence[dict[str, str]]],
    max_new_tokens: int,
    share_prefix: bool = True,
) -> list[Generation]:
    """Greedy answers to the conversations, generated together.

    The prompt prefix every row shares (SmolLM2's system prompt; a RAG prompt's instruction)
    runs once, as one row whose keys and values every row attends to: each row is the prefix,
    its padding, then the rest of its prompt, and positions count only unpadded tokens, so
    the answers are those of left-padded rows, to float rounding (a third of a RAG batch's
    prompt tokens on the demo). `share_prefix=False`: plain left padding. A row leaves the
    batch when it ends (an end token or the budget), as it does in the server's batcher, so
    the later steps decode only the rows still answering. Like the batcher, it takes the
    likeliest token: a generation config's repetition penalty or suppressed tokens do not
    apply."""
    rows = [prompt_ids(tokenizer, c) for c in conversations]
    return _generate_rows(model, tokenizer, rows, max_new_tokens, share_prefix)


def _generate_rows(model: Any, tokenizer: Any, rows: Sequence[Sequence[int]],
                   max_new_tokens: int, share_prefix: bool) -> list[Generation]:
    torch = require("torch")
    shared = shared_prefix(rows) if share_prefix else 0
    input_ids, attention_mask = _pad_after_prefix(rows, shared, tokenizer.pad_token_id)
    input_ids, attention_mask = input_ids.to(model.device), attention_mask.to(model.device)
    end_ids = end_token_ids(model, tokenizer)
    with torch.inference_mode():
        cache = repeated_prefix_cache(model, input_ids[:1, :shared], len(rows)) if shared else None
        if cache is None:
            cache, shared = require("transformers").DynamicCache(config=model.config), 0
        answers = _greedy_decode(model, input_ids, attention_mask, shared, cache,
                                 max_new_tokens, end_ids)
    return [_decode(tokenizer, answer, len(row), end_ids)
            for answer, row in zip(answers, rows, strict=True)]


def _greedy_decode(model: Any, input_ids: Any, attention_mask: Any, cached: int, cache: Any,
                   max_new_tokens: int, end_ids: set[int]) -> list[list[int]]:
    """Each row's new token ids, its end token included: the prompts after the `cached`
    tokens already in `cache`, then one token a step for the rows not yet ended."""
    torch = require("torch")
    kwargs = {cache_kwarg(type(model)): cache, **keeps_logits_kwargs(type(model))}
    positions = (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
    logits = model(input_ids=input_ids[:, cached:], attention_mask=attention_mask,
                   position_ids=positions[:, cached:], use_cache=True, **kwargs).logits[:, -1]
    answers: list[list[int]] = [[] for _ in range(len(input_ids))]
    active = list(range(len(input_ids)))
    positions = positions[:, -1:]
    while True:
        tokens = logits.argmax(-1)
        going = []
        for slot, (row, token) in enumerate(zip(active, tokens.tolist(), strict=True)):
            answers[row].append(token)
            if token not in end_ids and len(answers[row]) < max_new_tokens:
                going.append(slot)
        if not going:
            return answers
        if len(going) < len(active):
            kept = torch.tensor(going, device=input_ids.device)
            cache.batch_select_indices(kept)
            attention_mask, positions, tokens = attention_mask[kept], positions[kept], tokens[kept]
            active = [active[slot] for slot in going]
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(len(active), 1)], 1)
        positions = positions + 1
        logits = model(input_ids=tokens[:, None], attention_mask=attention_mask,
                       position_ids=positions, use_cache=True, **kwargs).logits[:, -1]


def end_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every token that ends an answer: the tokenizer's EOS and the generation config's
    (evaluation and the server stop on the same ones)."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(configured) if isinstance(configured, list) else {configured}
    return {int(i) for i in ids if i is not None}


def shared_prefix(rows: Sequence[Sequence[int]]) -> int:
    """The leading tokens every prompt of a batch has in common, worth running once; each
    row keeps at least its last prompt token, whose logits start its answer."""
    return usable_prefix_length(rows, min(len(row) for row in rows) - 1)


def _pad_after_prefix(rows: Sequence[Sequence[int]], shared: int, pad_id: int) -> tuple[Any, Any]:
    """(input_ids, attention_mask): each row's first `shared` tokens, then its padding, then
    the rest of it; with `shared` 0, plain left padding."""
    torch = require("torch")
    width = max(len(row) for row in rows)
    ids, mask = [], []
    for row in rows:
        padding = width - len(row)
        ids.append([*row[:shared], *[pad_id] * padding, *row[shared:]])
        mask.append([1] * shared + [0] * padding + [1] * (len(row) - shared))
    return torch.tensor(ids), torch.tensor(mask)


def _decode(tokenizer: Any, new_ids: list[int], prompt_tokens: int,
            end_ids: set[int]) -> Generation:
    finish = "length"
    if new_ids and new_ids[-1] in end_ids:
        new_ids, finish = new_ids[:-1], "stop"
    text = tokenizer.decode(new_ids, skip_special_tokens=True).strip()
    return Generation(text, prompt_tokens, len(new_ids) + (finish == "stop"), finish)


def generate_all(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[Sequence[dict[str, str]]],
    max_new_tokens: int,
    batch_size: int,
    progress: Any = None,
    share_prefix: bool = True,
) -> list[Generation]:
    """Greedy answers for many conversations, in the batches `generation_batches` forms."""
    rows = [prompt_ids(tokenizer, c) for c in conversations]
    results: list[Generation | None] = [None] * len(conversations)
    for batch in generation_batches(rows, batch_size):
        outputs = _generate_rows(model, tokenizer, [rows[i] for i in batch], max_new_tokens,
                                 share_prefix)
        for index, generation in zip(batch, outputs, strict=True):
            results[index] = generation
        if progress is not None:
            progress(len(batch), sum(g.completion_tokens for g in outputs))
    return [r for r in results if r is not None]


def generation_batches(rows: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
    """The indices of `rows` (prompt token ids) that generate together: in order of length,
    at most `batch_size` rows and BATCH_PROMPT_TOKENS prompt tokens, padding counted, a batch.
    The rows are spread evenly over the batches where the caps allow: a last batch of a row or
    two would decode its answers alone, and a step costs about the weights' reading whatever
    its rows."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    filled: list[list[int]] = []
    for index in order:
        batch = filled[-1] if filled else []
        # in order of length, the newest row is the longest: the one the batch pads to
        if not batch or len(batch) == batch_size or (
                (len(batch) + 1) * len(rows[index]) > BATCH_PROMPT_TOKENS):
            filled.append(batch := [])
        batch.append(index)
    count = len(filled)
    even = [order[len(order) * k // count:len(order) * (k + 1) // count] for k in range(count)]
    fits = all(len(batch) <= batch_size and len(batch) * len(rows[batch[-1]])
               <= max(BATCH_PROMPT_TOKENS, len(rows[batch[-1]])) for batch in even)
    return even if fits else filled


def generate_with_progress(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[Sequence[dict[str, str]]],
    max_new_tokens: int,
    batch_size: int,
    desc: str,
) -> tuple[list[Generation], float]:
    """`generate_all` behind a progress bar showing tokens/s; returns the answers and tokens/s."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(conversations), desc=desc, unit="q", dynamic_ncols=True)
    started, tokens = time.perf_counter(), 0

    def progress(n_done: int, n_tokens: int) -> None:
        nonlocal tokens
        tokens += n_tokens
        bar.set_postfix(tok_s=f"{tokens / (time.perf_counter() - started):,.0f}")
        bar.update(n_done)

    try:
        generations = generate_all(model, tokenizer, conversations, max_new_tokens, batch_size,
                                   progress)
    finally:
        bar.close()
    return generations, tokens / max(time.perf_counter() - started, 1e-9)


def chat_token_counter(tokenizer: Any) -> Any:
    """A function giving the number of tokens a whole conversation takes under the chat template."""

    def count(messages: Sequence[dict[str, str]]) -> int:
        text = tokenizer.apply_chat_template(list(messages), tokenize=False)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count
