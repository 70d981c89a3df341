"""A running `tuneline serve` with a canary takes a newly registered candidate without a
restart (serve.canary.follow_s): the real pipeline registers, the real server swaps, and a
swapped-in candidate that is slower than the champion is rolled back."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("torch")
httpx = pytest.importorskip("httpx")

from conftest import (  # noqa: E402
    build_tiny_chat_model,
    tiny_pipeline_config,
    tuneline_serve,
    write_config,
)


def _register_a_new_version(config, table, rows: str) -> str:
    from tuneline.config import load_config
    from tuneline.pipeline import run_pipeline

    table.write_text(table.read_text() + rows)
    result = run_pipeline(load_config(config))
    return (result.artifacts["register"].path / "registration.json").read_text()


def _served(base_url: str) -> set[str]:
    return {m["id"] for m in httpx.get(f"{base_url}/models", timeout=10).json()["data"]}


def _wait_until_served(base_url: str, name: str) -> None:
    deadline = time.time() + 120
    while name not in _served(base_url) and time.time() < deadline:
        time.sleep(0.5)
    assert name in _served(base_url)


def _answering_arm(base_url: str, user: str) -> str:
    reply = httpx.post(f"{base_url}/chat/completions", timeout=60,
                       headers={"x-user-id": user},
                       json={"model": "capitals", "messages": [
                           {"role": "user", "content": "Capital of Peru?"}]})
    assert reply.status_code == 200, reply.text
    return reply.json()["model"]


def test_the_server_swaps_in_a_newly_registered_candidate_without_a_restart(tmp_path,
                                                                           tiny_model_dir):
    from tuneline.config import load_config
    from tuneline.registry import open_registry

    data = tiny_pipeline_config(tmp_path, tiny_model_dir)
    data["serve"] = {"canary": {"percent": 50, "follow_s": 0.5}, "max_tokens_default": 4}
    config = write_config(tmp_path / "cfg.yaml", data)
    table = tmp_path / "capitals.csv"
    _register_a_new_version(config, table, "")
    registry = open_registry(load_config(config).register)
    registry.promote("capitals/1")
    _register_a_new_version(config, table, "Peru,Lima,Americas\n")
    with tuneline_serve(str(config)) as base_url:
        assert {"capitals@champion", "capitals@candidate", "capitals/1", "capitals/2"} \
            <= _served(base_url)
        _register_a_new_version(config, table, "Chile,Santiago,Americas\n")
        _wait_until_served(base_url, "capitals/3")
        assert {"capitals@champion", "capitals@candidate", "capitals/1", "capitals/3"} \
            <= _served(base_url)
        # sticky by user: both arms answer, none fails
        arms = {_answering_arm(base_url, f"user-{user}") for user in range(12)}
    assert arms == {"capitals@champion", "capitals@candidate"}


@pytest.mark.slow
def test_a_slower_candidate_swapped_in_is_rolled_back(tmp_path, tiny_model_dir):
    """A changed CSV trained on a bigger base model (a team trying a larger model) is
    registered, served as the canary's candidate without a restart, and rolled back by the
    canary because its p95 latency is far above the champion's; users go back to the
    champion."""
    data = tiny_pipeline_config(tmp_path, tiny_model_dir)
    data["serve"] = {"canary": {"percent": 50, "follow_s": 0.5, "window": 10,
                                "min_requests": 4}, "max_tokens_default": 8}
    config = write_config(tmp_path / "cfg.yaml", data)
    table = tmp_path / "capitals.csv"
    _register_a_new_version(config, table, "")
    from tuneline.config import load_config
    from tuneline.registry import open_registry

    open_registry(load_config(config).register).promote("capitals/1")
    _register_a_new_version(config, table, "Peru,Lima,Americas\n")
    bigger = build_tiny_chat_model(tmp_path / "bigger-base", hidden_size=768, layers=12)
    with tuneline_serve(str(config)) as base_url:
        data["model"]["base"] = str(bigger)
        data["train"]["max_steps"] = 2
        write_config(config, data)
        _register_a_new_version(config, table, "Chile,Santiago,Americas\n")
        _wait_until_served(base_url, "capitals/3")
        users = [f"user-{n}" for n in range(24)]
        before = [_answering_arm(base_url, user) for user in users]
        health = httpx.get(base_url.removesuffix("/v1") + "/health", timeout=10).json()
        after = {_answering_arm(base_url, user) for user in users}
    assert before.count("capitals@candidate") >= 4
    canary = health["canary"]
    assert canary["rolled_back"] is True, canary
    assert canary["reason"].startswith("candidate capitals@candidate p95 latency"), canary
    assert after == {"capitals@champion"}
