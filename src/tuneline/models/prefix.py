"""A prompt prefix that every row of a batch shares, run once: one row's keys and values,
repeated over the rows, which then attend to them. Training's answer loss and batched
generation both use it (SmolLM2's system prompt, and in a RAG prompt the instruction, start
every row)."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Sequence
from typing import Any

from tuneline._optional import require

# Below this many common tokens, the extra forward call costs about what it saves.
MIN_SHARED_PREFIX = 16


def common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """How many leading token ids every row has in common."""
    return len(os.path.commonprefix([list(row) for row in rows])) if rows else 0


def usable_prefix_length(rows: Sequence[Sequence[int]], limit: int) -> int:
    """The leading tokens all `rows` share, at most `limit`, where worth running once: 0 for
    a single row or fewer than MIN_SHARED_PREFIX tokens."""
    if len(rows) < 2:
        return 0
    shared = min(common_prefix_length(rows), limit)
    return shared if shared >= MIN_SHARED_PREFIX else 0


def repeated_prefix_cache(decoder: Any, prefix_ids: Any, rows: int) -> Any | None:
    """The KV cache of `prefix_ids` (one row) run through `decoder`, repeated for `rows` rows;
    None where the decoder kept no cache (gradient checkpointing drops it), so the caller runs
    every row whole instead."""
    cache = require("transformers").DynamicCache(config=decoder.config)
    decoder(input_ids=prefix_ids, use_cache=True, **{cache_kwarg(type(decoder)): cache})
    if cache.get_seq_length() != prefix_ids.shape[1]:
        return None
    cache.batch_repeat_interleave(rows)
    return cache


@functools.cache
def cache_kwarg(model_class: type) -> str:
    """The model's name for its KV cache argument (transformers renamed it in 5.x)."""
    parameters = inspect.signature(model_class.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


@functools.cache
def keeps_logits_kwargs(model_class: type) -> dict[str, int]:
    """`logits_to_keep=1` where the model takes it (the LM head over a whole prompt is wasted
    work when only the next token is wanted), else nothing."""
    parameters = inspect.signature(model_class.forward).parameters
    return {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}
