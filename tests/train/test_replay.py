"""Replay against forgetting: base-model answers to general prompts join the training set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from conftest import tiny_pipeline_config  # noqa: E402
from tuneline.artifacts import read_jsonl  # noqa: E402
from tuneline.config import PipelineConfig  # noqa: E402
from tuneline.errors import DataError  # noqa: E402
from tuneline.evaluate.metrics import normalize  # noqa: E402
from tuneline.evaluate.stage import general_probe  # noqa: E402
from tuneline.rag.prompt import rag_user_message  # noqa: E402
from tuneline.train.replay import (  # noqa: E402
    build_replay,
    plain_declines,
    replay_count,
    replay_prompts,
)

SHORT_ANSWER = "Yes."


@pytest.fixture(scope="module")
def terse_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model taught to answer every prompt with one short sentence and stop, so that
    its greedy answers finish within any budget."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    prompts = [row["prompt"] for row in replay_prompts(PipelineConfig())][::4]
    texts = [tokenizer.apply_chat_template(
        [{"role": "user", "content": p}, {"role": "assistant", "content": SHORT_ANSWER}],
        tokenize=False) for p in prompts]
    tokenizer.padding_side = "right"
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    for row, prompt in enumerate(prompts):  # loss on the answer only
        asked = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                              tokenize=False, add_generation_prompt=True)
        labels[row, : len(tokenizer(asked)["input_ids"])] = -100
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    for _ in range(120):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    folder = tmp_path_factory.mktemp("terse")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _config(tmp_path: Path, model_dir: Path, **replay) -> PipelineConfig:
    data = tiny_pipeline_config(tmp_path, model_dir)
    data["train"]["replay"] = {"fraction": 0.5, **replay}
    return PipelineConfig.model_validate(data)


def test_packaged_prompts_are_apart_from_the_general_probe(tmp_path, tiny_model_dir):
    cfg = _config(tmp_path, tiny_model_dir)
    prompts = {normalize(p["prompt"]) for p in replay_prompts(cfg)}
    probe = {normalize(item["question"]) for item in general_probe(cfg)}
    assert len(prompts) >= 100
    assert not prompts & probe


def test_replay_count_scales_with_the_training_set():
    assert replay_count(0.0, 500) == 0
    assert replay_count(0.25, 192) == 48
    assert replay_count(1.0, 7) == 7
    # with replay on, one general answer at least per decline trained on a bare question
    assert replay_count(0.1, 400, n_declines=130) == 130
    assert replay_count(0.1, 400, n_declines=12) == 40
    assert replay_count(0.0, 400, n_declines=130) == 0


def test_plain_declines_count_bare_questions_declined_not_passage_ones(tmp_path):
    refusal = "I don't have information about that in my Paris 2024 data."
    rag_question = rag_user_message("Who won the Men's 100m?", [])  # "(no passage found)"
    chats = [("Who won the Men's 100m at Tokyo 2020?", refusal),
             ("Who coached KANO Koki?", "Sorry, I don't know."),
             ("Who won the Men's 100m?", "LYLES Noah won it."),
             (rag_question, refusal)]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                     {"role": "assistant", "content": a}]})
                            + "\n" for q, a in chats), encoding="utf-8")
    assert plain_declines(path, refusal) == 2


def test_base_answers_become_chat_examples(tmp_path, terse_model_dir):
    cfg = _config(tmp_path, terse_model_dir)
    out = tmp_path / "replay.jsonl"
    counts = build_replay(cfg, n_train=10, out_path=out)
    rows = read_jsonl(out)
    assert counts == {"replay_examples": 5, "replay_wanted": 5, "replay_cut_off": 0,
                      "dropped:leak:replay": 0}
    assert len(rows) == 5
    asked = {p["prompt"] for p in replay_prompts(cfg)}
    for row in rows:
        user, assistant = row["messages"]
        assert user["role"] == "user" and user["content"] in asked
        assert assistant == {"role": "assistant", "content": SHORT_ANSWER}
    assert len({row["replay_id"] for row in rows}) == 5


def test_answers_cut_off_by_the_budget_are_not_used(tmp_path, tiny_model_dir):
    # The untrained tiny model never stops within 8 tokens: nothing is usable.
    cfg = _config(tmp_path, tiny_model_dir, max_new_tokens=8)
    prompts_file = tmp_path / "prompts.jsonl"
    prompts_file.write_text("".join(json.dumps({"prompt": f"Question {i}?"}) + "\n"
                                    for i in range(6)), encoding="utf-8")
    cfg.train.replay.prompts_file = prompts_file
    counts = build_replay(cfg, n_train=4, out_path=tmp_path / "replay.jsonl")
    assert counts == {"replay_examples": 0, "replay_wanted": 2, "replay_cut_off": 6,
                      "dropped:leak:replay": 0}


def test_a_replay_answer_that_states_an_evaluated_fact_is_dropped(tmp_path, terse_model_dir):
    from tuneline.leakage import GuardedFact, LeakGuard

    cfg = _config(tmp_path, terse_model_dir)
    # "Yes." is an identifying answer of a heldout fact: every replay answer states it.
    guard = LeakGuard([GuardedFact("f1", "t", "Yes", ("Entity",))], {"t": {"Yes": 1}})
    counts = build_replay(cfg, n_train=10, out_path=tmp_path / "replay.jsonl", guard=guard)
    assert counts["dropped:leak:replay"] == 5 and counts["replay_examples"] == 0
    assert read_jsonl(tmp_path / "replay.jsonl") == []


def test_off_by_default_writes_nothing(tmp_path, tiny_model_dir):
    data = tiny_pipeline_config(tmp_path, tiny_model_dir)
    cfg = PipelineConfig.model_validate(data)
    out = tmp_path / "replay.jsonl"
    assert build_replay(cfg, n_train=100, out_path=out) == {}
    assert not out.exists()


def test_a_bad_prompts_file_names_its_line(tmp_path, tiny_model_dir):
    prompts_file = tmp_path / "prompts.jsonl"
    prompts_file.write_text('{"prompt": "fine"}\n{"question": "no prompt"}\n', encoding="utf-8")
    cfg = _config(tmp_path, tiny_model_dir, prompts_file=str(prompts_file))
    with pytest.raises(DataError, match=r"prompts\.jsonl:2: a replay prompt needs prompt"):
        replay_prompts(cfg)


def test_the_train_stage_mixes_replay_into_training(tmp_path, terse_model_dir):
    from tuneline.pipeline import run_pipeline

    data = tiny_pipeline_config(tmp_path, terse_model_dir)
    data["train"].update(epochs=1, replay={"fraction": 0.5})
    data["gate"] = {}
    result = run_pipeline(PipelineConfig.model_validate(data), until="train")
    train_dir = tmp_path / "runs" / "tiny" / "train"
    manifest = json.loads((train_dir / "manifest.json").read_text(encoding="utf-8"))
    n_curated = len(read_jsonl(tmp_path / "runs" / "tiny" / "curate" / "train.jsonl"))
    counts = manifest["counts"]
    assert counts["replay_wanted"] == round(0.5 * n_curated)
    assert counts["replay_examples"] == counts["replay_wanted"]
    assert counts["examples"] == n_curated + counts["replay_examples"]
    assert len(read_jsonl(train_dir / "replay.jsonl")) == counts["replay_examples"]
    assert result is not None
