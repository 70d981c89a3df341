"""The continuous-batching engine: same tokens as one-by-one generate, adapters, stops, queue."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from conftest import build_random_adapter  # noqa: E402
from tuneline.serve.config import BatchingConfig  # noqa: E402
from tuneline.serve.engines.engine import (  # noqa: E402
    FinalEvent,
    GenerationRequest,
    QueueFull,
    SamplingParams,
    TextEvent,
)
from tuneline.serve.engines.transformers_engine import TransformersEngine  # noqa: E402

QUESTIONS = ["What is the capital of Peru?", "Name the capital of Japan, please, right now.",
             "Hi", "Which continent is Kenya in? Tell me all about it in great detail."]


class Collector:
    """Gathers one request's events; `wait()` returns its final event."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.final: FinalEvent | None = None
        self._done = threading.Event()

    def __call__(self, event: TextEvent | FinalEvent) -> None:
        if isinstance(event, FinalEvent):
            self.final = event
            self._done.set()
        else:
            self.texts.append(event.text)

    def wait(self, timeout: float = 60) -> FinalEvent:
        assert self._done.wait(timeout), "the engine never finished the request"
        assert self.final is not None
        return self.final


def _reference(model, tokenizer, prompt: list[int], max_new: int, adapter=None) -> list[int]:
    """Greedy tokens from plain `generate`, one prompt alone (no padding)."""
    ids = torch.tensor([prompt])
    kwargs = {"adapter_names": [adapter]} if adapter else {}
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new,
                             do_sample=False, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id, **kwargs)
    return out[0, len(prompt):].tolist()


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path):
    engine = TransformersEngine.load(str(tiny_model_dir), None, precision="fp32",
                                     batching=BatchingConfig(max_batch_size=3, max_queue=2))
    yield engine
    engine.close()


def _prompt(engine, question: str, adapter=None) -> list[int]:
    return engine.encode_chat([{"role": "user", "content": question}], adapter)


def test_batched_tokens_equal_one_by_one_generate(engine):
    """Requests joining a running batch mid-decode (cache merged, left-padded, trimmed when
    others finish) get exactly the tokens greedy `generate` gives each prompt alone."""
    budgets = [20, 5, 30, 12]
    prompts = [_prompt(engine, q) for q in QUESTIONS]
    steps = threading.Semaphore(0)
    engine.batcher.on_step = lambda size: steps.release()
    collectors = []
    try:
        for prompt, budget in zip(prompts, budgets, strict=True):
            collector = Collector()
            engine.submit(GenerationRequest(prompt, SamplingParams(budget)), collector)
            collectors.append(collector)
            for _ in range(3):  # the next request arrives three decode steps later
                steps.acquire(timeout=10)
        finals = [c.wait() for c in collectors]
    finally:
        engine.batcher.on_step = None
    # The template's shared opening was prefilled once and reused (the path under test).
    assert engine.batcher.shared_prefixes[None] and None in engine.batcher._prefix_kv
    for final, prompt, budget in zip(finals, prompts, budgets, strict=True):
        assert list(final.token_ids) == _reference(engine.model, engine.tokenizer, prompt, budget)
        assert final.prompt_tokens == len(prompt) and final.completion_tokens == budget
        assert final.finish_reason == "length"


def test_streamed_text_adds_up_to_the_final_text(engine):
    collector = Collector()
    engine.submit(GenerationRequest(_prompt(engine, QUESTIONS[0]),
                                    SamplingParams(40, temperature=1.0, seed=3)), collector)
    final = collector.wait()
    assert "".join(collector.texts) == final.text and final.text


def test_seeded_sampling_repeats_and_differs_by_seed(engine):
    def sample(seed: int) -> tuple[int, ...]:
        collector = Collector()
        request = GenerationRequest(_prompt(engine, QUESTIONS[1]),
                                    SamplingParams(24, temperature=1.2, top_p=0.95, seed=seed))
        engine.submit(request, collector)
        return collector.wait().token_ids

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_a_stop_sequence_ends_the_answer_before_it(engine):
    collector = Collector()
    prompt = _prompt(engine, QUESTIONS[0])
    engine.submit(GenerationRequest(prompt, SamplingParams(40, temperature=1.0, seed=5)),
                  collector)
    free = collector.wait().text
    assert len(free) > 6
    stop = free[3:5]
    collector = Collector()
    engine.submit(GenerationRequest(prompt, SamplingParams(40, temperature=1.0, seed=5,
                                                           stop=(stop,))), collector)
    final = collector.wait()
    assert final.finish_reason == "stop" and stop not in final.text
    assert free.startswith(final.text) and len(final.text) < len(free)
    assert "".join(collector.texts) == final.text


def test_cancelled_requests_stop_and_a_full_queue_refuses(engine):
    gate = threading.Event()
    engine.batcher.on_step = lambda size: gate.wait(10)
    try:
        prompt = _prompt(engine, QUESTIONS[2])
        collectors = [Collector() for _ in range(5)]
        cancels = [engine.submit(GenerationRequest(prompt, SamplingParams(200)), c)
                   for c in collectors]  # 3 slots + a queue of 2
        with pytest.raises(QueueFull) as full:
            engine.submit(GenerationRequest(prompt, SamplingParams(5)), Collector())
        assert full.value.retry_after_s >= 1
        for cancel in cancels:
            cancel.set()
    finally:
        gate.set()
        engine.batcher.on_step = None
    for collector in collectors:
        assert collector.wait().finish_reason == "cancelled"
    assert engine.stats().active == 0 and engine.stats().waiting == 0


def test_several_adapters_in_one_batch_match_each_adapter_alone(tiny_model_dir, tmp_path):
    adapters = {name: build_random_adapter(tiny_model_dir, tmp_path / name, seed)
                for name, seed in (("a", 1), ("b", 2))}
    engine = TransformersEngine.load_adapters(str(tiny_model_dir), adapters, precision="fp32")
    try:
        assert engine.adapters == ("a", "b")
        prompt = _prompt(engine, QUESTIONS[0])
        plan = [("a", 15), (None, 15), ("b", 15), ("a", 9)]
        gate = threading.Event()
        engine.batcher.on_step = lambda size: gate.wait(10)  # hold the loop: one shared batch
        collectors = []
        for adapter, budget in plan:
            collectors.append(Collector())
            engine.submit(GenerationRequest(prompt, SamplingParams(budget), adapter),
                          collectors[-1])
        gate.set()
        finals = [c.wait() for c in collectors]
    finally:
        engine.batcher.on_step = None
    outputs = {}
    for (adapter, budget), final in zip(plan, finals, strict=True):
        expected = _reference(engine.model, engine.tokenizer, prompt, budget,
                              adapter or "__base__")
        assert list(final.token_ids) == expected, adapter
        outputs.setdefault(adapter, final.token_ids)
    assert len({outputs["a"][:9], outputs["b"][:9], outputs[None][:9]}) == 3
    with pytest.raises(KeyError, match="'c'"):
        engine.submit(GenerationRequest(prompt, SamplingParams(3), "c"), Collector())
    engine.close()


def test_prompts_without_the_shared_opening_are_prefilled_whole(engine):
    """A raw completion prompt does not start with the chat template's opening: same tokens as
    plain generate, through the from-scratch prefill."""
    prompt = engine.encode_text("The capital of Peru is")
    assert prompt[: len(engine.batcher.shared_prefixes[None])] != \
        engine.batcher.shared_prefixes[None]
    collector = Collector()
    engine.submit(GenerationRequest(prompt, SamplingParams(10)), collector)
    expected = _reference(engine.model, engine.tokenizer, prompt, 10)
    assert list(collector.wait().token_ids) == expected
