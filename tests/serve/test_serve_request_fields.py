"""Every request field is honoured or refused the way OpenAI refuses (#25), over real HTTP on
the tiny model: no type coercion, no silently ignored option, OpenAI's error shape on every
route, nothing malformed reaching the model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
from openai import BadRequestError, OpenAI  # noqa: E402

from conftest import serve_in_thread  # noqa: E402
from tuneline.serve.app import build_app  # noqa: E402
from tuneline.serve.config import ServeConfig  # noqa: E402
from tuneline.serve.engines.transformers_engine import TransformersEngine  # noqa: E402

HI = [{"role": "user", "content": "Hi"}]
CHAT = {"model": "tiny", "messages": HI, "max_tokens": 4}
COMPLETION = {"model": "tiny", "prompt": "Hi", "max_tokens": 4}
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}

# (fields laid over a valid chat request, the param the 400 must name)
CHAT_CASES = [
    ({"stream": "yes"}, "stream"),
    ({"stream": 1}, "stream"),
    ({"max_tokens": "8"}, "max_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_completion_tokens": 2.5}, "max_completion_tokens"),
    ({"temperature": "0.5"}, "temperature"),
    ({"temperature": 3}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"seed": 1.5}, "seed"),
    ({"n": 2}, "n"),
    ({"stop": 5}, "stop"),
    ({"model": 5}, "model"),
    ({"rag": "yes"}, "rag"),
    ({"messages": []}, "messages"),
    ({"messages": "Hi"}, "messages"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0.role"),
    ({"messages": [{"role": "user"}]}, "messages.0.content"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
    ({"messages": [{"role": "user", "content": "Hi", "name": "bob"}]}, "messages.0.name"),
    ({"messages": [{"role": "assistant", "content": "x", "tool_calls": []}]},
     "messages.0.tool_calls"),
    ({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]}, "messages.0.content"),
    ({"logprobs": True, "top_logprobs": 500}, "top_logprobs"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"logprobs": "true"}, "logprobs"),
    ({"tools": "all"}, "tools"),
    ({"tools": [TOOL]}, "tools"),
    ({"tool_choice": "auto"}, "tool_choice"),
    ({"parallel_tool_calls": True}, "parallel_tool_calls"),
    ({"functions": [TOOL["function"]]}, "functions"),
    ({"function_call": "auto"}, "function_call"),
    ({"response_format": {"type": "xml"}}, "response_format.type"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}},
     "response_format"),
    ({"response_format": "json"}, "response_format"),
    ({"frequency_penalty": 0.5}, "frequency_penalty"),
    ({"presence_penalty": 3}, "presence_penalty"),
    ({"logit_bias": {"42": -100}}, "logit_bias"),
    ({"store": True}, "store"),
    ({"metadata": {"team": "a"}}, "metadata"),
    ({"modalities": ["text", "audio"]}, "modalities"),
    ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
    ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
    ({"reasoning_effort": "high"}, "reasoning_effort"),
    ({"service_tier": "flex"}, "service_tier"),
    ({"web_search_options": {"search_context_size": "low"}}, "web_search_options"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"stream": True, "stream_options": {"include_usage": "yes"}},
     "stream_options.include_usage"),
    ({"stream": True, "stream_options": {"include_obfuscation": False}},
     "stream_options.include_obfuscation"),
    ({"foo": 1}, "foo"),
]
COMPLETION_CASES = [
    ({"prompt": 5}, "prompt"),
    ({"prompt": ["a", "b"]}, "prompt"),
    ({"echo": True}, "echo"),
    ({"best_of": 3}, "best_of"),
    ({"logprobs": -1}, "logprobs"),
    ({"logprobs": 10}, "logprobs"),
    ({"suffix": "end"}, "suffix"),
    ({"max_tokens": "16"}, "max_tokens"),
    ({"logit_bias": {"42": 5}}, "logit_bias"),
    ({"bar": True}, "bar"),
]
# Accepted: each is honoured, or is an identifier that changes nothing.
ACCEPTED = [
    {"n": 1, "stream": False, "logprobs": False, "tool_choice": "none", "top_p": 1},
    {"response_format": {"type": "text"}, "frequency_penalty": 0, "presence_penalty": 0.0},
    {"user": "u-1", "safety_identifier": "s", "prompt_cache_key": "k", "store": False},
    {"modalities": ["text"], "service_tier": "auto", "logit_bias": {}},
    {"messages": [{"role": "developer", "content": "Be brief."},
                  {"role": "user", "content": [{"type": "text", "text": "Hi"}]}]},
]


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path):
    engine = TransformersEngine.load(str(tiny_model_dir), None, precision="fp32")
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def server(engine):
    settings = ServeConfig.model_validate({"max_tokens_default": 4})
    with serve_in_thread(build_app({"tiny": engine}, settings)) as url:
        yield url


def _prompt_tokens(url: str) -> float:
    text = httpx.get(f"{url.removesuffix('/v1')}/metrics").text
    found = re.search(r'^tuneline_prompt_tokens_total\{model="tiny"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def _is_openai_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["type"] == "invalid_request_error"
    return error


def test_malformed_requests_are_refused_naming_the_field_and_never_reach_the_model(server):
    assert len(CHAT_CASES) + len(COMPLETION_CASES) >= 40
    cases = ([("chat/completions", {**CHAT, **over}, param) for over, param in CHAT_CASES]
             + [("completions", {**COMPLETION, **over}, param)
                for over, param in COMPLETION_CASES])
    before = _prompt_tokens(server)
    wrong = []
    for path, body, param in cases:
        response = httpx.post(f"{server}/{path}", json=body)
        error = _is_openai_error(response, 400)
        if error["param"] != param:
            wrong.append((path, body, param, error))
    assert not wrong
    assert _prompt_tokens(server) == before  # nothing was generated for them
    healthy = httpx.post(f"{server}/chat/completions", json=CHAT)
    assert healthy.status_code == 200 and healthy.json()["usage"]["prompt_tokens"] > 0
    assert _prompt_tokens(server) > before


def test_neutral_values_of_unsupported_fields_are_accepted(server):
    for over in ACCEPTED:
        response = httpx.post(f"{server}/chat/completions", json={**CHAT, **over})
        assert response.status_code == 200, (over, response.text)


def test_undecodable_bodies_and_unknown_routes_get_the_openai_shape(server):
    headers = {"content-type": "application/json"}
    bad_utf8 = httpx.post(f"{server}/chat/completions", headers=headers,
                          content=b'{"model": "tiny", "messages": [{"role": "user", '
                                  b'"content": "\xff\xfe"}]}')
    _is_openai_error(bad_utf8, 400)
    array = httpx.post(f"{server}/chat/completions", json=[CHAT])
    _is_openai_error(array, 400)
    missing = httpx.post(f"{server}/embeddings", json={"model": "tiny", "input": "x"})
    _is_openai_error(missing, 404)
    wrong_method = httpx.get(f"{server}/chat/completions")
    _is_openai_error(wrong_method, 405)


def test_the_openai_client_gets_a_bad_request_naming_the_field(server):
    client = OpenAI(base_url=server, api_key="none", max_retries=0)
    refused = [  # the cases of issue #25, then a few more
        ("stream", {"extra_body": {"stream": "yes"}}),
        ("top_logprobs", {"logprobs": True, "top_logprobs": 500}),
        ("tools", {"tools": "all"}),
        ("response_format.type", {"response_format": {"type": "xml"}}),
        ("tools", {"tools": [TOOL]}),
        ("response_format", {"response_format": {"type": "json_object"}}),
        ("max_tokens", {"extra_body": {"max_tokens": "8"}}),
    ]
    for param, options in refused:
        with pytest.raises(BadRequestError) as caught:
            client.chat.completions.create(model="tiny", messages=HI, **options)
        assert caught.value.body["param"] == param


def _greedy_logprobs(engine, prompt_ids: list[int], steps: int):
    """The model's own greedy path and the log-softmax at each of its steps."""
    import torch

    ids, rows = list(prompt_ids), []
    with torch.no_grad():
        for _ in range(steps):
            logits = engine.model(input_ids=torch.tensor([ids])).logits[0, -1].float()
            rows.append(torch.log_softmax(logits, dim=-1))
            ids.append(int(rows[-1].argmax()))
    return ids[len(prompt_ids):], rows


def test_chat_logprobs_are_the_models_own_log_softmax(server, engine):
    client = OpenAI(base_url=server, api_key="none", max_retries=0)
    messages = [{"role": "user", "content": "What is the capital of Peru?"}]
    answer = client.chat.completions.create(model="tiny", messages=messages, max_tokens=6,
                                            temperature=0, logprobs=True, top_logprobs=5)
    content = answer.choices[0].logprobs.content
    stopped = answer.choices[0].finish_reason == "stop"
    assert len(content) == answer.usage.completion_tokens - stopped  # EOS has no entry
    chosen, own = _greedy_logprobs(engine, engine.encode_chat(messages, None), len(content))
    assert [t.token for t in content] == engine.token_strings(chosen)
    for token, token_id, row in zip(content, chosen, own, strict=True):
        assert token.logprob == pytest.approx(float(row[token_id]), abs=1e-4)
        assert bytes(token.bytes) == token.token.encode("utf-8")
        best = row.topk(5)
        assert [t.logprob for t in token.top_logprobs] == pytest.approx(
            best.values.tolist(), abs=1e-4)
        assert [t.token for t in token.top_logprobs] == engine.token_strings(
            best.indices.tolist())


def test_completion_logprobs_have_openais_legacy_shape(server, engine):
    response = httpx.post(f"{server}/completions", json={
        "model": "tiny", "prompt": "The capital of Peru is", "max_tokens": 5,
        "temperature": 0, "logprobs": 3}).json()
    logprobs = response["choices"][0]["logprobs"]
    n = len(logprobs["tokens"])
    assert n and len(logprobs["token_logprobs"]) == len(logprobs["top_logprobs"]) == n
    assert all(len(top) <= 3 for top in logprobs["top_logprobs"])
    # greedy: each chosen token is its position's likeliest
    for token, logprob, top in zip(logprobs["tokens"], logprobs["token_logprobs"],
                                   logprobs["top_logprobs"], strict=True):
        assert top[token] == pytest.approx(logprob) and logprob == pytest.approx(
            max(top.values()))
    # each token's text is found in the answer where its offset says (the answer's leading
    # space is stripped, so the first token may start before it)
    text = response["choices"][0]["text"]
    assert logprobs["text_offset"][0] == 0
    for token, offset in zip(logprobs["tokens"], logprobs["text_offset"], strict=True):
        assert text[offset:].startswith(token if offset else token.lstrip()), (text, token)


def test_streamed_logprobs_add_up_to_the_whole_answers(server):
    """Chunks carry the log-probabilities of the tokens they bring; gathered, they are the ones
    the same request gets unstreamed (greedy), in OpenAI's chat and legacy shapes."""
    client = OpenAI(base_url=server, api_key="none", max_retries=0)
    options = {"model": "tiny", "messages": [{"role": "user", "content": "Capital of Peru?"}],
               "max_tokens": 8, "temperature": 0, "logprobs": True, "top_logprobs": 2}
    whole = client.chat.completions.create(**options).choices[0]
    streamed, text = [], ""
    for chunk in client.chat.completions.create(stream=True, **options):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            streamed += choice.logprobs.content if choice.logprobs else []
    assert text == whole.message.content
    assert len(streamed) == len(whole.logprobs.content) > 0
    for got, expected in zip(streamed, whole.logprobs.content, strict=True):
        assert got.token == expected.token
        assert got.logprob == pytest.approx(expected.logprob, abs=1e-5)
        assert [t.token for t in got.top_logprobs] == [t.token for t in expected.top_logprobs]

    request = {"model": "tiny", "prompt": "The capital of Peru is", "max_tokens": 6,
               "temperature": 0, "logprobs": 2}
    whole = httpx.post(f"{server}/completions", json=request).json()["choices"][0]["logprobs"]
    gathered: dict[str, list] = {"tokens": [], "token_logprobs": [], "text_offset": []}
    with httpx.stream("POST", f"{server}/completions", json={**request, "stream": True}) as sse:
        for line in sse.iter_lines():
            if line.startswith("data: {"):
                logprobs = json.loads(line[6:])["choices"][0]["logprobs"]
                for key in gathered:
                    gathered[key] += (logprobs or {}).get(key, [])
    assert gathered["tokens"] == whole["tokens"] and len(whole["tokens"]) > 0
    assert gathered["text_offset"] == whole["text_offset"]
    assert gathered["token_logprobs"] == pytest.approx(whole["token_logprobs"], abs=1e-5)
