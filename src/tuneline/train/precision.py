"""The training loop's precision: what `train.precision: auto` trains in, and attention kept in
float32 under a CPU's bf16 autocast."""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Iterator
from typing import Any

from tuneline._optional import require
from tuneline.machine import this_machine
from tuneline.models.loading import use_bf16

FP32_ATTENTION = "sdpa_fp32"  # the name it is registered under with transformers


def train_in_bf16(precision: str, device: str) -> bool:
    """Whether the training loop runs under bf16 autocast: where `use_bf16` generates in bf16
    (a GPU that has it, or `bf16` forced), and under 'auto' on a CPU with native bf16 too.

    Over half an epoch of the demo with attention in fp32 (`fp32_attention`), the loop ran
    1.30x fp32's real tokens per second on the Intel Xeon AMX class and 1.59x on the Zen 5
    EPYC class; with bf16 attention, whose CPU flash-attention backward is slow on short rows,
    1.20x over 16 steps on the first (docs/benchmarks.md, 2026-12-07). Generation stays
    float32 on CPUs: replay answers generated in bf16 taught the model to read passages worse."""
    if precision == "auto" and device == "cpu":
        return this_machine().native_bf16
    return use_bf16(precision, device)


@contextlib.contextmanager
def training_precision(model: Any, device: str, bf16: bool, *, single_process: bool = True,
                       cpu_attention_in_fp32: bool = True) -> Iterator[bool]:
    """What a training step of `model` runs under, where it trains under bf16 autocast: on a
    CPU attention in float32 (`fp32_attention`, unless `cpu_attention_in_fp32` is False) and,
    in a `single_process` (no sharding wrapper owning the weights), the frozen linear weights
    stored in bf16 (`frozen_linears_in_bf16`); on any device PEFT's LoRA layers leave their
    input's dtype to the autocast (`lora_inputs_left_to_autocast`). Yields whether attention
    runs in float32. Everything is as before after the block."""
    with fp32_attention(model, device, bf16 and cpu_attention_in_fp32) as attention_in_fp32, \
            frozen_linears_in_bf16(model, device, bf16 and single_process), \
            lora_inputs_left_to_autocast(model, bf16):
        yield attention_in_fp32


@contextlib.contextmanager
def fp32_attention(model: Any, device: str, bf16: bool) -> Iterator[bool]:
    """Within the block, `model`'s attention runs in float32 when a CPU trains it under bf16
    autocast (queries, keys and values cast up, the output back to the autocast's dtype);
    yields whether it does. Otherwise, and after the block, its attention is left as it was.
    A model whose attention is not transformers' `sdpa` is left alone, with a warning."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    current = getattr(lm.config, "_attn_implementation", None)
    if not (bf16 and device == "cpu"):
        yield False
        return
    if current == "sdpa":
        _register()
        lm.set_attn_implementation(FP32_ATTENTION)
    switched = lm.config._attn_implementation == FP32_ATTENTION
    if not switched:
        print(f"warning: the model's attention ({current}) cannot run in float32 under the bf16 "
              "autocast; in bf16 it trains slowly on CPUs (train.precision=fp32 may be faster)",
              file=sys.stderr)
    try:
        yield switched
    finally:
        if switched:
            lm.set_attn_implementation(current)


@contextlib.contextmanager
def frozen_linears_in_bf16(model: Any, device: str, bf16: bool) -> Iterator[int]:
    """Within the block, the frozen weights of `model`'s linear layers are stored in bf16 when
    a CPU trains it under bf16 autocast; yields how many. The autocast casts them to bf16 at
    every use anyway (it keeps casts of trainable weights only), so the step computes the same
    values without ~270 MB of casts a step for the 135M model (4-6% more tokens a second on
    the Zen 5 EPYC class, docs/log.md, 2026-12-07 (afternoon)). The input embeddings (and a
    head tied to them) stay as they are: an embedding lookup is not autocast. After the block
    the float32 weights are back, the same tensors."""
    torch = require("torch")
    if not (bf16 and device == "cpu"):
        yield 0
        return
    embeddings = model.get_input_embeddings()
    tied = {id(embeddings.weight)} if embeddings is not None else set()
    kept = {module: module.weight.data for module in model.modules()
            if isinstance(module, torch.nn.Linear) and not module.weight.requires_grad
            and module.weight.dtype == torch.float32 and id(module.weight) not in tied}
    try:
        for module, weight in kept.items():
            module.weight.data = weight.to(torch.bfloat16)
        yield len(kept)
    finally:
        for module, weight in kept.items():
            module.weight.data = weight


@contextlib.contextmanager
def lora_inputs_left_to_autocast(model: Any, bf16: bool) -> Iterator[int]:
    """Within the block, under a bf16 autocast, PEFT's LoRA layers no longer cast their input
    to their float32 weights' dtype; yields how many layers. The autocast casts it straight
    back to bf16 for the LoRA matmul, so the round trip (and its gradient's) computes nothing:
    the same values without two copies of each bf16 input (the attention output and the MLP's
    inner activations, 1,536 wide) a layer, forward and backward. After the block the layers
    cast as before."""
    if not bf16:
        yield 0
        return
    require("peft")
    from peft.helpers import disable_input_dtype_casting
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = sum(isinstance(module, BaseTunerLayer) for module in model.modules())
    with disable_input_dtype_casting(model):
        yield layers


def _sdpa_in_fp32(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                  **kwargs: Any) -> tuple[Any, Any]:
    torch = require("torch")
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if not torch.is_autocast_enabled("cpu"):
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    with torch.autocast("cpu", enabled=False):
        output, weights = sdpa_attention_forward(module, query.float(), key.float(),
                                                 value.float(), attention_mask, **kwargs)
    return output.to(torch.get_autocast_dtype("cpu")), weights


@functools.cache
def _register() -> None:
    transformers = require("transformers")
    from transformers.masking_utils import sdpa_mask

    transformers.AttentionInterface.register(FP32_ATTENTION, _sdpa_in_fp32)
    transformers.AttentionMaskInterface.register(FP32_ATTENTION, sdpa_mask)
