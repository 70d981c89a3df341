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

    from tuneline.train.loss import answer_loss

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    batch = _batch(tiny_model_dir)
    with torch.no_grad():
        expected = model(**batch).loss
        got = answer_loss(model, batch)
    assert torch.allclose(got, expected, atol=1e-5)


def test_lora_training_lowers_loss_and_leaves_the_base_untouched(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from tuneline.train.config import TrainConfig
    from tuneline.train.loop import attach_lora, train_loop
    from tuneline.train.loss import answer_loss
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
    from tuneline.train.loop import attach_lora
    from tuneline.train.loss import answer_loss

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


@pytest.mark.parametrize(("precision", "device", "bf16"), [
    ("auto", "cpu", False),   # even with native bf16: bf16 replay answers read passages worse
    ("auto", "cuda", True),
    ("bf16", "cpu", True),
    ("fp32", "cuda", False),
])
def test_generation_is_fp32_on_a_cpu_and_bf16_on_a_gpu_that_has_it(monkeypatch, precision,
                                                                   device, bf16):
    import tuneline.models.loading as loading

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert loading.use_bf16(precision, device) is bf16


def test_the_train_hash_and_the_answer_cache_follow_what_auto_resolves_to(monkeypatch, tmp_path,
                                                                         tiny_model_dir,
                                                                         pretend_cpu):
    import tuneline.models.loading as loading
    from tuneline.config import PipelineConfig
    from tuneline.models.answer_cache import AnswerCache
    from tuneline.train.stage import _train_hash

    cfg = PipelineConfig.model_validate({"train": {"replay": {"fraction": 0}}})
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(loading, "pick_device", lambda: "cpu")
    pretend_cpu("avx2")
    on_an_avx2_cpu = _train_hash(cfg)
    cpu_answers = AnswerCache.for_base(str(tiny_model_dir), tmp_path, "auto").model_key
    assert cpu_answers == AnswerCache.for_base(str(tiny_model_dir), tmp_path, "fp32").model_key
    pretend_cpu("bf16-native")  # trains under bf16 autocast, generates in fp32
    assert _train_hash(cfg) != on_an_avx2_cpu
    assert AnswerCache.for_base(str(tiny_model_dir), tmp_path, "auto").model_key == cpu_answers
    monkeypatch.setattr(loading, "pick_device", lambda: "cuda")
    assert _train_hash(cfg) != on_an_avx2_cpu
    assert AnswerCache.for_base(str(tiny_model_dir), tmp_path, "auto").model_key != cpu_answers


def test_qlora_loads_the_base_in_4_bit_on_its_process_gpu():
    pytest.importorskip("transformers")
    from tuneline.train.config import TrainConfig
    from tuneline.train.job import base_load_options

    options = base_load_options(TrainConfig(method="qlora"), "cuda", process_index=3)
    quant = options["quantization_config"]
    assert (quant.load_in_4bit, quant.bnb_4bit_quant_type, quant.bnb_4bit_use_double_quant) \
        == (True, "nf4", True)
    assert options["device_map"] == {"": 3} and "dtype" not in options


INSTRUCTION = ("Answer the question using the passages below. If they do not contain the "
               "answer, say that you don't have that information.")


def _shared_prompt_batch(model_dir):
    """Chats that start alike (system prompt, instruction) and part at their passage."""
    from tuneline.models.loading import load_tokenizer
    from tuneline.train.tokenize import collate, tokenize_chat

    tokenizer = load_tokenizer(str(model_dir))
    examples = [tokenize_chat(tokenizer, [
        {"role": "system", "content": "You are a careful assistant."},
        {"role": "user", "content": f"{INSTRUCTION}\n\n<passage>{c}: {k}</passage>\n\n"
                                    f"Question: Capital of {c}?"},
        {"role": "assistant", "content": f"It is {k}."}], 256)
        for c, k in [("Peru", "Lima"), ("Kenya", "Nairobi"), ("Japan", "Tokyo"),
                     ("Chile", "Santiago")]]
    return examples, collate(examples, tokenizer.pad_token_id)


@pytest.mark.parametrize("bf16", [False, True])
def test_the_head_loss_in_chunks_has_the_loss_and_gradient_of_the_whole_projection(bf16):
    from tuneline.train.loss import HEAD_CHUNK_ROWS, head_cross_entropy_sum

    torch.manual_seed(0)
    rows = 2 * HEAD_CHUNK_ROWS + 44  # three chunks, the last one short
    hidden = torch.randn(rows, 16, requires_grad=True)
    weight = torch.randn(50, 16)  # a frozen head, as LoRA's
    targets = torch.randint(50, (rows,))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = torch.nn.functional.linear(hidden, weight)
        whole = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum")
        chunked = head_cross_entropy_sum(hidden, weight, targets)
    (expected,) = torch.autograd.grad(3.0 * whole, (hidden,))
    (got,) = torch.autograd.grad(3.0 * chunked, (hidden,))  # an upstream gradient of 3
    assert got.dtype == torch.float32
    assert torch.allclose(chunked, whole, rtol=1e-5)
    if bf16:  # the softmax's gradient, rounded to bf16 for the matmul, may differ by an ulp
        assert (got - expected).norm() < 1e-2 * expected.norm()
    else:
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        assert torch.equal(head_cross_entropy_sum(hidden, weight, targets), chunked.detach())
    with pytest.raises(ValueError, match="frozen"):
        head_cross_entropy_sum(hidden, weight.requires_grad_(), targets)


@pytest.mark.parametrize("bf16", [False, True])
def test_lora_gets_the_same_gradients_with_the_head_loss_in_chunks(tiny_model_dir, bf16):
    from transformers import AutoModelForCausalLM

    from tuneline.train.config import TrainConfig
    from tuneline.train.loss import answer_loss_sum
    from tuneline.train.methods import attach_lora

    torch.manual_seed(0)
    model = attach_lora(AutoModelForCausalLM.from_pretrained(tiny_model_dir), TrainConfig())
    params = [p for p in model.parameters() if p.requires_grad]
    for param in params:  # LoRA B starts at zero: give every adapter a gradient path
        torch.nn.init.normal_(param, std=0.05)
    batch = _batch(tiny_model_dir)

    def loss_and_grads(chunk_head):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = answer_loss_sum(model, batch["input_ids"], batch["labels"],
                                      batch["attention_mask"], chunk_head=chunk_head)
        return loss, torch.autograd.grad(loss, params)

    chunked, chunked_grads = loss_and_grads(True)
    assert type(chunked.grad_fn).__name__ == "_ChunkedHeadCrossEntropyBackward"
    whole, whole_grads = loss_and_grads(False)
    assert type(whole.grad_fn).__name__ != "_ChunkedHeadCrossEntropyBackward"
    assert torch.allclose(chunked, whole, rtol=1e-5)
    for a, b in zip(chunked_grads, whole_grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)

    full = AutoModelForCausalLM.from_pretrained(tiny_model_dir)  # a trained head projects whole
    loss, _ = answer_loss_sum(full, batch["input_ids"], batch["labels"], batch["attention_mask"])
    assert type(loss.grad_fn).__name__ != "_ChunkedHeadCrossEntropyBackward"


def test_a_shared_prompt_prefix_runs_once_with_the_loss_and_gradients_of_the_whole_batch(
        tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from tuneline.train.config import TrainConfig
    from tuneline.train.loop import attach_lora
    from tuneline.train.loss import answer_loss_sum

    examples, batch = _shared_prompt_batch(tiny_model_dir)
    shared = batch["shared_prefix"]
    first_label = min(e.labels.index(next(x for x in e.labels if x != -100)) for e in examples)
    assert 16 <= shared < first_label  # the instruction is shared, no answer token is
    torch.manual_seed(0)
    model = attach_lora(AutoModelForCausalLM.from_pretrained(tiny_model_dir), TrainConfig())
    for _, param in model.named_parameters():  # LoRA B starts at zero: give it a gradient path
        if param.requires_grad:
            torch.nn.init.normal_(param, std=0.05)
    params = [p for p in model.parameters() if p.requires_grad]
    calls = []
    model.get_base_model().model.register_forward_hook(
        lambda module, args, kwargs, output: calls.append(kwargs["input_ids"].shape),
        with_kwargs=True)

    def loss_and_grads(prefix):
        calls.clear()
        loss, count = answer_loss_sum(model, batch["input_ids"], batch["labels"],
                                      batch["attention_mask"], shared_prefix=prefix)
        return loss, count, torch.autograd.grad(loss, params), list(calls)

    whole, whole_count, whole_grads, whole_calls = loss_and_grads(0)
    split, split_count, split_grads, split_calls = loss_and_grads(shared)
    width = batch["input_ids"].shape[1]
    assert whole_calls == [(4, width)]
    assert split_calls == [(1, shared), (4, width - shared)]  # the prefix ran for one row
    assert int(split_count) == int(whole_count)
    assert torch.allclose(split, whole, rtol=1e-5)
    for a, b in zip(split_grads, whole_grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_under_gradient_checkpointing_a_shared_prefix_falls_back_to_the_whole_batch(
        tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from tuneline.train.config import TrainConfig
    from tuneline.train.loss import answer_loss_sum
    from tuneline.train.methods import prepare_for_training

    _, batch = _shared_prompt_batch(tiny_model_dir)
    torch.manual_seed(0)
    model = prepare_for_training(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                 TrainConfig(gradient_checkpointing=True)).train()
    args = (model, batch["input_ids"], batch["labels"], batch["attention_mask"])
    whole, _ = answer_loss_sum(*args)
    # Checkpointed layers drop the cache, so the prefix's keys would be lost: same loss anyway.
    assert torch.allclose(answer_loss_sum(*args, shared_prefix=batch["shared_prefix"])[0], whole)


def test_the_shared_prefix_ends_before_the_first_answer_and_needs_two_rows():
    from tuneline.train.budget import step_tokens
    from tuneline.train.tokenize import IGNORE_INDEX, TokenizedExample, shared_prompt_prefix

    prompt = list(range(100, 130))

    def example(tail, answer_at):
        ids = prompt + tail
        return TokenizedExample(ids, [IGNORE_INDEX] * answer_at + ids[answer_at:])

    parting = [example([1, 2, 3], 33), example([1, 9, 9], 33)]
    assert shared_prompt_prefix(parting) == 31  # common up to 31 tokens
    early_answer = [example([1, 2, 3], 33), example([1, 2, 3], 20)]
    assert shared_prompt_prefix(early_answer) == 19  # position 19 predicts the first answer
    assert shared_prompt_prefix(parting[:1]) == 0
    short = [example([1], 31), TokenizedExample([100, 101, 7] + prompt, [IGNORE_INDEX] * 33)]
    assert shared_prompt_prefix(short) == 0  # 2 common tokens: not worth a forward of its own
    assert step_tokens(parting, share_prefix=False) == 2 * 33
    assert step_tokens(parting, share_prefix=True) == 2 * 33 - 31


def test_training_with_a_shared_prefix_follows_the_same_losses_as_without(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from tuneline.train.config import TrainConfig
    from tuneline.train.loop import attach_lora, train_loop

    examples, _ = _shared_prompt_batch(tiny_model_dir)
    losses = {}
    for share in (False, True):
        cfg = TrainConfig(epochs=4, batch_size=4, learning_rate=1e-2, warmup_ratio=0.0,
                          share_prompt_prefix=share)
        torch.manual_seed(0)
        model = attach_lora(AutoModelForCausalLM.from_pretrained(tiny_model_dir), cfg)
        rows = []
        model.get_base_model().model.register_forward_hook(
            lambda module, args, kwargs, output, rows=rows: rows.append(
                kwargs["input_ids"].shape[0]),
            with_kwargs=True)
        report = train_loop(model, examples, examples, cfg, pad_id=0, seed=0, bf16=False)
        losses[share] = [*report.losses, report.val_loss_after]
        assert (1 in rows) is share  # the prefix's own one-row forward
    assert losses[True][-1] < losses[True][0]
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)


def test_a_long_batch_runs_as_token_bounded_micro_batches_with_the_same_losses(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from tuneline.train.budget import step_tokens, token_bounded
    from tuneline.train.config import TrainConfig
    from tuneline.train.loop import attach_lora, train_loop

    examples, _ = _shared_prompt_batch(tiny_model_dir)
    longest = max(len(e.input_ids) for e in examples)
    cap = 2 * longest  # two rows a micro-batch
    assert [len(part) for part in token_bounded(examples, cap)] == [2, 2]
    assert [len(part) for part in token_bounded(examples, 1)] == [1, 1, 1, 1]  # a row alone
    assert token_bounded(examples, None) == [examples]
    assert step_tokens(examples, False, cap) == sum(
        2 * max(len(e.input_ids) for e in part) for part in token_bounded(examples, cap))
    losses, forwards = {}, {}
    for limit in (None, cap):
        cfg = TrainConfig(epochs=3, batch_size=4, learning_rate=1e-2, warmup_ratio=0.0,
                          max_micro_batch_tokens=limit, share_prompt_prefix=False)
        torch.manual_seed(0)
        model = attach_lora(AutoModelForCausalLM.from_pretrained(tiny_model_dir), cfg)
        rows = []
        model.get_base_model().model.register_forward_hook(
            lambda module, args, kwargs, output, rows=rows: rows.append(
                kwargs["input_ids"].shape[0]) if module.training else None,
            with_kwargs=True)
        report = train_loop(model, examples, examples, cfg, pad_id=0, seed=0, bf16=False)
        losses[limit], forwards[limit] = [*report.losses, report.val_loss_after], rows
    assert forwards[None] == [4, 4, 4] and forwards[cap] == [2] * 6
    assert losses[cap] == pytest.approx(losses[None], rel=1e-4)
