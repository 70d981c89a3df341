"""run.budget_minutes: training measures its speed on its first steps and cuts a plan that
would not fit, with the schedule rebuilt for the cut plan, a resume keeping the cut, and the
pipeline handing train its share of what is left."""

from __future__ import annotations

import dataclasses

import pytest

torch = pytest.importorskip("torch")

from conftest import CAPITALS, read_json, tiny_pipeline_config, write_config  # noqa: E402
from tuneline.train.budget import MIN_SHARE, fit_plan  # noqa: E402
from tuneline.train.config import TrainConfig  # noqa: E402


def test_the_cut_keeps_the_steps_that_fit_and_never_less_than_a_quarter():
    costs = [100] * 20  # 1 s each at 0.01 s per token
    fits = fit_plan(costs, done=5, elapsed_seconds=5.0, seconds_per_token=0.01,
                    limit_seconds=1000.0)
    assert not fits.cut and fits.steps == 20 and fits.projected_seconds == pytest.approx(20.0)
    cut = fit_plan(costs, done=5, elapsed_seconds=5.0, seconds_per_token=0.01,
                   limit_seconds=12.5)
    assert cut.cut and cut.steps == 12
    # Longer steps later in the plan count for more than short ones.
    uneven = fit_plan([100] * 5 + [400] * 15, done=5, elapsed_seconds=5.0,
                      seconds_per_token=0.01, limit_seconds=15.0)
    assert uneven.steps == 7
    starved = fit_plan(costs, done=2, elapsed_seconds=5.0, seconds_per_token=0.01,
                       limit_seconds=1.0)
    assert starved.steps == round(20 * MIN_SHARE)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from tuneline.models.loading import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


def _examples(tokenizer):
    from tuneline.train.tokenize import tokenize_chat

    return [tokenize_chat(tokenizer, [{"role": "user", "content": f"Capital of {country}?"},
                                      {"role": "assistant", "content": f"It is {city}."}], 64)
            for country, city, _ in CAPITALS]


def _model(model_dir, cfg):
    from transformers import AutoModelForCausalLM

    from tuneline.train.methods import prepare_for_training

    torch.manual_seed(0)
    return prepare_for_training(AutoModelForCausalLM.from_pretrained(model_dir), cfg)


def test_a_plan_over_the_limit_is_cut_and_its_schedule_still_decays(tiny_model_dir, tokenizer):
    from tuneline.train.loop import train_loop

    cfg = TrainConfig(max_steps=40, batch_size=4, learning_rate=1e-2, warmup_ratio=0.1,
                      lr_scheduler="linear", checkpoint_every=0, time_limit_seconds=1e-3)
    report = train_loop(_model(tiny_model_dir, cfg), _examples(tokenizer), [], cfg,
                        tokenizer.pad_token_id, 0, False)
    assert report.budget is not None and report.budget.cut
    assert report.budget.planned_steps == 40 and report.steps == report.total_steps == 10
    lrs = [row["lr"] for row in report.log if "lr" in row]
    assert len(lrs) == 10
    assert max(lrs) == pytest.approx(1e-2, rel=0.05)  # warm-up of the uncut plan reached
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)  # and the decay ends with the cut plan

    roomy = cfg.model_copy(update={"time_limit_seconds": 3600.0})
    report = train_loop(_model(tiny_model_dir, roomy), _examples(tokenizer), [], roomy,
                        tokenizer.pad_token_id, 0, False)
    assert report.budget is not None and not report.budget.cut and report.steps == 40


def test_a_cut_below_one_epoch_counts_and_says_which_examples_are_never_trained(
        tiny_model_dir, tokenizer):
    from tuneline.train.loop import train_loop

    examples = _examples(tokenizer)
    # one example a step, one epoch planned: the steps the cut keeps (a quarter, or the
    # calibration steps and one more) reach as many examples
    cfg = TrainConfig(max_steps=len(examples), batch_size=1, checkpoint_every=0,
                      time_limit_seconds=1e-3)
    report = train_loop(_model(tiny_model_dir, cfg), examples, [], cfg,
                        tokenizer.pad_token_id, 0, False)
    budget = report.budget
    assert budget is not None and budget.cut and budget.steps < len(examples)
    assert budget.examples == len(examples) and budget.examples_trained == budget.steps
    never = len(examples) - budget.steps
    assert budget.as_dict()["examples_never_trained"] == never > 0
    assert f"{never} of {len(examples)} examples are never trained" in budget.describe(
        len(examples))

    # four epochs cut to one: every example is reached, nothing is said
    epochs = cfg.model_copy(update={"max_steps": 4 * len(examples)})
    report = train_loop(_model(tiny_model_dir, epochs), examples, [], epochs,
                        tokenizer.pad_token_id, 0, False)
    assert report.budget is not None and report.budget.cut
    assert report.budget.examples_trained == len(examples)
    assert "never trained" not in report.budget.describe(len(examples))


def test_training_stopped_within_its_first_epoch_lists_the_rows_it_never_trained(
        tiny_model_dir, tokenizer):
    from tuneline.train.loop import train_loop

    examples = [dataclasses.replace(e, row=n) for n, e in enumerate(_examples(tokenizer), 1)]
    cfg = TrainConfig(max_steps=2, batch_size=1, checkpoint_every=0)
    report = train_loop(_model(tiny_model_dir, cfg), examples, [], cfg,
                        tokenizer.pad_token_id, 0, False)
    never = report.rows_not_reached
    assert len(never) == len(set(never)) == len(examples) - 2
    assert set(never) < {e.row for e in examples}

    # a replay example (no row) is never listed; a whole epoch leaves nothing out
    replayed = [dataclasses.replace(e, row=None) for e in examples[:3]]
    one_epoch = cfg.model_copy(update={"max_steps": len(examples) + len(replayed)})
    report = train_loop(_model(tiny_model_dir, one_epoch), [*examples, *replayed], [],
                        one_epoch, tokenizer.pad_token_id, 0, False)
    assert report.rows_not_reached == []
    report = train_loop(_model(tiny_model_dir, cfg), replayed, [], cfg,
                        tokenizer.pad_token_id, 0, False)
    assert report.rows_not_reached == []


def test_a_resumed_cut_run_keeps_the_cut_plan(tiny_model_dir, tokenizer, tmp_path):
    from tuneline.train.checkpoint import CheckpointStore
    from tuneline.train.loop import train_loop

    cfg = TrainConfig(max_steps=40, batch_size=4, learning_rate=1e-2, checkpoint_every=6,
                      time_limit_seconds=1e-3)
    straight = train_loop(_model(tiny_model_dir, cfg), _examples(tokenizer), [], cfg,
                          tokenizer.pad_token_id, 0, False)

    class Crash(Exception):
        pass

    def crash_at_step_8(step, _metrics):
        if step == 8:
            raise Crash

    store = CheckpointStore(tmp_path / "ckpt", keep=2)
    with pytest.raises(Crash):
        train_loop(_model(tiny_model_dir, cfg), _examples(tokenizer), [], cfg,
                   tokenizer.pad_token_id, 0, False, store=store, on_log=crash_at_step_8)
    resumed = train_loop(_model(tiny_model_dir, cfg), _examples(tokenizer), [], cfg,
                         tokenizer.pad_token_id, 0, False, store=store)
    assert resumed.resumed_from_step == 6
    assert resumed.steps == resumed.total_steps == straight.steps == 10
    assert resumed.losses == pytest.approx(straight.losses, rel=1e-5)


def test_the_pipeline_gives_train_its_share_and_the_manifest_records_the_cut(
        tmp_path, tiny_model_dir):
    from tuneline.config import load_config
    from tuneline.pipeline import run_pipeline

    data = tiny_pipeline_config(tmp_path, tiny_model_dir)
    data["run"]["budget_minutes"] = 1e-6  # spent before train starts, on any machine
    data["train"].update({"epochs": 8, "batch_size": 2, "checkpoint_every": 0})
    trained = run_pipeline(load_config(write_config(tmp_path / "tuneline.yaml", data)),
                           until="train").artifacts["train"]
    details = read_json(trained.path / "manifest.json")["details"]
    budget = details["budget"]
    assert budget["cut"] and budget["limit_seconds"] == pytest.approx(1e-3)
    assert details["total_steps"] == budget["steps"] < budget["planned_steps"]
