"""Batched chat generation shared by evaluation and serving."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tuneline._optional import require
from tuneline.models.prefix import cache_kwarg, repeated_prefix_cache, usable_prefix_length


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
    temperature: float = 0.0,
    top_p: float = 1.0,
    share_prefix: bool = True,
) -> list[Generation]:
    """Generate one answer per conversation in a single batch.

    The prompt prefix every row shares (SmolLM2's system prompt; a RAG prompt's instruction)
    runs once, as one row whose keys and values every row attends to: each row is the prefix,
    its padding, then the rest of its prompt, and positions count only unpadded tokens, so
    the answers are those of left-padded rows, to float rounding (a third of a RAG batch's
    prompt tokens on the demo). `share_prefix=False`: plain left padding."""
    torch = require("torch")
    rows = [prompt_ids(tokenizer, c) for c in conversations]
    shared = shared_prefix(rows) if share_prefix else 0
    input_ids, attention_mask = _pad_after_prefix(rows, shared, tokenizer.pad_token_id)
    input_ids, attention_mask = input_ids.to(model.device), attention_mask.to(model.device)
    sampling: dict[str, Any] = {"do_sample": False}
    if temperature > 0:
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p}
    with torch.inference_mode():
        if shared:
            cache = repeated_prefix_cache(model, input_ids[:1, :shared], len(rows))
            if cache is not None:
                sampling[cache_kwarg(type(model))] = cache
        output = model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **sampling,
        )
    prompt_width = input_ids.shape[1]
    return [
        _decode(tokenizer, row[prompt_width:].tolist(), len(ids))
        for row, ids in zip(output, rows, strict=True)
    ]


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


def _decode(tokenizer: Any, new_ids: list[int], prompt_tokens: int) -> Generation:
    eos = tokenizer.eos_token_id
    finish = "length"
    if eos in new_ids:
        new_ids = new_ids[: new_ids.index(eos)]
        finish = "stop"
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
    """Greedy answers for many conversations, batched by prompt length to limit padding."""
    order = sorted(range(len(conversations)), key=lambda i: len(str(conversations[i])))
    results: list[Generation | None] = [None] * len(conversations)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        outputs = generate_batch(model, tokenizer, [conversations[i] for i in chunk],
                                 max_new_tokens, share_prefix=share_prefix)
        for index, generation in zip(chunk, outputs, strict=True):
            results[index] = generation
        if progress is not None:
            progress(len(chunk), sum(g.completion_tokens for g in outputs))
    return [r for r in results if r is not None]


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
