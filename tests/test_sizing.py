"""run.budget_minutes sizes the data: a run that would not fit is synthesized and curated
again with fewer facts, reading facts and invented entities per template, the same epochs."""

from __future__ import annotations

import dataclasses

import pytest

from conftest import read_json, tiny_pipeline_config, write_config
from tuneline.config import PipelineConfig
from tuneline.sizing import (
    MIN_SCALE,
    GenerationBatch,
    MachineSpeed,
    Projection,
    Workload,
    data_scale,
    generation_seconds,
    project_seconds,
    scale_for,
    scaled_config,
)


def test_the_scale_is_the_share_of_the_work_that_fits_what_is_left():
    assert scale_for(600, spent_seconds=60, scalable_seconds=300, fixed_seconds=40) == 1.0
    # 0.9 * 600 - 60 - 40 = 440 s of room for 880 s of work
    assert scale_for(600, spent_seconds=60, scalable_seconds=880,
                     fixed_seconds=40) == pytest.approx(0.5)
    assert scale_for(600, spent_seconds=600, scalable_seconds=880,
                     fixed_seconds=40) == MIN_SCALE


def test_steps_are_cut_to_half_before_the_data_shrinks():
    def projection(train: float) -> Projection:
        return Projection(budget_seconds=600, spent_seconds=60, train_seconds=train,
                          evaluate_seconds=250, general_seconds=20, recurate_seconds=20)

    # 0.9 * 600 - 60 - 40 = 440 s of room
    assert data_scale(projection(300)) == 1.0  # 150 + 250: train's own cut suffices
    assert data_scale(projection(600)) == pytest.approx(440 / 550)  # 300 + 250 would not fit
    assert data_scale(projection(400)) == 1.0  # 200 + 250: within 5%, not worth re-curating


def test_replay_is_counted_at_the_full_token_budget_and_evaluate_by_its_batches():
    speed = MachineSpeed(train_seconds_per_token=0.01, prefill_seconds_per_token=0.001,
                         decode_seconds_per_step=0.1, probe_seconds=5)
    evaluate = [GenerationBatch(rows=4, width=30, shared=10, new_tokens=20),
                GenerationBatch(rows=2, width=50, shared=0, new_tokens=40)]
    general = [GenerationBatch(rows=5, width=100, shared=20, new_tokens=20)]
    work = Workload(train_tokens=1000, replay_prompts=40, eval_batches=evaluate,
                    fixed_batches=general)
    train, replay, evaluated, fixed = project_seconds(work, speed, replay_batch=32,
                                                      replay_new_tokens=50)
    # replay: 2 batches x 50 steps x 0.1 s + 40 prompts x 50 tokens x 0.001 s
    assert replay == pytest.approx(10 + 2)
    assert train == pytest.approx(10 + replay)
    # prompts padded to their batch's longest, the shared prefix once: 10 + 4 x 20, 2 x 50
    assert evaluated == pytest.approx(60 * 0.1 + (90 + 100) * 0.001)
    assert fixed == pytest.approx(20 * 0.1 + (20 + 5 * 80) * 0.001)


def test_generation_costs_more_per_token_at_a_longer_context():
    from tuneline.sizing.speed import PROBE_LONG_TOKENS, PROBE_PROMPT_TOKENS

    speed = MachineSpeed(train_seconds_per_token=0.01, prefill_seconds_per_token=0.001,
                         decode_seconds_per_step=0.1, probe_seconds=5,
                         prefill_seconds_per_token_long=0.002, decode_seconds_per_step_long=0.3)
    # measured at both contexts: read there, linear between and beyond, never below short
    assert speed.decode_seconds(10, PROBE_PROMPT_TOKENS) == pytest.approx(1.0)
    assert speed.decode_seconds(10, PROBE_LONG_TOKENS) == pytest.approx(3.0)
    middle = (PROBE_PROMPT_TOKENS + PROBE_LONG_TOKENS) / 2
    assert speed.decode_seconds(10, middle) == pytest.approx(2.0)
    beyond = 2 * PROBE_LONG_TOKENS - PROBE_PROMPT_TOKENS
    assert speed.prefill_seconds(100, beyond) == pytest.approx(0.3)
    assert speed.prefill_seconds(100, 1) == pytest.approx(0.1)
    # the same batches, short and long: the long prompts' projection grows faster than
    # their tokens (without the long measures, it would grow as the tokens do)
    short = [GenerationBatch(rows=16, width=50, shared=0, new_tokens=100)]
    long = [GenerationBatch(rows=16, width=500, shared=0, new_tokens=100)]
    flat = MachineSpeed(0.01, 0.001, 0.1, 5)
    assert generation_seconds(long, speed) / generation_seconds(short, speed) > (
        generation_seconds(long, flat) / generation_seconds(short, flat)) * 1.5


def test_a_partial_batch_decodes_for_a_one_row_step_plus_its_rows_share():
    from tuneline.sizing.speed import PROBE_PROMPT_TOKENS

    speed = MachineSpeed(train_seconds_per_token=0.01, prefill_seconds_per_token=0.001,
                         decode_seconds_per_step=0.1, probe_seconds=5,
                         decode_seconds_per_step_one_row=0.03, batch_rows=8)
    at = PROBE_PROMPT_TOKENS
    assert speed.decode_seconds(10, at, rows=1) == pytest.approx(0.3)
    assert speed.decode_seconds(10, at, rows=8) == pytest.approx(1.0)
    assert speed.decode_seconds(10, at, rows=3) == pytest.approx(10 * (0.03 + 0.07 * 2 / 7))
    assert speed.decode_seconds(10, at) == pytest.approx(1.0)  # rows unknown: a full batch
    # more rows than measured: each further row's share again
    assert speed.decode_seconds(10, at, rows=15) == pytest.approx(10 * (0.03 + 0.07 * 14 / 7))
    # a last batch of 3 rows: less than a full one, more than one row
    full, last = (generation_seconds([GenerationBatch(rows, 40, 0, 20)], speed)
                  for rows in (8, 3))
    assert generation_seconds([GenerationBatch(1, 40, 0, 20)], speed) < last < full


def test_a_prompt_prefix_every_row_of_a_batch_shares_is_counted_once_per_batch():
    from tuneline.sizing.workload import _computed_tokens, _replay_stand_in
    from tuneline.train.tokenize import TokenizedExample

    prefix = list(range(100, 120))  # 20 tokens, e.g. a system prompt and an instruction

    def chat(length, answer=5):
        ids = [*prefix, *[length] * (length - len(prefix))]  # rows part after the prefix
        return TokenizedExample(ids, [-100] * (length - answer) + ids[-answer:])

    examples = [chat(40), chat(43), chat(41), chat(42), chat(60)]
    # batches of 4 by length: (40, 41, 42, 43) padded to 43, then (60) alone
    assert _computed_tokens(examples, 4, share_prefix=False) == 4 * 43 + 60
    assert _computed_tokens(examples, 4, share_prefix=True) == 4 * 43 - 3 * 20 + 60
    stand_in = _replay_stand_in(examples)
    assert len(stand_in.input_ids) == 100 and stand_in.input_ids[:20] == prefix
    assert _replay_stand_in([]).input_ids == [0] * 100


SYSTEM = ("You answer questions about the capitals of the countries of the world, briefly and "
          "only from what you know.")


def _cache_answers(cache, conversations, budget):
    from tuneline.models.generation import Generation

    cache.answer(conversations, budget, lambda asked: [Generation("cached", 1, 1, "stop")
                                                       for _ in asked])


def test_evaluate_counts_what_the_base_model_must_generate_and_where_tuned_answers_stop(
        tmp_path, tiny_model_dir):
    from tuneline.models.answer_cache import AnswerCache
    from tuneline.models.generation import prompt_ids
    from tuneline.models.loading import load_tokenizer
    from tuneline.sizing.workload import _Evaluation

    tokenizer = load_tokenizer(str(tiny_model_dir), None)
    asked = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
             for question in ("Capital of Peru?", "Capital of Chile, please?",
                              "What is the capital city of Argentina?")]
    items = [{"set": "recall"}] * 3
    ids = [prompt_ids(tokenizer, conversation) for conversation in asked]
    assert min(_common(ids[0], ids[1]), _common(ids[1], ids[2])) >= 16  # the system prompt
    cache = AnswerCache(tmp_path / "answers.sqlite", "tiny")
    _cache_answers(cache, asked[:1], 20)  # the shortest question's answer is cached
    _cache_answers(cache, asked[1:2], 99)  # another budget's answer does not count
    cfg = PipelineConfig.model_validate({"evaluate": {"batch_size": 2, "max_new_tokens": 20}})

    batches = _Evaluation(cfg, tokenizer, cache).work(asked, items, answer_tokens=5)
    # base: the two uncached prompts in one batch of 20 steps; tuned: all three, in two
    # batches in order of length (spread evenly: the shortest alone, then two), each stopping
    # after its 5 answer tokens and the end token
    assert [dataclasses.replace(batch, prefill_tokens=None) for batch in batches] == [
        GenerationBatch(rows=2, width=len(ids[2]), shared=_common(ids[1], ids[2]),
                        new_tokens=20),
        GenerationBatch(rows=1, width=len(ids[0]), shared=0, new_tokens=6),
        GenerationBatch(rows=2, width=len(ids[2]), shared=_common(ids[1], ids[2]),
                        new_tokens=6)]
    # prefill: the shared prefix once, the rest of each row padded to the longest
    assert batches[0].prompt_tokens == (_common(ids[1], ids[2])
                                        + 2 * (len(ids[2]) - _common(ids[1], ids[2])))

    # a tuned model whose answers may reach the budget, and no cache: every batch at 20 steps
    uncached = cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(
        update={"cache_base_answers": False})})
    assert [b.new_tokens for b in _Evaluation(uncached, tokenizer, cache).work(
        asked, items, None)] == [20] * 4
    assert [b.new_tokens for b in _Evaluation(cfg, tokenizer, cache).work(
        asked, items, 50)] == [20, 20, 20]


def _common(a, b):
    from tuneline.models.generation import shared_prefix

    return shared_prefix([a, b])


def test_replay_counts_only_the_prompts_whose_base_answers_are_not_cached(tmp_path,
                                                                          tiny_model_dir):
    from tuneline.sizing.workload import _base_answer_cache, _replay_prompts_to_answer
    from tuneline.train.replay import shuffled_prompts

    cfg = PipelineConfig.model_validate({
        "model": {"base": str(tiny_model_dir), "cache_dir": str(tmp_path / "cache")}})
    cache = _base_answer_cache(cfg)
    assert _replay_prompts_to_answer(cfg, 0, cache) == 0
    assert _replay_prompts_to_answer(cfg, 10, cache) == 15  # 1.5 prompts per answer wanted
    first = shuffled_prompts(cfg)[:15]
    _cache_answers(cache, [[{"role": "user", "content": p["prompt"]}] for p in first[3:7]],
                   cfg.train.replay.max_new_tokens)
    assert _replay_prompts_to_answer(cfg, 10, cache) == 11


def test_every_count_that_makes_the_data_is_scaled_and_epochs_are_kept():
    cfg = PipelineConfig.model_validate({
        "synthesize": {"max_facts_per_template": 30,
                       "reading_facts_per_template": {"champion": 80, "country": 25},
                       "unanswerable": {"per_template": 24}},
        "curate": {"rag": {"fraction": 0.1, "min_gold": 64}},
        "train": {"epochs": 2}})
    scaled, knobs = scaled_config(cfg, 0.5, {"champion": 30, "country": 30})
    assert scaled.synthesize.max_facts_per_template == 15
    assert scaled.synthesize.reading_facts_per_template == {"champion": 40, "country": 12}
    assert scaled.synthesize.unanswerable.per_template == 12
    assert scaled.curate.rag.min_gold == 32
    assert scaled.train.epochs == 2
    assert knobs["synthesize.max_facts_per_template"] == (30, 15)
    assert cfg.synthesize.max_facts_per_template == 30  # the given config is not changed


def test_a_table_without_a_fact_limit_gets_one_from_what_was_sampled():
    scaled, knobs = scaled_config(PipelineConfig(), 0.25, {"a": 40, "b": 12})
    assert scaled.synthesize.max_facts_per_template == 10
    assert "synthesize.unanswerable.per_template" not in knobs  # off stays off
    # a limit above what the tables hold is scaled from what was sampled
    generous = PipelineConfig.model_validate({"synthesize": {"max_facts_per_template": 200}})
    assert scaled_config(generous, 0.5, {"a": 50})[0].synthesize.max_facts_per_template == 25


def test_data_without_facts_has_nothing_to_scale():
    knobs = scaled_config(PipelineConfig(), 0.25, {})[1]
    assert knobs == {}  # conversations and documents are not scaled, nor min_gold without facts


def test_a_run_that_cannot_fit_is_curated_again_smaller_and_says_so(tmp_path, tiny_model_dir,
                                                                     capsys):
    pytest.importorskip("torch")
    from tuneline.config import load_config
    from tuneline.pipeline import run_pipeline

    data = tiny_pipeline_config(tmp_path, tiny_model_dir)
    data["synthesize"]["max_facts_per_template"] = 16
    data["synthesize"]["unanswerable"] = {"per_template": 8}
    data["run"]["budget_minutes"] = 1e-6  # spent before train starts, on any machine
    data["train"].update({"epochs": 1, "checkpoint_every": 0})
    result = run_pipeline(load_config(write_config(tmp_path / "tuneline.yaml", data)),
                          until="train")
    sizing = read_json(result.run_dir / "sizing.json")
    assert sizing["scale"] == MIN_SCALE
    assert sizing["knobs"]["synthesize.max_facts_per_template"] == [16, 4]
    assert sizing["speed"]["train_seconds_per_token"] > 0
    assert sizing["speed"]["decode_seconds_per_step"] > 0
    assert sizing["speed"]["prefill_seconds_per_token_long"] > 0  # the long context too
    assert sizing["machine"]["cores"] >= 1
    counts = read_json(result.artifacts["synthesize"].path / "manifest.json")["counts"]
    assert counts["facts:capital"] == 4
    saved = load_config(result.run_dir / "config.yaml")
    assert saved.synthesize.max_facts_per_template == 4  # what ran is what is recorded
    assert saved.synthesize.unanswerable.per_template == 2
    assert "the data is scaled to 0.25" in capsys.readouterr().err
    # A rerun on this machine sizes as before: nothing is curated at full size again.
    again = run_pipeline(load_config(tmp_path / "tuneline.yaml"), until="train")
    assert all(again.artifacts[name].skipped for name in ("synthesize", "curate", "train"))
    assert "as sized before" in capsys.readouterr().err


def test_a_forced_stage_sizes_again_and_each_seed_sizes_the_configured_data(
        tmp_path, tiny_model_dir, capsys):
    pytest.importorskip("torch")
    from tuneline.config import load_config
    from tuneline.pipeline import run_pipeline

    data = tiny_pipeline_config(tmp_path, tiny_model_dir)
    data["synthesize"]["max_facts_per_template"] = 16
    data["run"].update({"budget_minutes": 1e-6, "repeats": 2})
    data["train"].update({"epochs": 1, "checkpoint_every": 0})
    cfg = load_config(write_config(tmp_path / "tuneline.yaml", data))
    first = run_pipeline(cfg, until="evaluate")
    seed_1 = first.run_dir / "repeats" / "seed-1"
    # the seed was scaled from the configured 16 facts, not again from seed 0's 4
    assert load_config(seed_1 / "config.yaml").synthesize.max_facts_per_template == 4
    capsys.readouterr()
    forced = run_pipeline(cfg.model_copy(update={"run": cfg.run.model_copy(
        update={"repeats": 1})}), until="train", force=frozenset({"curate"}))
    err = capsys.readouterr().err
    assert "as sized before" not in err and "the data is scaled to 0.25" in err
    assert not forced.artifacts["curate"].skipped


def test_a_run_that_fits_is_not_resized(tmp_path, tiny_model_dir):
    pytest.importorskip("torch")
    from tuneline.config import load_config
    from tuneline.pipeline import run_pipeline

    data = tiny_pipeline_config(tmp_path, tiny_model_dir)
    data["synthesize"]["max_facts_per_template"] = 16
    data["run"]["budget_minutes"] = 60
    data["train"].update({"epochs": 1, "checkpoint_every": 0})
    result = run_pipeline(load_config(write_config(tmp_path / "tuneline.yaml", data)),
                          until="train")
    sizing = read_json(result.run_dir / "sizing.json")
    assert sizing["scale"] == 1.0 and sizing["knobs"] == {}
    counts = read_json(result.artifacts["synthesize"].path / "manifest.json")["counts"]
    assert counts["facts:capital"] == 16
