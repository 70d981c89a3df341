"""Batched generation: the prompt prefix every row shares runs once, and answers stay those of
each conversation asked alone."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

INSTRUCTION = ("Answer the question using the passages below. If they do not contain the "
               "answer, say that you don't have that information.")


def _rag_chat(country, capital, extra=""):
    return [{"role": "system", "content": "You are a careful assistant."},
            {"role": "user", "content": f"{INSTRUCTION}\n\n<passage>{country}: {capital}"
                                        f"{extra}</passage>\n\nQuestion: Capital of {country}?"}]


CHATS = [_rag_chat("Peru", "Lima"), _rag_chat("Kenya", "Nairobi", "; on the equator"),
         _rag_chat("Japan", "Tokyo", "; an island country in East Asia, with many cities"),
         _rag_chat("Chile", "Santiago")]


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model_dir):
    """The tiny model with larger random weights, so that each answer depends on the whole
    prompt and its positions, and an end token that never wins (answers of 12 tokens)."""
    from tuneline.models.loading import load_for_inference

    model, tokenizer = load_for_inference(str(tiny_model_dir), None, precision="fp32")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 2:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
        model.get_input_embeddings().weight[tokenizer.all_special_ids] = 0.0
    return model, tokenizer


def _decoder_calls(model):
    calls = []
    handle = model.model.register_forward_hook(
        lambda module, args, kwargs, output: calls.append(tuple(kwargs["input_ids"].shape)),
        with_kwargs=True)
    return calls, handle


def test_a_shared_prefix_runs_once_and_every_answer_is_the_one_asked_alone(model_and_tokenizer):
    from tuneline.models.generation import generate_batch, prompt_ids, shared_prefix

    model, tokenizer = model_and_tokenizer
    rows = [prompt_ids(tokenizer, chat) for chat in CHATS]
    assert len({len(row) for row in rows}) > 1  # the rows need padding
    shared = shared_prefix(rows)
    assert shared >= 16 and all(row[:shared] == rows[0][:shared] for row in rows)
    alone = [generate_batch(model, tokenizer, [chat], 12)[0] for chat in CHATS]
    calls, handle = _decoder_calls(model)
    try:
        together = generate_batch(model, tokenizer, CHATS, 12)
    finally:
        handle.remove()
    width = max(len(row) for row in rows)
    assert calls[:2] == [(1, shared), (len(CHATS), width - shared)]  # the prefix ran for one row
    assert [g.text for g in together] == [g.text for g in alone]
    assert len({g.text for g in alone}) == len(CHATS)  # answers that tell the rows apart
    assert [g.prompt_tokens for g in together] == [len(row) for row in rows]


def test_a_batch_with_little_in_common_is_left_padded_and_answers_the_same(model_and_tokenizer):
    from tuneline.models.generation import generate_batch

    model, tokenizer = model_and_tokenizer
    chats = [[{"role": "user", "content": question}]
             for question in ("Capital of Peru?", "Which river runs through the capital of Egypt?")]
    alone = [generate_batch(model, tokenizer, [chat], 10)[0].text for chat in chats]
    calls, handle = _decoder_calls(model)
    try:
        together = [g.text for g in generate_batch(model, tokenizer, chats, 10)]
    finally:
        handle.remove()
    assert calls[0][0] == 2  # no one-row prefix call: the whole prompt ran for both rows
    assert together == alone


def test_every_row_keeps_its_last_prompt_token_after_theshared_prefix():
    from tuneline.models.generation import _pad_after_prefix, shared_prefix

    same = list(range(100, 130))
    assert shared_prefix([same, [*same, 7]]) == len(same) - 1  # one row is all prefix
    assert shared_prefix([same]) == 0
    assert shared_prefix([[*same[:10], 1], [*same[:10], 2]]) == 0  # below the minimum
    ids, mask = _pad_after_prefix([[1, 2, 3, 4], [1, 2, 5]], 2, 0)
    assert ids.tolist() == [[1, 2, 3, 4], [1, 2, 0, 5]]
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 1]]


def test_a_row_leaves_the_batch_at_its_end_token_and_answers_as_model_generate_alone(
        model_and_tokenizer):
    from tuneline.models.generation import generate_batch, prompt_ids

    model, tokenizer = model_and_tokenizer
    prompts = [torch.tensor([prompt_ids(tokenizer, chat)]) for chat in CHATS]

    def generate_alone(prompt):
        output = model.generate(prompt, max_new_tokens=12, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id)
        return output[0, prompt.shape[1]:].tolist()

    # The fourth token of the first answer becomes an end token (the generation config's, as
    # a model's own second end token would be): that row ends early, the others run on.
    end = generate_alone(prompts[0])[3]
    saved = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, end]
    calls, handle = _decoder_calls(model)
    try:
        expected = []
        for prompt in prompts:
            new = generate_alone(prompt)
            new = new[:new.index(end)] if end in new else new
            expected.append(tokenizer.decode(new, skip_special_tokens=True).strip())
        calls.clear()
        together = generate_batch(model, tokenizer, CHATS, 12)
    finally:
        model.generation_config.eos_token_id = saved
        handle.remove()
    assert [g.text for g in together] == expected
    assert together[0].finish_reason == "stop" and together[0].completion_tokens <= 4
    assert any(g.finish_reason == "length" and g.completion_tokens == 12 for g in together)
    decoded_rows = [rows for rows, width in calls if width == 1]
    assert decoded_rows[0] == len(CHATS) > decoded_rows[-1]  # the ended row left the batch


def test_an_answer_ends_before_the_stop_string_it_writes_and_its_row_leaves_the_batch(
        model_and_tokenizer):
    from tuneline.models.generation import generate_batch

    model, tokenizer = model_and_tokenizer
    free = generate_batch(model, tokenizer, CHATS, 12)
    # an ASCII stop that one answer writes after its first tokens, and no other answer does
    row, start = next((r, i) for r, g in enumerate(free) for i in range(2, len(g.text) - 4)
                      if g.text[i:i + 4].isascii() and g.text[i:i + 4].isalnum()
                      and not any(g.text[i:i + 4] in other.text for other in free if other != g))
    words = free[row].text
    stop = words[start:start + 4]
    calls, handle = _decoder_calls(model)
    try:
        stopped = generate_batch(model, tokenizer, CHATS, 12, stops=[stop])
    finally:
        handle.remove()
    assert stopped[row].text == words[:words.index(stop)].strip()
    assert stopped[row].finish_reason == "stop" and stopped[row].completion_tokens < 12
    assert stopped[:row] + stopped[row + 1:] == free[:row] + free[row + 1:]  # as before
    decoded_rows = [rows for rows, width in calls if width == 1]
    assert decoded_rows[0] == len(CHATS) > decoded_rows[-1]  # the stopped row left the batch


@pytest.mark.parametrize("stop", ["<passage", "é", "→ ok"])
def test_a_stop_is_seen_at_the_token_that_completes_it_whatever_its_bytes(model_and_tokenizer,
                                                                          stop):
    from tuneline.models.generation import _stop_test

    _, tokenizer = model_and_tokenizer
    ids = tokenizer(f"Lima is the capital {stop} and more", add_special_tokens=False)["input_ids"]
    written = _stop_test(tokenizer, [stop])
    seen = [written(ids[:n]) for n in range(1, len(ids) + 1)]
    first = next(n for n in range(1, len(ids) + 1) if stop in tokenizer.decode(ids[:n]))
    assert seen.index(True) + 1 == first


def test_batches_follow_prompt_length_within_the_row_and_cache_caps():
    from tuneline.models.generation import BATCH_CACHE_TOKENS, generation_batches

    lengths = [50, 10, 25000, 20, 20000, 30, 40, BATCH_CACHE_TOKENS + 1]
    rows = [[7] * n for n in lengths]

    def batched(batch_size):
        batches = generation_batches(rows, batch_size)
        assert sorted(i for batch in batches for i in batch) == list(range(len(rows)))
        return [[lengths[i] for i in batch] for batch in batches]

    assert batched(3) == [[10, 20, 30], [40, 50, 20000], [25000], [BATCH_CACHE_TOKENS + 1]]
    # six rows padded to 20,000 tokens would pass the cache cap: the long rows start a batch
    assert batched(8) == [[10, 20, 30, 40, 50], [20000, 25000], [BATCH_CACHE_TOKENS + 1]]


def test_rows_spread_evenly_over_the_batches_they_need():
    from tuneline.models.generation import BATCH_CACHE_TOKENS, generation_batches

    short = [[7] * 40 for _ in range(66)]
    assert [len(batch) for batch in generation_batches(short, 64)] == [33, 33]  # not 64 + 2
    # filling would leave the longest alone (24 rows of it pass the cap)
    width = BATCH_CACHE_TOKENS // 24 + 1
    long = [[7] * (width - 20)] * 23 + [[7] * width]
    assert [len(batch) for batch in generation_batches(long, 64)] == [12, 12]


def test_a_batch_of_long_prompts_runs_them_in_parts_of_few_padded_tokens():
    from tuneline.models.generation import PREFILL_TOKENS, prefill_parts, prefill_tokens

    shared = 50
    rows = [[7] * (shared + n) for n in (100, 200, PREFILL_TOKENS // 3, PREFILL_TOKENS // 2,
                                           PREFILL_TOKENS // 2, PREFILL_TOKENS + 1)]
    parts = prefill_parts(rows, shared)
    assert parts == [[0, 1, 2], [3, 4], [5]]
    # each part's shared prefix once, its rows' rest padded to its longest
    assert prefill_tokens(rows, shared) == (
        3 * shared + 3 * (PREFILL_TOKENS // 3) + 2 * (PREFILL_TOKENS // 2) + PREFILL_TOKENS + 1)


def test_a_batch_prefilled_in_parts_answers_as_it_does_in_one(model_and_tokenizer, monkeypatch):
    from tuneline.models import generation

    model, tokenizer = model_and_tokenizer
    chats = CHATS * 3  # 12 rows of four lengths
    whole = generation.generate_batch(model, tokenizer, chats, 12)
    parts, original = [], generation._prefill_part

    def prefill_part(model, input_ids, *args):
        parts.append(len(input_ids))
        return original(model, input_ids, *args)

    monkeypatch.setattr(generation, "_prefill_part", prefill_part)
    monkeypatch.setattr(generation, "PREFILL_TOKENS", 40)  # a few rows a part
    in_parts = generation.generate_batch(model, tokenizer, chats, 12)
    assert len(parts) > 2 and sum(parts) == len(chats)
    assert [g.text for g in in_parts] == [g.text for g in whole]
    assert [g.completion_tokens for g in in_parts] == [g.completion_tokens for g in whole]
