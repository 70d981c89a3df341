"""The training loop on the tiny model: packing, accumulation, schedules, early stopping,
checkpoints and resume, methods."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from conftest import CAPITALS  # noqa: E402
from tuneline.errors import ConfigError  # noqa: E402
from tuneline.train.config import TrainConfig  # noqa: E402


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from tuneline.models.loading import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


def _examples(tokenizer, pairs=CAPITALS, answer="It is {}."):
    from tuneline.train.tokenize import tokenize_chat

    return [tokenize_chat(tokenizer, [{"role": "user", "content": f"Capital of {country}?"},
                                      {"role": "assistant", "content": answer.format(city)}],
                          64)
            for country, city, _ in pairs]


def _lora_model(model_dir, cfg):
    from transformers import AutoModelForCausalLM

    from tuneline.train.methods import prepare_for_training

    torch.manual_seed(0)
    return prepare_for_training(AutoModelForCausalLM.from_pretrained(model_dir), cfg)


def _trainable(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_packed_rows_give_each_example_exactly_its_padded_loss(tiny_model_dir, tokenizer):
    """No cross-contamination: a packed example's logits equal the example's logits alone."""
    from transformers import AutoModelForCausalLM

    from tuneline.train.loss import answer_loss
    from tuneline.train.tokenize import collate, collate_packed

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    examples = _examples(tokenizer)[:5]
    packed = collate_packed(examples)
    assert packed["input_ids"].shape[0] == 1
    assert packed["input_ids"].shape[1] == sum(len(e.input_ids) for e in examples)
    with torch.no_grad():
        # No cache: with one, transformers does not look for packed sequences.
        packed_logits = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"],
                              use_cache=False).logits[0]
        start = 0
        for example in examples:
            alone = model(input_ids=torch.tensor([example.input_ids])).logits[0]
            end = start + len(example.input_ids)
            assert torch.allclose(packed_logits[start:end], alone, atol=1e-5)
            start = end
        padded = answer_loss(model, collate(examples, tokenizer.pad_token_id))
        assert torch.allclose(answer_loss(model, packed), padded, atol=1e-5)


def test_accumulation_and_packing_take_the_same_step_as_one_padded_batch(tiny_model_dir,
                                                                         tokenizer):
    from tuneline.train.loop import train_loop

    examples = _examples(tokenizer)[:8]
    results = []
    for extra in ({}, {"gradient_accumulation_steps": 4}, {"packing": True}):
        cfg = TrainConfig(max_steps=1, batch_size=8, learning_rate=1e-2, warmup_ratio=0.0,
                          lr_scheduler="constant", checkpoint_every=0, **extra)
        model = _lora_model(tiny_model_dir, cfg)
        report = train_loop(model, examples, [], cfg, tokenizer.pad_token_id, 0, False)
        results.append((report.losses[0], _trainable(model)))
    (loss, weights), *others = results
    for other_loss, other_weights in others:
        assert other_loss == pytest.approx(loss, rel=1e-5)
        for name, value in weights.items():
            # Adam's first step moves every weight by about lr (1e-2) times the sign of its
            # gradient; the same gradient summed in another order differs in rounding only,
            # which Adam can amplify to ~1e-6 on a near-zero gradient (seen on AVX2 CPUs).
            assert torch.allclose(other_weights[name], value, atol=1e-5), name


def test_warmup_then_cosine_and_constant_schedules(tiny_model_dir, tokenizer):
    from tuneline.train.loop import train_loop

    examples = _examples(tokenizer)
    for scheduler in ("cosine", "constant"):
        cfg = TrainConfig(max_steps=10, batch_size=4, learning_rate=1e-2, warmup_ratio=0.3,
                          lr_scheduler=scheduler, checkpoint_every=0)
        report = train_loop(_lora_model(tiny_model_dir, cfg), examples, [], cfg,
                            tokenizer.pad_token_id, 0, False)
        lrs = [row["lr"] for row in report.log if "lr" in row]
        assert len(lrs) == 10
        assert lrs[0] < lrs[1] < lrs[2] == pytest.approx(1e-2)  # 3 warmup steps
        if scheduler == "cosine":
            assert all(a > b for a, b in zip(lrs[2:], lrs[3:], strict=False))
            assert lrs[-1] == pytest.approx(0.0, abs=1e-12)
        else:
            assert lrs[2:] == pytest.approx([1e-2] * 8)


def test_early_stopping_keeps_the_best_weights(tiny_model_dir, tokenizer):
    """Validation asks for answers that contradict training, so its loss rises after a while."""
    from tuneline.train.loop import make_accelerator, train_loop, validation_loss
    from tuneline.train.loss import AnswerLossModule

    train_set = _examples(tokenizer)
    val_set = _examples(tokenizer, answer="No, it is Oslo, not {}.")
    cfg = TrainConfig(max_steps=60, batch_size=4, learning_rate=3e-2, warmup_ratio=0.0,
                      eval_every=2, early_stopping_patience=2, checkpoint_every=0)
    model = _lora_model(tiny_model_dir, cfg)
    report = train_loop(model, train_set, val_set, cfg, tokenizer.pad_token_id, 0, False)
    vals = [row["val_loss"] for row in report.log if "val_loss" in row]
    assert report.stopped_early and report.steps < 60
    assert report.best_step is not None and report.best_step < report.steps
    assert report.val_loss_after == pytest.approx(min(vals))
    again = validation_loss(AnswerLossModule(model), val_set, cfg, tokenizer.pad_token_id, False,
                            make_accelerator())
    assert again == pytest.approx(min(vals), rel=1e-5)


def test_resuming_from_a_checkpoint_matches_an_uninterrupted_run(tiny_model_dir, tokenizer,
                                                                 tmp_path):
    from tuneline.train.checkpoint import CheckpointStore
    from tuneline.train.loop import train_loop

    examples = _examples(tokenizer)
    cfg = TrainConfig(max_steps=12, batch_size=4, learning_rate=1e-2, checkpoint_every=4,
                      keep_checkpoints=2, lora={"dropout": 0.1})
    straight = _lora_model(tiny_model_dir, cfg)
    expected = train_loop(straight, examples, examples[:4], cfg, tokenizer.pad_token_id, 0,
                          False)

    class Crash(Exception):
        pass

    def crash_at_step_10(step, _metrics):
        if step == 10:
            raise Crash

    store = CheckpointStore(tmp_path / "ckpt", keep=2)
    with pytest.raises(Crash):
        train_loop(_lora_model(tiny_model_dir, cfg), examples, examples[:4], cfg,
                   tokenizer.pad_token_id, 0, False, store=store, on_log=crash_at_step_10)
    assert [p.name for p in sorted(store.root.iterdir())] == ["step-00000004", "step-00000008"]
    resumed_model = _lora_model(tiny_model_dir, cfg)
    resumed = train_loop(resumed_model, examples, examples[:4], cfg, tokenizer.pad_token_id, 0,
                         False, store=store)
    assert resumed.resumed_from_step == 8
    assert resumed.losses == pytest.approx(expected.losses, rel=1e-6)
    assert resumed.val_loss_before == pytest.approx(expected.val_loss_before)
    for name, value in _trainable(straight).items():
        assert torch.allclose(_trainable(resumed_model)[name], value, atol=1e-6), name


def test_a_half_written_checkpoint_is_never_resumed(tmp_path):
    from tuneline.train.checkpoint import CheckpointStore

    store = CheckpointStore(tmp_path, keep=2)
    store.begin(4)
    assert store.latest() is None
    store.commit(4)
    store.begin(8)  # a crash while writing step 8 leaves only the staging folder
    assert store.latest().name == "step-00000004"


def test_full_fine_tuning_trains_every_weight(tiny_model_dir, tokenizer):
    from tuneline.train.loop import train_loop

    cfg = TrainConfig(method="full", max_steps=3, batch_size=4, learning_rate=1e-3,
                      checkpoint_every=0)
    model = _lora_model(tiny_model_dir, cfg)
    before = _trainable(model)
    assert len(before) == len(list(model.parameters()))
    train_loop(model, _examples(tokenizer), [], cfg, tokenizer.pad_token_id, 0, False)
    after = _trainable(model)
    assert all(not torch.equal(before[n], after[n]) for n in before if "norm" not in n)


def test_qlora_on_cpu_fails_with_a_clear_message():
    from tuneline.train.methods import check_method_supported

    with pytest.raises(ConfigError, match="qlora needs a CUDA GPU"):
        check_method_supported(TrainConfig(method="qlora"), "cpu")


def test_a_batch_that_does_not_split_evenly_is_a_config_error(tiny_model_dir, tokenizer):
    from tuneline.train.loop import train_loop

    cfg = TrainConfig(batch_size=6, gradient_accumulation_steps=4)
    with pytest.raises(ConfigError, match="multiple of 4"):
        train_loop(_lora_model(tiny_model_dir, cfg), _examples(tokenizer), [], cfg, 0, 0, False)
