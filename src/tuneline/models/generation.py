"""Batched chat generation shared by evaluation and serving."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tuneline._optional import require


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
) -> list[Generation]:
    """Generate one answer per conversation in a single left-padded batch."""
    torch = require("torch")
    prompts = [render_prompt(tokenizer, c) for c in conversations]
    tokenizer.padding_side = "left"
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    batch = batch.to(model.device)
    sampling: dict[str, Any] = {"do_sample": False}
    if temperature > 0:
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p}
    with torch.inference_mode():
        output = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **sampling,
        )
    prompt_width = batch["input_ids"].shape[1]
    prompt_lengths = batch["attention_mask"].sum(dim=1).tolist()
    return [
        _decode(tokenizer, row[prompt_width:].tolist(), int(n_prompt))
        for row, n_prompt in zip(output, prompt_lengths, strict=True)
    ]


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
) -> list[Generation]:
    """Greedy answers for many conversations, batched by prompt length to limit padding."""
    order = sorted(range(len(conversations)), key=lambda i: len(str(conversations[i])))
    results: list[Generation | None] = [None] * len(conversations)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        outputs = generate_batch(model, tokenizer, [conversations[i] for i in chunk],
                                 max_new_tokens)
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
