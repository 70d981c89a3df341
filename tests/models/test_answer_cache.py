"""The base model's answers cached by model content, precision, budget and prompt."""

from __future__ import annotations

import hashlib
import json

from tuneline.models.answer_cache import AnswerCache, model_hash
from tuneline.models.generation import Generation


def _model(folder, weights=b"w1"):
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def _counting():
    calls = []

    def generate(conversations):
        calls.append(len(conversations))
        return [Generation(f"answer to {c[-1]['content']}", 3, 2, "stop") for c in conversations]

    return generate, calls


def _ask(*questions):
    return [[{"role": "user", "content": q}] for q in questions]


def test_answers_are_generated_once_per_model_budget_and_prompt(tmp_path):
    key = model_hash(str(_model(tmp_path / "m")))
    cache = AnswerCache(tmp_path / "answers.sqlite", f"{key}:fp32")
    generate, calls = _counting()
    first, hits = cache.answer(_ask("a", "b"), 16, generate)
    assert hits == 0 and calls == [2]
    again, hits = cache.answer(_ask("b", "c", "a"), 16, generate)
    assert hits == 2 and calls == [2, 1]
    assert [g.text for g in again] == ["answer to b", "answer to c", "answer to a"]
    assert again[0] == first[1]
    _, hits = cache.answer(_ask("a"), 32, generate)  # another budget: generated again
    assert hits == 0 and calls == [2, 1, 1]


def test_other_weights_or_precision_do_not_share_answers(tmp_path):
    folder = _model(tmp_path / "m")
    before = model_hash(str(folder))
    generate, calls = _counting()
    AnswerCache(tmp_path / "a.sqlite", f"{before}:fp32").answer(_ask("a"), 8, generate)
    _, hits = AnswerCache(tmp_path / "a.sqlite", f"{before}:bf16").answer(_ask("a"), 8,
                                                                           generate)
    assert hits == 0
    _model(folder, b"w2")
    after = model_hash(str(folder))
    assert after != before
    _, hits = AnswerCache(tmp_path / "a.sqlite", f"{after}:fp32").answer(_ask("a"), 8, generate)
    assert hits == 0 and calls == [1, 1, 1]


def test_answers_with_stop_strings_are_kept_apart_from_those_without(tmp_path):
    cache = AnswerCache(tmp_path / "answers.sqlite", "model:fp32")
    generate, calls = _counting()
    cache.answer(_ask("a"), 8, generate)
    _, hits = cache.answer(_ask("a"), 8, generate, stops=("<passage",))
    assert hits == 0 and calls == [1, 1]
    assert cache.missing(_ask("a", "b"), 8, ("<passage",)) == [1]
    _, hits = cache.answer(_ask("a"), 8, generate)  # the answer without stops is still kept
    assert hits == 1 and calls == [1, 1]
    # and so are answers kept before stops were keyed: their key is unchanged
    before = json.dumps(["model:fp32", 8, _ask("a")[0]], ensure_ascii=False, sort_keys=True)
    assert cache.key(_ask("a")[0], 8) == hashlib.sha256(before.encode()).hexdigest()
