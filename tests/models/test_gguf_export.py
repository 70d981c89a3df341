"""`tuneline export --format gguf`: the merged model as GGUF with the `gguf` package alone,
read back by transformers (`gguf_file=`), with the chat template, end tokens and an Ollama
Modelfile that match what training used."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("gguf")

from conftest import build_random_adapter  # noqa: E402
from tuneline.errors import ModelError  # noqa: E402
from tuneline.models.gguf_export import write_gguf  # noqa: E402

PROMPTS = [f"Question {i}: what is the capital of country number {i}?" for i in range(20)]
CONVERSATION = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is the capital of Peru?"},
                {"role": "assistant", "content": "Lima."},
                {"role": "user", "content": "And of Chile?"}]


def _export(*args: str) -> None:
    from click.testing import CliRunner

    from tuneline.cli.main import cli

    result = CliRunner().invoke(cli, ["export", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def exported(tiny_model_dir, tmp_path_factory):
    """The merged HF export and the f16 and q8_0 GGUF exports of one adapter."""
    root = tmp_path_factory.mktemp("gguf")
    adapter = build_random_adapter(tiny_model_dir, root / "adapter", seed=5)
    _export("--adapter", str(adapter), "--format", "hf", "--output", str(root / "hf"))
    for quant in ("f16", "q8_0"):
        _export("--adapter", str(adapter), "--format", "gguf", "--quant", quant,
                "--output", str(root / quant))
    return root


def _load(folder: Path, gguf: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    extra = {"gguf_file": f"{folder.name}.gguf"} if gguf else {}
    return (AutoModelForCausalLM.from_pretrained(folder, **extra).eval(),
            AutoTokenizer.from_pretrained(folder, **extra))


def _greedy(model, tokenizer, prompt: str) -> list[int]:
    ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                        add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True)["input_ids"]
    out = model.generate(ids, max_new_tokens=8, do_sample=False,
                         pad_token_id=tokenizer.pad_token_id)
    return out[0, ids.shape[1]:].tolist()


def test_gguf_reads_back_with_the_merged_weights_and_tokenizer(exported):
    import torch

    merged, tokenizer = _load(exported / "hf", gguf=False)
    ids = tokenizer(PROMPTS[0], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        reference = merged(ids).logits
    for quant, tolerance in (("f16", 2e-3), ("q8_0", 5e-2)):
        model, gguf_tokenizer = _load(exported / quant, gguf=True)
        with torch.no_grad():
            assert (model(ids).logits - reference).abs().max() < tolerance, quant
        assert gguf_tokenizer(PROMPTS[0])["input_ids"] == ids[0].tolist()
    f16, f16_tokenizer = _load(exported / "f16", gguf=True)
    same = sum(_greedy(merged, tokenizer, p) == _greedy(f16, f16_tokenizer, p) for p in PROMPTS)
    assert same == len(PROMPTS)


def test_one_chat_template_and_one_end_token_everywhere(exported):
    _, trained = _load(exported / "hf", gguf=False)
    _, gguf_tokenizer = _load(exported / "f16", gguf=True)
    assert gguf_tokenizer.chat_template == trained.chat_template
    for prompt in (True, False):
        assert gguf_tokenizer.apply_chat_template(CONVERSATION, add_generation_prompt=prompt) == (
            trained.apply_chat_template(CONVERSATION, add_generation_prompt=prompt))
    assert gguf_tokenizer.eos_token == trained.eos_token == "<|im_end|>"


def test_the_modelfile_renders_the_chat_template_and_stops_on_the_end_token(exported):
    modelfile = (exported / "f16" / "Modelfile").read_text(encoding="utf-8")
    assert modelfile.startswith("FROM ./f16.gguf\n")
    assert 'PARAMETER stop "<|im_end|>"' in modelfile
    template = modelfile.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    # the Go template, filled in for the conversation, is the chat template's own rendering
    _, trained = _load(exported / "hf", gguf=False)
    expected = trained.apply_chat_template(CONVERSATION, tokenize=False,
                                           add_generation_prompt=True)
    assert _render_go_template(template, CONVERSATION) == expected


def _render_go_template(template: str, messages: list[dict[str, str]]) -> str:
    """The subset of Go's text/template the Modelfile uses: a range over messages, one branch
    per role, no whitespace trimming inside it."""
    body, generation = template.removeprefix("{{- range .Messages }}").split(
        "{{ end }}{{ end }}")
    branches = dict(re.findall(r'\{\{ (?:if|else if) eq \.Role "(\w+)" \}\}(.*?)'
                               r"(?=\{\{ else if |\Z)", body, re.S))
    return "".join(branches[m["role"]].replace("{{ .Content }}", m["content"])
                   for m in messages) + generation


def test_the_pre_tokenizer_is_named_from_the_tokenizer_not_from_its_folder(exported):
    """llama.cpp splits text before BPE by `tokenizer.ggml.pre`. It used to be read from the
    model's folder name, so every merged export (a temporary folder) got "default", and
    llama.cpp tokenized 47 of 115 of the demo's prompts unlike training."""
    import gguf

    for quant in ("f16", "q8_0"):
        reader = gguf.GGUFReader(exported / quant / f"{quant}.gguf")
        field = reader.fields["tokenizer.ggml.pre"]
        assert bytes(field.parts[field.data[0]]).decode() == "gpt-2"


@pytest.mark.parametrize(("pre", "name"), [
    ({"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}, "gpt-2"),
    ({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True},
                                            {"type": "ByteLevel", "use_regex": True}]},
     "smollm"),
])
def test_known_pre_tokenizers_get_llama_cpp_names(pre, name):
    from tuneline.models.gguf_export import _llama_cpp_pre_tokenizer

    assert _llama_cpp_pre_tokenizer(pre) == name


@pytest.mark.parametrize("pre", [
    {"type": "Metaspace", "replacement": "\u2581"},
    {"type": "ByteLevel", "use_regex": False},  # Llama 3 splits with its own regex first
    {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "x"}},
                                           {"type": "ByteLevel", "use_regex": False}]},
    None,
])
def test_an_unknown_pre_tokenizer_is_refused_not_guessed(pre):
    from tuneline.models.gguf_export import _llama_cpp_pre_tokenizer

    with pytest.raises(ModelError, match="pre-tokenizer"):
        _llama_cpp_pre_tokenizer(pre)


def test_an_unsupported_architecture_is_named(tmp_path, tiny_model_dir):
    folder = tmp_path / "gpt2"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["GPT2LMHeadModel"]
    config["model_type"] = "gpt2"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="GPT2LMHeadModel"):
        write_gguf(folder, tmp_path, "x")


EVERYDAY_PROMPTS = [f"In one sentence, what is {topic}?" for topic in (
    "photosynthesis", "gravity", "a prime number", "the moon", "democracy", "a volcano",
    "an atom", "music", "a river", "coffee", "a computer", "the ocean", "a library", "rain",
    "a bridge", "chess", "a forest", "electricity", "a city", "sleep")]


@pytest.fixture(scope="module")
def smollm2_answers():
    """The embedded SmolLM2 (HF, float32): its folder, tokenizer and greedy answers (up to 64
    tokens) to EVERYDAY_PROMPTS."""
    from tuneline.models.resolve import resolve_model

    source = Path(resolve_model("embedded:smollm2-135m-instruct"))
    hf, tokenizer = _load(source, gguf=False)
    expected = [_greedy_until_end(hf, tokenizer, p) for p in EVERYDAY_PROMPTS]
    return source, hf, tokenizer, expected


@pytest.mark.integration
@pytest.mark.slow
def test_smollm2_gguf_answers_like_the_hf_model_and_stops_by_itself(tmp_path, smollm2_answers):
    """The embedded model, exported as GGUF, against the HF model's greedy answers (up to 64
    tokens) to 20 prompts. Measured 2026-12-03: f16 gives the same answer to 19 of 20 (one
    near-tie flips) and the same next token at 99.8% of answer positions; q8_0 the same answer
    to 14 of 20, the same next token at 98.3% of positions."""
    import torch

    source, hf, tokenizer, expected = smollm2_answers
    prompts = EVERYDAY_PROMPTS
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert all(answer[-1] == end for answer in expected[:10])  # stops by itself
    for quant, at_least in (("f16", 0.99), ("q8_0", 0.97)):
        folder = tmp_path / quant
        folder.mkdir()
        write_gguf(source, folder, quant, quant)
        model, gguf_tokenizer = _load(folder, gguf=True)
        same = total = 0
        with torch.no_grad():
            for prompt_ids, answer in expected_pairs(tokenizer, prompts, expected):
                ids = torch.tensor([prompt_ids + answer])
                at = slice(len(prompt_ids) - 1, -1)
                same += int((hf(ids).logits[0, at].argmax(-1)
                             == model(ids).logits[0, at].argmax(-1)).sum())
                total += len(answer)
        assert same / total >= at_least, (quant, same, total)
        if quant == "f16":
            answers = [_greedy_until_end(model, gguf_tokenizer, p) for p in prompts]
            assert sum(a == e for a, e in zip(answers, expected, strict=True)) >= 19


LLAMACPP = Path(__file__).parents[2] / "bench" / "llamacpp"
# What a wrong pre-tokenizer splits differently: apostrophes, numbers, signs, non-ASCII.
TOKENIZER_PROMPTS = ["Who won the Women's -57kg at Paris 2024?", "It's 3.14159, isn't it?",
                     "Price: $12.50!!! <b>bold</b>  two  spaces\ttab",
                     "Émile Zola’s café — naïve 東京 2024年"]


def _llamacpp_greedy(gguf: Path, prompts: list[str], max_tokens: int) -> dict:
    """llama.cpp's own tokenization and greedy answers (bench/llamacpp/generate.mjs)."""
    import subprocess

    request = {"model": str(gguf), "prompts": prompts, "max_tokens": max_tokens}
    done = subprocess.run(["node", "generate.mjs"], cwd=LLAMACPP, input=json.dumps(request),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.integration
@pytest.mark.slow
def test_llama_cpp_reads_the_gguf_tokenizes_as_training_did_and_answers_alike(
        tmp_path, smollm2_answers):
    """The GGUF in llama.cpp itself (node-llama-cpp's prebuilt CPU build; `make llamacpp`), not
    transformers' reading of it: llama.cpp's tokenizer turns each chat-templated prompt into
    the token ids training used (apostrophes, numbers and non-ASCII text included), every
    answer ends with the end-of-turn token by itself, and f16 answers like the HF model.
    Measured 2026-12-06 (Intel Xeon, AVX-512): f16 the same answer to 20 of 20, q8_0 to 9 of
    20 (llama.cpp also rounds activations to 8 bits; the answers part at near ties of a 135M
    model's long replies), every q8_0 answer stopping by itself."""
    if shutil.which("node") is None or not (LLAMACPP / "node_modules").is_dir():
        pytest.skip("llama.cpp check needs node and `make llamacpp` (bench/llamacpp)")
    source, _, tokenizer, expected = smollm2_answers
    # A merged export lives in a folder named like any other: the model's name is no clue.
    model = tmp_path / "merged"
    model.mkdir()
    for file in source.iterdir():
        (model / file.name).symlink_to(file)
    prompts = EVERYDAY_PROMPTS + TOKENIZER_PROMPTS
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                           add_generation_prompt=True) for p in prompts]
    trained_ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for quant in ("f16", "q8_0"):
        folder = tmp_path / quant
        folder.mkdir()
        write_gguf(model, folder, quant, quant)
        got = _llamacpp_greedy(folder / f"{quant}.gguf", texts, 64)
        assert got["prompt_tokens"] == trained_ids, quant
        answers = got["answers"][:len(EVERYDAY_PROMPTS)]
        assert [a[-1] == end for a in answers] == [e[-1] == end for e in expected], quant
        if quant == "f16":
            same = sum(a == e for a, e in zip(answers, expected, strict=True))
            assert same >= 19, same


def expected_pairs(tokenizer, prompts: list[str], answers: list[list[int]]):
    for prompt, answer in zip(prompts, answers, strict=True):
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                            add_generation_prompt=True, return_dict=True)
        yield list(ids["input_ids"]), answer


def _greedy_until_end(model, tokenizer, prompt: str) -> list[int]:
    ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                        add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True)["input_ids"]
    out = model.generate(ids, max_new_tokens=64, do_sample=False,
                         eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                         pad_token_id=tokenizer.pad_token_id)
    return out[0, ids.shape[1]:].tolist()


@pytest.mark.integration
def test_ollama_creates_the_model_from_the_modelfile_and_answers(exported, tmp_path):
    """Where an `ollama` binary is on PATH: `ollama create` from the exported Modelfile keeps
    its template and stop token, and the created model answers."""
    import subprocess

    ollama = shutil.which("ollama")
    if ollama is None:
        pytest.skip("no `ollama` binary on PATH: `ollama create` cannot be tried here")
    folder = tmp_path / "f16"
    shutil.copytree(exported / "f16", folder)
    # The tiny random model never ends an answer by itself: cap it for this test only.
    with (folder / "Modelfile").open("a", encoding="utf-8") as modelfile:
        modelfile.write("\nPARAMETER num_predict 16\n")
    created = subprocess.run([ollama, "create", "tuneline-test-f16", "-f", "Modelfile"],
                             cwd=folder, capture_output=True, text=True, timeout=300)
    assert created.returncode == 0, created.stderr
    try:
        shown = subprocess.run([ollama, "show", "tuneline-test-f16", "--modelfile"],
                               capture_output=True, text=True, timeout=60)
        assert '"<|im_end|>"' in shown.stdout and "TEMPLATE" in shown.stdout
        answered = subprocess.run([ollama, "run", "tuneline-test-f16", "Say hi."],
                                  capture_output=True, text=True, timeout=300)
        assert answered.returncode == 0 and answered.stdout.strip(), answered.stderr
    finally:
        subprocess.run([ollama, "rm", "tuneline-test-f16"], capture_output=True, timeout=60)
