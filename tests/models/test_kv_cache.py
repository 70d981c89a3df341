"""KV caches for batched generation: parts joined into one batch, keys and values written in
place."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def _cache(rows: int, length: int, seed: int, layers: int = 2):
    from transformers import DynamicCache

    generator = torch.Generator().manual_seed(seed)
    cache = DynamicCache()
    for layer in range(layers):
        cache.update(torch.randn(rows, 3, length, 4, generator=generator),
                     torch.randn(rows, 3, length, 4, generator=generator), layer)
    return cache


def test_a_growing_layer_holds_what_appending_would_and_grows_past_its_room():
    from tuneline.models.kv_cache import GrowingLayer, joinable, reserve

    grown, appended = _cache(3, 5, 0), _cache(3, 5, 0)
    reserve(grown, 7)  # room for two more positions, then it must grow
    assert joinable(grown) and all(type(layer) is GrowingLayer for layer in grown.layers)
    buffer, rows = grown.layers[0]._key_buffer, 3
    for step in range(4):
        new = _cache(rows, 1, 10 + step)
        for cache in (grown, appended):
            for number, layer in enumerate(new.layers):
                cache.update(layer.keys, layer.values, number)
        if step == 1:
            assert grown.layers[0]._key_buffer is buffer  # written in place while it fits
        if step == 2:
            kept = torch.tensor([2, 0])
            grown.batch_select_indices(kept)
            appended.batch_select_indices(kept)
            rows = 2
    assert grown.get_seq_length() == appended.get_seq_length() == 9
    for mine, theirs in zip(grown.layers, appended.layers, strict=True):
        assert torch.equal(mine.keys, theirs.keys) and torch.equal(mine.values, theirs.values)


def test_joined_caches_are_padded_with_zeros_after_the_shared_prefix():
    from tuneline.models.kv_cache import join_caches

    narrow, wide = _cache(2, 4, 0), _cache(1, 6, 1)
    narrow_keys = narrow.layers[1].keys.clone()
    wide_keys = wide.layers[1].keys.clone()
    joined = join_caches([narrow, wide], start=2, width=6)
    keys = joined.layers[1].keys
    assert keys.shape == (3, 3, 6, 4)
    assert torch.equal(keys[:2, :, :2], narrow_keys[:, :, :2])  # the shared prefix
    assert torch.equal(keys[:2, :, 2:4], torch.zeros(2, 3, 2, 4))  # the padding
    assert torch.equal(keys[:2, :, 4:], narrow_keys[:, :, 2:])
    assert torch.equal(keys[2:], wide_keys)
