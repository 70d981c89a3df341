"""Train/serve template parity: evaluate and serve render prompts with the adapter's template.

The tiny pipeline trains with the base's ChatML template, which the train stage saves with the
adapter. Then the base folder's template is changed (a base updated after training): evaluate and
serve must still feed the tuned model exactly the prompt ids it was trained on, and only the
untuned base may use the new template.
"""

from __future__ import annotations

import shutil
from collections import Counter

import pytest

from conftest import CHATML, tiny_pipeline_config, write_config

pytest.importorskip("torch")
pytest.importorskip("peft")

# What the base folder says after training; never seen by the tuned model.
NEW_BASE_TEMPLATE = (
    "{% for message in messages %}{{ '### ' + message['role'] + ':\\n' + message['content'] + "
    "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '### assistant:\\n' }}"
    "{% endif %}"
)
QUESTION = "What is the capital of France?"


class GenerateSpy:
    """Records the unpadded prompt ids of every batch part evaluate's prompt pass runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from tuneline.models import generation

        self.prompts: list[list[int]] = []
        original = generation._prefill_part
        spy = self

        def prefill(model, input_ids, attention_mask, *args, **kwargs):
            for row, mask in zip(input_ids, attention_mask, strict=True):
                spy.prompts.append(row[mask.bool()].tolist())
            return original(model, input_ids, attention_mask, *args, **kwargs)

        monkeypatch.setattr(generation, "_prefill_part", prefill)


def _prompt_ids(tokenizer, question: str) -> list[int]:
    """The prompt ids plain transformers renders with `tokenizer`'s own chat template."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                         add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory):
    """Run the tiny pipeline up to train, then give the base folder a different template."""
    from transformers import AutoTokenizer

    from tuneline.config import load_config
    from tuneline.pipeline import run_pipeline

    root = tmp_path_factory.mktemp("parity")
    base = shutil.copytree(tiny_model_dir, root / "base")
    data = tiny_pipeline_config(root, base)
    data["train"].update({"max_steps": 2, "batch_size": 4, "checkpoint_every": 0})
    data["evaluate"].update({"max_examples": 2, "max_new_tokens": 2})
    config_path = write_config(root / "tuneline.yaml", data)
    cfg = load_config(config_path)
    result = run_pipeline(cfg, until="train")

    base_tokenizer = AutoTokenizer.from_pretrained(base)
    assert base_tokenizer.chat_template == CHATML
    base_tokenizer.chat_template = NEW_BASE_TEMPLATE
    base_tokenizer.save_pretrained(base)
    adapter = AutoTokenizer.from_pretrained(result.artifacts["train"].path / "adapter")
    return cfg, config_path, adapter, AutoTokenizer.from_pretrained(base)


def test_train_saves_the_template_it_trained_with(trained):
    from tuneline.train.tokenize import IGNORE_INDEX, tokenize_chat

    _, _, adapter, base = trained
    assert adapter.chat_template == CHATML
    assert base.chat_template == NEW_BASE_TEMPLATE
    # The context tokens training masked are exactly the prompt a server feeds for that turn.
    example = tokenize_chat(adapter, [{"role": "user", "content": QUESTION},
                                      {"role": "assistant", "content": "Paris."}], 256)
    first_target = next(i for i, label in enumerate(example.labels) if label != IGNORE_INDEX)
    assert example.input_ids[:first_target] == _prompt_ids(adapter, QUESTION)


def test_evaluate_renders_tuned_prompts_with_the_adapter_template(trained, monkeypatch):
    from tuneline.artifacts import read_jsonl
    from tuneline.pipeline import run_pipeline

    cfg, _, adapter, base = trained
    spy = GenerateSpy(monkeypatch)
    result = run_pipeline(cfg, until="evaluate")
    assert not result.artifacts["evaluate"].skipped

    # what evaluate asked (two steps train a few rows: recall questions about the rest are
    # left out)
    questions = [item["question"]
                 for item in read_jsonl(result.artifacts["evaluate"].path / "predictions.jsonl")]
    tuned = [_prompt_ids(adapter, q) for q in questions]
    untuned = [_prompt_ids(base, q) for q in questions]
    assert not set(map(tuple, tuned)) & set(map(tuple, untuned))
    # Each question once with the adapter's template (tuned) and once with the base's (base).
    assert Counter(map(tuple, spy.prompts)) == Counter(map(tuple, tuned + untuned))


def test_serve_renders_prompts_with_the_adapter_template(trained, monkeypatch):
    """The served adapter gets the prompt ids it was trained on; the bare base (served beside
    it as 'base') gets its own new template."""
    pytest.importorskip("fastapi")
    import uvicorn
    from click.testing import CliRunner
    from fastapi.testclient import TestClient

    from tuneline.cli.main import cli
    from tuneline.pipeline import run_pipeline
    from tuneline.serve.scheduler import ContinuousBatcher

    cfg, config_path, adapter, base = trained
    run_pipeline(cfg)  # registers the trained adapter
    apps = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda server: apps.append(server.config.app))
    result = CliRunner().invoke(cli, ["serve", str(config_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output

    submitted: list[list[int]] = []
    original = ContinuousBatcher.submit

    def spy(batcher, request, sink):
        submitted.append(list(request.prompt_ids))
        return original(batcher, request, sink)

    monkeypatch.setattr(ContinuousBatcher, "submit", spy)
    with TestClient(apps[0]) as client:
        responses = [client.post("/v1/chat/completions", json={
            "model": model, "max_tokens": 2,
            "messages": [{"role": "user", "content": QUESTION}]})
            for model in (cfg.register.name, "base")]
    for response in responses:
        assert response.status_code == 200, response.text
    expected = _prompt_ids(adapter, QUESTION)
    assert expected != _prompt_ids(base, QUESTION)
    assert submitted == [expected, _prompt_ids(base, QUESTION)]
    assert responses[0].json()["usage"]["prompt_tokens"] == len(expected)
