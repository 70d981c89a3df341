"""What `train.precision` trains in, and attention in float32 under a CPU's bf16 autocast."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tuneline.models.loading import use_bf16  # noqa: E402
from tuneline.train import precision  # noqa: E402


@pytest.mark.parametrize(("setting", "cpu_class", "trains_bf16"), [
    ("auto", "bf16-native", True),
    ("auto", "avx2", False),
    ("auto", "avx512 (no bf16)", False),
    ("fp32", "bf16-native", False),
    ("bf16", "avx2", True),
])
def test_auto_trains_in_bf16_only_on_a_cpu_that_has_it_natively(pretend_cpu, setting, cpu_class,
                                                                trains_bf16):
    pretend_cpu(cpu_class)
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
    # bf16 matmuls differ from fp32 in the last digits only; attending to the pad tokens moves
    # the second row's logits far more
    tolerance = 0.05
    assert (logits.float() - reference)[real].abs().max() < tolerance
    with torch.no_grad():
        unmasked = tiny_model(input_ids=batch["input_ids"]).logits
    assert (unmasked - reference)[real].abs().max() > 4 * tolerance


def test_the_models_attention_comes_back_when_the_block_fails(tiny_model):
    with pytest.raises(RuntimeError), precision.fp32_attention(tiny_model, "cpu", bf16=True):
        raise RuntimeError("a step failed")
    assert tiny_model.config._attn_implementation == "sdpa"


def test_attention_is_left_alone_unless_a_cpu_trains_in_bf16(tiny_model, monkeypatch):
    for device, bf16 in (("cpu", False), ("cuda", True)):
        with precision.fp32_attention(tiny_model, device, bf16):
            assert tiny_model.config._attn_implementation == "sdpa"
    seen = _spy_on_sdpa(monkeypatch)
    with (precision.fp32_attention(tiny_model, "cpu", bf16=False), torch.no_grad(),
          torch.autocast("cpu", dtype=torch.bfloat16)):
        tiny_model(**_left_padded_batch(tiny_model))
    assert {dtype for dtype, _ in seen} == {torch.bfloat16}


def test_the_loop_trains_a_cpu_under_bf16_with_attention_in_fp32(tiny_model_dir, monkeypatch):
    """The real loop (shared prompt prefix, token-bounded micro-batches): attention in fp32
    unless a bench asks otherwise, a first loss as fp32's, and the model's own attention back
    afterwards."""
    from tuneline.models.loading import load_tokenizer
    from tuneline.train.config import TrainConfig
    from tuneline.train.loop import train_loop
    from tuneline.train.methods import prepare_for_training
    from tuneline.train.tokenize import tokenize_chat

    tokenizer = load_tokenizer(str(tiny_model_dir))
    examples = [tokenize_chat(tokenizer, [
        {"role": "user", "content": f"Which city is number {i} on the list?"},
        {"role": "assistant", "content": f"City number {i} is {'Lyon' if i % 2 else 'Nice'}."}],
        64) for i in range(8)]
    cfg = TrainConfig(max_steps=1, batch_size=8, checkpoint_every=0)

    def first_loss(bf16: bool, **kwargs) -> tuple[float, bool]:
        torch.manual_seed(0)
        model = prepare_for_training(
            transformers.AutoModelForCausalLM.from_pretrained(tiny_model_dir), cfg)
        report = train_loop(model, examples, [], cfg, tokenizer.pad_token_id, 0, bf16, **kwargs)
        assert model.get_base_model().config._attn_implementation == "sdpa"
        return report.losses[0], report.attention_in_fp32

    fp32_loss, switched = first_loss(False)
    assert not switched
    seen = _spy_on_sdpa(monkeypatch)
    bf16_loss, switched = first_loss(True)
    assert switched and {dtype for dtype, _ in seen} == {torch.float32}
    assert bf16_loss == pytest.approx(fp32_loss, rel=0.02)
    seen.clear()
    _, switched = first_loss(True, cpu_attention_in_fp32=False)
    assert not switched and {dtype for dtype, _ in seen} == {torch.bfloat16}


def test_frozen_linears_stored_in_bf16_give_the_autocast_step_the_same_loss_and_gradients(
        tiny_model_dir):
    from tuneline.train.config import TrainConfig
    from tuneline.train.loss import answer_loss
    from tuneline.train.methods import attach_lora

    model = attach_lora(transformers.AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                        TrainConfig())
    batch = _left_padded_batch(model)
    batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    trainable = [p for p in model.parameters() if p.requires_grad]
    frozen = {name: (p.data_ptr(), p.detach().clone()) for name, p in model.named_parameters()
              if not p.requires_grad}

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = answer_loss(model, batch)
        grads = torch.autograd.grad(loss, trainable)
        return loss, grads

    loss, grads = step()
    with precision.frozen_linears_in_bf16(model, "cpu", bf16=True) as stored:
        assert stored == 7 * model.config.num_hidden_layers  # q k v o gate up down
        assert model.get_input_embeddings().weight.dtype == torch.float32
        assert model.get_base_model().model.layers[0].mlp.up_proj.base_layer.weight.dtype == (
            torch.bfloat16)
        loss_bf16, grads_bf16 = step()
    assert torch.equal(loss, loss_bf16)
    assert all(torch.equal(a, b) for a, b in zip(grads, grads_bf16, strict=True))
    # the same float32 tensors afterwards
    assert all(p.dtype == torch.float32 and p.data_ptr() == frozen[name][0]
               and torch.equal(p, frozen[name][1])
               for name, p in model.named_parameters() if not p.requires_grad)
    with precision.frozen_linears_in_bf16(model, "cpu", bf16=False) as stored:
        assert stored == 0


def test_lora_inputs_left_to_the_autocast_give_the_same_loss_and_gradients_without_casts(
        tiny_model_dir, monkeypatch):
    from peft.tuners.tuners_utils import BaseTunerLayer

    from tuneline.train.config import TrainConfig
    from tuneline.train.loss import answer_loss
    from tuneline.train.methods import attach_lora

    model = attach_lora(transformers.AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                        TrainConfig())
    trainable = [p for p in model.parameters() if p.requires_grad]
    torch.manual_seed(0)
    for param in trainable:  # LoRA B starts at zero: give every adapter a gradient path
        torch.nn.init.normal_(param, std=0.05)
    batch = _left_padded_batch(model)
    batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    casts = []
    cast = BaseTunerLayer._cast_input_dtype

    def spy(self, x, dtype):
        out = cast(self, x, dtype)
        if x is not None and out.dtype != x.dtype:
            casts.append((x.dtype, out.dtype))
        return out

    monkeypatch.setattr(BaseTunerLayer, "_cast_input_dtype", spy)

    def step():
        casts.clear()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = answer_loss(model, batch)
        return loss, torch.autograd.grad(loss, trainable), list(casts)

    loss, grads, cast_before = step()
    assert (torch.bfloat16, torch.float32) in cast_before  # o_proj's and down_proj's inputs
    with precision.lora_inputs_left_to_autocast(model, bf16=True) as layers:
        assert layers == 7 * model.config.num_hidden_layers
        loss_left, grads_left, cast_within = step()
    assert cast_within == []
    assert torch.equal(loss, loss_left)
    assert all(torch.equal(a, b) for a, b in zip(grads, grads_left, strict=True))
    assert step()[2] == cast_before  # casting again after the block
    with precision.lora_inputs_left_to_autocast(model, bf16=False) as layers:
        assert layers == 0
