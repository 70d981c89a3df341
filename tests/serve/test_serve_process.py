"""`tuneline serve` as a real process: the official openai client (sync, async, streaming),
LangChain's ChatOpenAI, several adapters on one base from the registry, API keys and binding,
and a graceful SIGTERM drain."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
import httpx  # noqa: E402
from openai import AsyncOpenAI, AuthenticationError, OpenAI  # noqa: E402

from conftest import (  # noqa: E402
    build_random_adapter,
    tuneline_serve,
    tuneline_serve_process,
    write_config,
)

QUESTION = [{"role": "user", "content": "What is the capital of Peru?"}]


@pytest.fixture(scope="module")
def registry_config(tiny_model_dir: Path, tmp_path_factory) -> Path:
    """Two registered versions of model 'm' (random adapters), v1 promoted to champion."""
    from tuneline.register.config import RegisterConfig
    from tuneline.registry import open_registry

    root = tmp_path_factory.mktemp("serve-process")
    register = {"name": "m", "backend": "local", "registry_dir": str(root / "registry")}
    registry = open_registry(RegisterConfig.model_validate(register))
    for seed in (1, 2):
        adapter = build_random_adapter(tiny_model_dir, root / f"adapter-{seed}", seed)
        registry.register("m", files={"adapter": adapter},
                          meta={"base_model": str(tiny_model_dir),
                                "gate": {"passed": True, "checks": []}})
    registry.promote("m/1")
    return write_config(root / "tuneline.yaml", {
        "run": {"name": "serve", "runs_dir": str(root / "runs")},
        "model": {"base": str(tiny_model_dir)},
        "train": {"precision": "fp32"},
        "register": register,
        "serve": {"adapters": {"alt": "m@champion"}, "max_tokens_default": 16},
    })


@pytest.fixture(scope="module")
def server(registry_config: Path):
    with tuneline_serve(str(registry_config)) as url:
        yield url


def _sampled(client: OpenAI, model: str) -> str:
    reply = client.chat.completions.create(model=model, messages=QUESTION, max_tokens=24,
                                           temperature=1.0, seed=11)
    return reply.choices[0].message.content


def test_models_adapters_and_aliases_are_served_from_one_base(server, tiny_model_dir):
    client = OpenAI(base_url=server, api_key="none", max_retries=0)
    cards = {m.id: m for m in client.models.list()}
    assert {"m", "m/2", "m@candidate", "alt", "m/1", "m@champion", "base"} <= set(cards)
    assert cards["alt"].model_extra["parent"] == "m/1"
    assert cards["m"].model_extra["root"] == str(tiny_model_dir)
    # The same seeded request through each adapter and the bare base: three different models.
    answers = {name: _sampled(client, name) for name in ("m", "alt", "base")}
    assert len(set(answers.values())) == 3, answers
    assert _sampled(client, "m@candidate") == answers["m"]
    assert _sampled(client, "m@champion") == answers["alt"]


def test_the_official_client_sync_async_and_streaming(server):
    client = OpenAI(base_url=server, api_key="none", max_retries=0)
    reply = client.chat.completions.create(model="m", messages=QUESTION, max_tokens=6)
    assert reply.usage.completion_tokens <= 6 and reply.choices[0].message.role == "assistant"
    stream = client.chat.completions.create(model="m", messages=QUESTION, max_tokens=24,
                                            temperature=1.0, seed=11, stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed == _sampled(client, "m")

    async def concurrent() -> list:
        aclient = AsyncOpenAI(base_url=server, api_key="none", max_retries=0)
        calls = [aclient.chat.completions.create(
            model=name, messages=QUESTION, max_tokens=24, temperature=1.0, seed=11)
            for name in ("m", "alt", "base", "m", "alt", "base")]
        return await asyncio.gather(*calls)

    replies = [r.choices[0].message.content for r in asyncio.run(concurrent())]
    # Batched together across adapters, each still gets its own model's answer.
    assert replies[:3] == replies[3:]
    assert replies[0] == _sampled(client, "m") and replies[2] == _sampled(client, "base")


def test_langchain_chat_openai(server):
    langchain_openai = pytest.importorskip("langchain_openai")
    chat = langchain_openai.ChatOpenAI(base_url=server, api_key="none", model="m",
                                       max_tokens=24, temperature=1.0, seed=11, max_retries=0)
    client = OpenAI(base_url=server, api_key="none", max_retries=0)
    message = chat.invoke("What is the capital of Peru?")
    assert message.content == _sampled(client, "m")
    assert message.usage_metadata["output_tokens"] > 0
    streamed = "".join(chunk.content for chunk in chat.stream("What is the capital of Peru?"))
    assert streamed == message.content


def test_beyond_loopback_needs_a_key(tiny_model_dir):
    args = (f"model.base={tiny_model_dir}", "train.precision=fp32", "--base", str(tiny_model_dir),
            "--host", "0.0.0.0")
    with tuneline_serve_process(*args, env={"TUNELINE_API_KEYS": ""}) as (process, url):
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert "needs an API key" in output or "API key" in output
    assert f"on http://127.0.0.1:{url.split(':')[2].split('/')[0]}/v1" in output
    with tuneline_serve_process(*args, env={"TUNELINE_API_KEYS": "ci:sk-test"}) as (process, url):
        with pytest.raises(AuthenticationError):
            OpenAI(base_url=url, api_key="wrong", max_retries=0).models.list()
        client = OpenAI(base_url=url, api_key="sk-test", max_retries=0)
        assert [m.id for m in client.models.list()] == [str(tiny_model_dir)]
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert "on http://0.0.0.0:" in output


def test_sigterm_lets_a_running_stream_finish_then_exits(tiny_model_dir):
    args = (f"model.base={tiny_model_dir}", "train.precision=fp32", "--base", str(tiny_model_dir))
    with tuneline_serve_process(*args) as (process, url):
        body = {"model": str(tiny_model_dir), "messages": QUESTION, "max_tokens": 1500,
                "temperature": 0, "stream": True}  # greedy: the tiny model never says EOS
        with httpx.stream("POST", f"{url}/chat/completions", json=body, timeout=120) as stream:
            lines = stream.iter_lines()
            first = next(line for line in lines if line)
            process.send_signal(signal.SIGTERM)
            rest = [line for line in lines if line]
        code = process.wait(60)
        output = process.stdout.read()
    assert first.startswith("data: {")
    assert rest[-1] == "data: [DONE]"
    assert '"finish_reason":"length"' in rest[-2]  # all 1500 tokens, not cut off
    # uvicorn re-raises the signal once it has drained: the exit status is SIGTERM's.
    assert code in (0, -signal.SIGTERM) and "Finished server process" in output
