"""Batched chat generation shared by evaluation and serving."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tuneline._optional import require
from tuneline.models.prefix import (
    cache_kwarg,
    keeps_logits_kwargs,
    repeated_prefix_cache,
    usable_prefix_length,
)

# A batch's prompts run through the model in parts of at most this many tokens after the shared
# prefix, padding counted: the prompt pass runs near the machine's matmul peak, so padding
# costs what a real token does. The parts' caches are then joined and the batch decodes as
# one: a decode step reads the weights once for all its rows. On the Python FAQ's 35 +rag
# prompts (482-814 tokens, 128-token answers) the whole set decoding together took 71 s
# against 88 s in three batches of at most 8,192 prompt tokens, 65 s with the keys and values
# written in place too (models.kv_cache), every answer the same (docs/log.md, 2026-12-07
# (afternoon)).
PREFILL_TOKENS = 4096
# A batch's cache holds at most this many prompt tokens, padding counted (SmolLM2-135M keeps
# 46 KB a token in fp32: 3 GiB).
BATCH_CACHE_TOKENS = 65536
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
    stops: Sequence[str] = (),
) -> list[Generation]:
    """Greedy answers to the conversations, generated together.

    The prompt prefix every row shares (SmolLM2's system prompt; a RAG prompt's instruction)
    runs once, as one row whose keys and values every row attends to: each row is the prefix,
    its padding, then the rest of its prompt, and positions count only unpadded tokens, so
    the answers are those of left-padded rows, to float rounding (a third of a RAG batch's
    prompt tokens on the demo). `share_prefix=False`: plain left padding. Long prompts run in
    parts (PREFILL_TOKENS) whose caches are joined before decoding. A row leaves the
    batch when it ends (an end token or the budget), as it does in the server's batcher, so
    the later steps decode only the rows still answering. Like the batcher, it takes the
    likeliest token: a generation config's repetition penalty or suppressed tokens do not
    apply. An answer also ends where its text first writes one of `stops`, which it does
    not include (as the server's `stop`)."""
    rows = [prompt_ids(tokenizer, c) for c in conversations]
    return _generate_rows(model, tokenizer, rows, max_new_tokens, share_prefix, stops)


def _generate_rows(model: Any, tokenizer: Any, rows: Sequence[Sequence[int]],
                   max_new_tokens: int, share_prefix: bool,
                   stops: Sequence[str] = ()) -> list[Generation]:
    torch = require("torch")
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    ordered = [rows[i] for i in order]
    end_ids = end_token_ids(model, tokenizer)
    with torch.inference_mode():
        state = _prefill(model, ordered, shared_prefix(ordered) if share_prefix else 0,
                         tokenizer.pad_token_id, max_new_tokens)
        answers = _greedy_decode(model, state, max_new_tokens, end_ids,
                                 _stop_test(tokenizer, stops))
    generations: list[Generation] = [None] * len(rows)  # type: ignore[list-item]
    for answer, index in zip(answers, order, strict=True):
        generations[index] = _decode(tokenizer, answer, len(rows[index]), end_ids, stops)
    return generations


def _stop_test(tokenizer: Any, stops: Sequence[str]) -> Callable[[list[int]], bool] | None:
    """Whether an answer's newest token completed one of `stops`: each token adds at least a
    byte, so the last len(stop in UTF-8) tokens hold a stop just written (the step before
    found none). A tokenizer that drops a window's leading space finds a stop that starts
    with a space one token late."""
    stops = [s for s in stops if s]
    if not stops:
        return None
    tail = max(len(s.encode("utf-8")) for s in stops)

    def written(answer: list[int]) -> bool:
        text = tokenizer.decode(answer[-tail:], skip_special_tokens=True)
        return any(s in text for s in stops)

    return written


@dataclass
class _Prefilled:
    """A batch after its prompts: the logits of each row's last prompt token, the cache, the
    attention mask over it, and each row's last position."""

    logits: Any
    cache: Any
    attention_mask: Any
    positions: Any


def _prefill(model: Any, rows: Sequence[Sequence[int]], shared: int, pad_id: int,
             max_new_tokens: int) -> _Prefilled:
    """Run the prompts (in order of length) in the parts `prefill_parts` forms, each after
    the `shared` prefix run once for it, and join the parts into one batch whose cache has
    room for the answers. Where a part's rows are narrower than the batch, zeros masked out
    are inserted in its cache (attention does not depend on where a masked position sits)."""
    from tuneline.models.kv_cache import join_caches, joinable, pad_at, reserve

    torch = require("torch")
    whole = not joinable(_empty_cache(model))
    parts = [list(range(len(rows)))] if whole else prefill_parts(rows, shared)
    done = [_prefill_part(model, *_pad_after_prefix([rows[i] for i in part], shared, pad_id),
                          shared) for part in parts]
    if whole:
        return done[0]
    width = max(part.attention_mask.shape[1] for part in done)
    cache = join_caches([part.cache for part in done], shared, width)
    reserve(cache, width + max_new_tokens)
    return _Prefilled(torch.cat([part.logits for part in done]), cache,
                      torch.cat([pad_at(part.attention_mask, shared, width, 1) for part in done]),
                      torch.cat([part.positions for part in done]))


def _empty_cache(model: Any) -> Any:
    return require("transformers").DynamicCache(config=model.config)


def _prefill_part(model: Any, input_ids: Any, attention_mask: Any, shared: int) -> _Prefilled:
    """One part's prompts (`_pad_after_prefix`'s layout) after their first `shared` tokens,
    whose keys and values are computed once and repeated over the rows."""
    input_ids, attention_mask = input_ids.to(model.device), attention_mask.to(model.device)
    cache = repeated_prefix_cache(model, input_ids[:1, :shared], len(input_ids)) if shared else None
    if cache is None:  # the model keeps no cache: the whole prompts run
        cache, shared = _empty_cache(model), 0
    kwargs = {cache_kwarg(type(model)): cache, **keeps_logits_kwargs(type(model))}
    positions = (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
    logits = model(input_ids=input_ids[:, shared:], attention_mask=attention_mask,
                   position_ids=positions[:, shared:], use_cache=True, **kwargs).logits[:, -1]
    return _Prefilled(logits, cache, attention_mask, positions[:, -1:])


def _greedy_decode(model: Any, state: _Prefilled, max_new_tokens: int, end_ids: set[int],
                   stopped: Callable[[list[int]], bool] | None = None) -> list[list[int]]:
    """Each row's new token ids, its end token included: one token a step for the rows not
    yet ended (by an end token, the budget or `stopped`), from the prompts' state."""
    torch = require("torch")
    cache, attention_mask, positions, logits = (state.cache, state.attention_mask,
                                                state.positions, state.logits)
    kwargs = {cache_kwarg(type(model)): cache, **keeps_logits_kwargs(type(model))}
    answers: list[list[int]] = [[] for _ in range(len(logits))]
    active = list(range(len(logits)))
    while True:
        tokens = logits.argmax(-1)
        going = []
        for slot, (row, token) in enumerate(zip(active, tokens.tolist(), strict=True)):
            answers[row].append(token)
            if token not in end_ids and len(answers[row]) < max_new_tokens and not (
                    stopped is not None and stopped(answers[row])):
                going.append(slot)
        if not going:
            return answers
        if len(going) < len(active):
            kept = torch.tensor(going, device=logits.device)
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


def _decode(tokenizer: Any, new_ids: list[int], prompt_tokens: int, end_ids: set[int],
            stops: Sequence[str] = ()) -> Generation:
    finish, count = "length", len(new_ids)
    if new_ids and new_ids[-1] in end_ids:
        new_ids, finish = new_ids[:-1], "stop"
    text = tokenizer.decode(new_ids, skip_special_tokens=True)
    cut = min((text.find(s) for s in stops if s and s in text), default=None)
    if cut is not None:
        text, finish = text[:cut], "stop"
    return Generation(text.strip(), prompt_tokens, count, finish)


def generate_all(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[Sequence[dict[str, str]]],
    max_new_tokens: int,
    batch_size: int,
    progress: Any = None,
    share_prefix: bool = True,
    stops: Sequence[str] = (),
) -> list[Generation]:
    """Greedy answers for many conversations, in the batches `generation_batches` forms."""
    rows = [prompt_ids(tokenizer, c) for c in conversations]
    results: list[Generation | None] = [None] * len(conversations)
    for batch in generation_batches(rows, batch_size):
        outputs = _generate_rows(model, tokenizer, [rows[i] for i in batch], max_new_tokens,
                                 share_prefix, stops)
        for index, generation in zip(batch, outputs, strict=True):
            results[index] = generation
        if progress is not None:
            progress(len(batch), sum(g.completion_tokens for g in outputs))
    return [r for r in results if r is not None]


def generation_batches(rows: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
    """The indices of `rows` (prompt token ids) that generate together: in order of length,
    at most `batch_size` rows and BATCH_CACHE_TOKENS prompt tokens, padding counted, a batch.
    The rows are spread evenly over the batches where the caps allow: a last batch of a row or
    two would decode its answers alone, and a step costs about the weights' reading whatever
    its rows."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    filled = [[order[i] for i in batch] for batch in
              _consecutive([len(rows[i]) for i in order], batch_size, BATCH_CACHE_TOKENS)]
    count = len(filled)
    even = [order[len(order) * k // count:len(order) * (k + 1) // count] for k in range(count)]
    fits = all(len(batch) <= batch_size and len(batch) * len(rows[batch[-1]])
               <= max(BATCH_CACHE_TOKENS, len(rows[batch[-1]])) for batch in even)
    return even if fits else filled


def prefill_parts(rows: Sequence[Sequence[int]], shared: int) -> list[list[int]]:
    """The indices of a batch's `rows` (in order of length) whose prompts run together: at
    most PREFILL_TOKENS tokens after the `shared` prefix, padding counted, a part."""
    return _consecutive([len(row) - shared for row in rows], len(rows), PREFILL_TOKENS)


def prefill_tokens(rows: Sequence[Sequence[int]], shared: int) -> int:
    """Tokens the prompt pass computes for a batch's `rows` (in order of length): each part's
    shared prefix once, its rows' rest padded to its longest."""
    return sum(shared + len(part) * (len(rows[part[-1]]) - shared)
               for part in prefill_parts(rows, shared))


def _consecutive(lengths: Sequence[int], max_rows: int, max_tokens: int) -> list[list[int]]:
    """The positions of `lengths` (ascending) in consecutive groups of at most `max_rows` and
    `max_tokens` tokens padded to the group's longest; a longer one alone."""
    groups: list[list[int]] = []
    for position, length in enumerate(lengths):
        # in order of length, the newest is the longest: the one the group pads to
        if not groups or len(groups[-1]) == max_rows or (
                (len(groups[-1]) + 1) * length > max_tokens):
            groups.append([])
        groups[-1].append(position)
    return groups


def generate_with_progress(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[Sequence[dict[str, str]]],
    max_new_tokens: int,
    batch_size: int,
    desc: str,
    stops: Sequence[str] = (),
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
                                   progress, stops=stops)
    finally:
        bar.close()
    return generations, tokens / max(time.perf_counter() - started, 1e-9)


def chat_token_counter(tokenizer: Any) -> Any:
    """A function giving the number of tokens a whole conversation takes under the chat template."""

    def count(messages: Sequence[dict[str, str]]) -> int:
        text = tokenizer.apply_chat_template(list(messages), tokenize=False)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count
