"""A running `tuneline serve` with a canary takes a newly registered candidate without a
restart (serve.canary.follow_s): the real pipeline registers, the real server swaps."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("torch")
httpx = pytest.importorskip("httpx")

from conftest import tiny_pipeline_config, tuneline_serve, write_config  # noqa: E402


def _register_a_new_version(config, table, rows: str) -> str:
    from tuneline.config import load_config
    from tuneline.pipeline import run_pipeline

    table.write_text(table.read_text() + rows)
    result = run_pipeline(load_config(config))
    return (result.artifacts["register"].path / "registration.json").read_text()


def _served(base_url: str) -> set[str]:
    return {m["id"] for m in httpx.get(f"{base_url}/models", timeout=10).json()["data"]}


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
        deadline = time.time() + 120
        while "capitals/3" not in _served(base_url) and time.time() < deadline:
            time.sleep(0.5)
        assert {"capitals@champion", "capitals@candidate", "capitals/1", "capitals/3"} \
            <= _served(base_url)
        arms = set()
        for user in range(12):  # sticky by user: both arms answer, none fails
            reply = httpx.post(f"{base_url}/chat/completions", timeout=60,
                               headers={"x-user-id": f"user-{user}"},
                               json={"model": "capitals", "messages": [
                                   {"role": "user", "content": "Capital of Peru?"}]})
            assert reply.status_code == 200, reply.text
            arms.add(reply.json()["model"])
    assert arms == {"capitals@champion", "capitals@candidate"}
