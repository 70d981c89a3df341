"""One chat template everywhere (#24): the server, the merged HF export, the PEFT adapter and the
GGUF build, for the same conversation, the prompt tokens training used, and each stops by itself
on its end token. On the real SmolLM2 (a random 135M model never learns to stop)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("gguf")
httpx = pytest.importorskip("httpx")

from conftest import serve_in_thread  # noqa: E402

TOPICS = ("photosynthesis", "gravity", "a prime number", "the moon", "democracy", "a volcano",
          "an atom", "music", "a river", "coffee")
MAX_NEW = 64


def _export(*args: str) -> None:
    from click.testing import CliRunner

    from tuneline.cli.main import cli

    result = CliRunner().invoke(cli, ["export", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def _conversation(topic: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": f"In one sentence, what is {topic}?"}]


def _training_prompt(tokenizer, conversation: list[dict[str, str]]) -> list[int]:
    """The ids training puts before the answer: everything tokenize_chat masks out."""
    from tuneline.train.tokenize import IGNORE_INDEX, tokenize_chat

    example = tokenize_chat(tokenizer, [*conversation, {"role": "assistant", "content": "x"}],
                            4096)
    first_answer = next(i for i, label in enumerate(example.labels) if label != IGNORE_INDEX)
    return example.input_ids[:first_answer]


def _stops_by_itself(model, tokenizer, ids: list[int]) -> bool:
    """Greedy generation with only what the folder itself says about ending (its generation
    config / GGUF metadata): True when it ended on an end token before MAX_NEW tokens."""
    import torch

    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=MAX_NEW, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    answer = out[0, len(ids):].tolist()
    ends = model.generation_config.eos_token_id
    ends = set(ends if isinstance(ends, list) else [ends])
    return len(answer) < MAX_NEW and answer[-1] in ends


@pytest.mark.integration
@pytest.mark.slow
def test_server_hf_adapter_and_gguf_build_the_training_prompt_and_stop_by_themselves(tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneline.models.resolve import resolve_model
    from tuneline.serve.app import build_app
    from tuneline.serve.config import ServeConfig
    from tuneline.serve.engines.transformers_engine import TransformersEngine

    base = resolve_model("embedded:smollm2-135m-instruct")
    trained_tokenizer = AutoTokenizer.from_pretrained(base)
    adapter = tmp_path / "adapter"
    get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                   LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(adapter)
    trained_tokenizer.save_pretrained(adapter)
    _export("--adapter", str(adapter), "--format", "hf", "--output", str(tmp_path / "hf"))
    _export("--adapter", str(adapter), "--format", "gguf", "--output", str(tmp_path / "gguf"))
    conversations = [_conversation(topic) for topic in TOPICS]
    expected = [_training_prompt(trained_tokenizer, c) for c in conversations]

    loaded = {
        "hf": (AutoModelForCausalLM.from_pretrained(tmp_path / "hf"),
               AutoTokenizer.from_pretrained(tmp_path / "hf")),
        "adapter": (PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base),
                                              adapter),
                    AutoTokenizer.from_pretrained(adapter)),
        "gguf": (AutoModelForCausalLM.from_pretrained(tmp_path / "gguf", gguf_file="gguf.gguf"),
                 AutoTokenizer.from_pretrained(tmp_path / "gguf", gguf_file="gguf.gguf")),
    }
    for name, (model, tokenizer) in loaded.items():
        model.eval()
        for conversation, ids in zip(conversations, expected, strict=True):
            built = tokenizer.apply_chat_template(conversation, add_generation_prompt=True,
                                                  return_dict=True)["input_ids"]
            assert list(built) == ids, (name, conversation)
            assert _stops_by_itself(model, tokenizer, ids), (name, conversation)

    engine = TransformersEngine.load(base, adapter, precision="fp32")
    try:
        settings = ServeConfig.model_validate({"max_tokens_default": MAX_NEW})
        with serve_in_thread(build_app({"tuned": engine}, settings)) as url:
            for conversation, ids in zip(conversations, expected, strict=True):
                assert engine.encode_chat(conversation, None) == ids, conversation
                body = httpx.post(f"{url}/chat/completions", timeout=120, json={
                    "model": "tuned", "messages": conversation, "max_tokens": MAX_NEW,
                    "temperature": 0}).json()
                assert body["usage"]["prompt_tokens"] == len(ids), conversation
                assert body["choices"][0]["finish_reason"] == "stop", body
                assert body["usage"]["completion_tokens"] < MAX_NEW
    finally:
        engine.close()
