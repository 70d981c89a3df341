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
