"""What `train.precision` trains in, and attention in float32 under a CPU's bf16 autocast."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tuneline.machine import Machine  # noqa: E402
from tuneline.models.loading import use_bf16  # noqa: E402
from tuneline.train import precision  # noqa: E402


def _machine(cpu_class: str) -> Machine:
    return Machine(cpu="test CPU", cpu_class=cpu_class, cores=2, memory_gib=8.0, gpu=None)


@pytest.mark.parametrize(("setting", "cpu_class", "trains_bf16"), [
    ("auto", "bf16-native", True),
    ("auto", "avx2", False),
    ("auto", "avx512 (no bf16)", False),
    ("fp32", "bf16-native", False),
    ("bf16", "avx2", True),
])
def test_auto_trains_in_bf16_only_on_a_cpu_that_has_it_natively(monkeypatch, setting, cpu_class,
                                                                trains_bf16):
    monkeypatch.setattr(precision, "this_machine", lambda: _machine(cpu_class))
    assert precision.train_in_bf16(setting, "cpu") is trains_bf16
    # generation (evaluate, replay's answers, the server) stays fp32 on any CPU under auto
    assert use_bf16(setting, "cpu") is (setting == "bf16")


def test_auto_on_a_gpu_follows_its_bf16_support(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert precision.train_in_bf16("auto", "cuda") is False
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert precision.train_in_bf16("auto", "cuda") is True


@pytest.fixture()
def tiny_model(tiny_model_dir):
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_model_dir,
                                                              attn_implementation="sdpa")
    return model.eval()


def _left_padded_batch(model) -> dict:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, model.config.vocab_size, (2, 12), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, :5] = 0  # the second row starts after five pad tokens
    return {"input_ids": ids, "attention_mask": mask}


def _spy_on_sdpa(monkeypatch) -> list:
    seen = []
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(query, key, value, *args, **kwargs):
        seen.append((value.dtype, kwargs.get("attn_mask") is not None))
        return real(query, key, value, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    return seen


def test_attention_runs_in_fp32_under_bf16_autocast_with_the_padding_mask(tiny_model,
                                                                          monkeypatch):
    batch = _left_padded_batch(tiny_model)
    with torch.no_grad():
        reference = tiny_model(**batch).logits
    seen = _spy_on_sdpa(monkeypatch)
    with precision.fp32_attention(tiny_model, "cpu", bf16=True):
        assert tiny_model.config._attn_implementation == precision.FP32_ATTENTION
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            logits = tiny_model(**batch).logits
    assert tiny_model.config._attn_implementation == "sdpa"  # restored after the block
    layers = tiny_model.config.num_hidden_layers
    assert seen == [(torch.float32, True)] * layers
    real = batch["attention_mask"].bool()
    # bf16 matmuls differ from fp32 in the last digits only; attending to the pad tokens would
    # move the second row's logits far more
    assert (logits.float() - reference)[real].abs().max() < 0.05


def test_attention_is_left_alone_unless_a_cpu_trains_in_bf16(tiny_model, monkeypatch):
    for device, bf16 in (("cpu", False), ("cuda", True)):
        with precision.fp32_attention(tiny_model, device, bf16):
            assert tiny_model.config._attn_implementation == "sdpa"
    seen = _spy_on_sdpa(monkeypatch)
    with (precision.fp32_attention(tiny_model, "cpu", bf16=False), torch.no_grad(),
          torch.autocast("cpu", dtype=torch.bfloat16)):
        tiny_model(**_left_padded_batch(tiny_model))
    assert {dtype for dtype, _ in seen} == {torch.bfloat16}
