import pytest

torch = pytest.importorskip("torch")


def _batch(model_dir):
    from tuneline.models.loading import load_tokenizer
    from tuneline.train.tokenize import collate, tokenize_chat

    tokenizer = load_tokenizer(str(model_dir))
    examples = [tokenize_chat(tokenizer, [{"role": "user", "content": f"Capital of {c}?"},
                                          {"role": "assistant", "content": f"It is {k}."}], 64)
                for c, k in [("Peru", "Lima"), ("Kenya", "Nairobi"), ("Japan", "Tokyo")]]
    return collate(examples, tokenizer.pad_token_id)


def test_answer_loss_equals_the_full_model_loss(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from tuneline.train.loop import answer_loss

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    batch = _batch(tiny_model_dir)
    with torch.no_grad():
        expected = model(**batch).loss
        got = answer_loss(model, batch)
    assert torch.allclose(got, expected, atol=1e-5)


def test_lora_training_lowers_loss_and_leaves_the_base_untouched(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from tuneline.train.config import TrainConfig
    from tuneline.train.loop import answer_loss, attach_lora, train_loop
    from tuneline.train.tokenize import TokenizedExample

    batch = _batch(tiny_model_dir)
    examples = [TokenizedExample(ids[m.bool()].tolist(), lab[m.bool()].tolist())
                for ids, lab, m in zip(batch["input_ids"], batch["labels"],
                                       batch["attention_mask"], strict=True)]
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    cfg = TrainConfig(epochs=30, batch_size=3, learning_rate=1e-2, warmup_ratio=0.0)
    model = attach_lora(base, cfg)
    report = train_loop(model, examples, examples, cfg, pad_id=0, seed=0, bf16=False)
    assert report.steps == 30
    assert report.val_loss_after < report.val_loss_before - 0.5
    assert report.losses[-1] < report.losses[0]
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n for n in trained)
    assert any(p.abs().sum() > 0 for n, p in trained.items() if "lora_B" in n)
    frozen = model.get_base_model().state_dict()
    for name, value in before.items():
        assert torch.equal(frozen[name.replace(".weight", ".base_layer.weight")]
                           if name.replace(".weight", ".base_layer.weight") in frozen
                           else frozen[name], value), name
    with torch.no_grad(), model.disable_adapter():
        assert torch.allclose(answer_loss(model, batch),
                              answer_loss(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                          batch), atol=1e-5)


def test_top_layers_adapts_only_the_top_blocks_and_backward_stops_below_them(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from tuneline.errors import ConfigError
    from tuneline.train.config import TrainConfig
    from tuneline.train.loop import answer_loss, attach_lora

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    blocks = base.config.num_hidden_layers
    assert blocks >= 2
    model = attach_lora(base, TrainConfig.model_validate({"lora": {"top_layers": 1}}))
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trained and all(f".layers.{blocks - 1}." in n for n in trained)

    below = {}
    layers = model.get_base_model().model.layers
    layers[blocks - 2].register_forward_hook(
        lambda module, args, output: below.update(out=output[0] if isinstance(output, tuple)
                                                  else output))
    answer_loss(model, _batch(tiny_model_dir)).backward()
    assert below["out"].requires_grad is False  # autograd records nothing below the top block
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)

    with pytest.raises(ConfigError, match="top_layers"):
        attach_lora(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                    TrainConfig.model_validate({"lora": {"top_layers": blocks + 1}}))


@pytest.mark.parametrize(("method", "device", "precision", "dtype"), [
    ("lora", "cuda", "bf16", "bfloat16"),   # frozen base in bf16: attention keeps fast kernels
    ("lora", "cuda", "fp32", None),
    ("lora", "cpu", "bf16", None),          # CPU: float32 base, as the demo was measured
    ("full", "cuda", "bf16", None),         # full fine-tuning keeps float32 master weights
])
def test_the_base_is_loaded_in_bf16_only_for_lora_under_bf16_on_a_gpu(method, device, precision,
                                                                      dtype):
    from tuneline.train.config import TrainConfig
    from tuneline.train.job import base_load_options

    options = base_load_options(TrainConfig(method=method, precision=precision), device)
    assert options.get("dtype") == dtype


def test_qlora_loads_the_base_in_4_bit_on_its_process_gpu():
    pytest.importorskip("transformers")
    from tuneline.train.config import TrainConfig
    from tuneline.train.job import base_load_options

    options = base_load_options(TrainConfig(method="qlora"), "cuda", process_index=3)
    quant = options["quantization_config"]
    assert (quant.load_in_4bit, quant.bnb_4bit_quant_type, quant.bnb_4bit_use_double_quant) \
        == (True, "nf4", True)
    assert options["device_map"] == {"": 3} and "dtype" not in options
