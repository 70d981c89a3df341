"""KV caches for batched generation: the caches of a batch's prompt parts joined into one, and
keys and values written in place as the answers grow."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tuneline._optional import require

require("transformers")
from transformers.cache_utils import DynamicLayer  # noqa: E402


def joinable(cache: Any) -> bool:
    """Whether the cache's layers are plain growing ones (a full-attention model) that
    `join_caches` and `reserve` know; sliding windows and the like are left alone."""
    return all(type(layer) in (DynamicLayer, GrowingLayer) for layer in cache.layers)


def pad_at(tensor: Any, start: int, width: int, dim: int) -> Any:
    """`tensor` widened to `width` along `dim` by zeros inserted at `start`."""
    torch = require("torch")
    missing = width - tensor.shape[dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.narrow(dim, 0, start), tensor.new_zeros(shape),
                      tensor.narrow(dim, start, tensor.shape[dim] - start)], dim)


def join_caches(caches: Sequence[Any], start: int, width: int) -> Any:
    """One cache holding the rows of `caches` in order, each widened to `width` positions by
    zeros inserted at `start` (after a shared prefix), as a prompt padded there would be: the
    caller's attention mask holds zeros at the same places, so no row attends to them. The
    first cache is reused."""
    torch = require("torch")
    joined = caches[0]
    for number, layer in enumerate(joined.layers):
        for name in ("keys", "values"):
            setattr(layer, name, torch.cat([pad_at(getattr(c.layers[number], name), start,
                                                   width, 2) for c in caches]))
        for cache in caches[1:]:  # one layer's copies alive at a time, not the whole cache's
            cache.layers[number].keys = cache.layers[number].values = None
    return joined


def reserve(cache: Any, capacity: int) -> None:
    """Room for `capacity` positions in every layer, so that each decode step writes its keys
    and values in place instead of copying the cache to append them (the copies cost about as
    much as attending to it at the Python FAQ's ~550-token prompts)."""
    for layer in cache.layers:
        layer.__class__ = GrowingLayer
        layer.grow_to(capacity)


class GrowingLayer(DynamicLayer):  # type: ignore[misc]
    """A DynamicLayer whose keys and values are views of buffers with room to grow."""

    def grow_to(self, capacity: int) -> None:
        filled = self.keys.shape[-2]
        shape = (*self.keys.shape[:2], max(capacity, filled), self.keys.shape[3])
        self._key_buffer = self.keys.new_empty(shape)
        self._value_buffer = self.values.new_empty(shape)
        self._key_buffer[:, :, :filled] = self.keys
        self._value_buffer[:, :, :filled] = self.values
        self._view(filled)

    def _view(self, filled: int) -> None:
        self.keys = self._key_buffer[:, :, :filled]
        self.values = self._value_buffer[:, :, :filled]

    def update(self, key_states: Any, value_states: Any, *args: Any,
               **kwargs: Any) -> tuple[Any, Any]:
        if not self.is_initialized:  # after reset()
            super().update(key_states, value_states, *args, **kwargs)
            self.grow_to(self.keys.shape[-2])
            return self.keys, self.values
        start = self.keys.shape[-2]
        end = start + key_states.shape[-2]
        if end > self._key_buffer.shape[-2]:
            self.grow_to(2 * end)
        self._key_buffer[:, :, start:end] = key_states
        self._value_buffer[:, :, start:end] = value_states
        self._view(end)
        return self.keys, self.values

    def batch_select_indices(self, indices: Any) -> None:
        filled = self.keys.shape[-2]
        self._key_buffer = self._key_buffer[indices]
        self._value_buffer = self._value_buffer[indices]
        self._view(filled)

    def batch_repeat_interleave(self, repeats: int) -> None:
        filled = self.keys.shape[-2]
        self._key_buffer = self._key_buffer.repeat_interleave(repeats, dim=0)
        self._value_buffer = self._value_buffer.repeat_interleave(repeats, dim=0)
        self._view(filled)

    def reorder_cache(self, beam_idx: Any) -> None:
        self.batch_select_indices(beam_idx)
