import json

import pytest

from conftest import CAPITALS
from tuneline.config import PipelineConfig
from tuneline.curate import formats as export
from tuneline.curate.formats import bedrock_problems, bedrock_record, chat_example
from tuneline.errors import DataError
from tuneline.synthesize.templates import Fact

EXAMPLE = chat_example("What is the capital of Peru?", "The capital of Peru is Lima.")


def test_bedrock_conversation_record_has_the_documented_shape():
    assert bedrock_record(EXAMPLE, "conversation") == {
        "schemaVersion": "bedrock-conversation-2024",
        "messages": [
            {"role": "user", "content": [{"text": "What is the capital of Peru?"}]},
            {"role": "assistant", "content": [{"text": "The capital of Peru is Lima."}]},
        ],
    }
    with_system = {"messages": [{"role": "system", "content": "Be brief."}, *EXAMPLE["messages"]]}
    record = bedrock_record(with_system, "conversation")
    assert record["system"] == [{"text": "Be brief."}]
    assert [m["role"] for m in record["messages"]] == ["user", "assistant"]


def test_bedrock_prompt_completion_record():
    assert bedrock_record(EXAMPLE, "prompt_completion") == {
        "prompt": "What is the capital of Peru?", "completion": "The capital of Peru is Lima."}


def _conversation(n, question="What is the capital of Peru?"):
    return [bedrock_record(chat_example(question, "Lima."), "conversation") for _ in range(n)]


def test_bedrock_limits_for_nova_conversations():
    assert bedrock_problems(_conversation(8), "conversation", "train") == []
    assert [rule for rule, _ in bedrock_problems(_conversation(7), "conversation", "train")] \
        == ["record_count"]
    assert bedrock_problems(_conversation(3), "conversation", "validation") == []
    reserved = _conversation(9, "user: what is the capital of Peru? [EOS]")
    problems = bedrock_problems(reserved, "conversation", "train")
    assert [rule for rule, _ in problems] == ["reserved_keyword"] * 18
    assert "train.jsonl:1: contains 'User:'" in problems[0][1]


def test_bedrock_limits_for_prompt_completion(monkeypatch):
    long = {"prompt": "x" * 24_000, "completion": "y" * 577}
    ok = {"prompt": "x" * 24_000, "completion": "y" * 576}
    problems = bedrock_problems([ok, long], "prompt_completion", "train")
    assert problems == [("sample_chars", "train.jsonl:2: 24577 characters; the limit is 24576 "
                                         "(4,096 tokens x 6)")]
    monkeypatch.setitem(export.TEXT_FILE_BYTES, "validation", 100)
    rules = [rule for rule, _ in bedrock_problems([ok], "prompt_completion", "validation")]
    assert rules == ["file_size"]


def _synthesized(tmp_path, facts):
    from tuneline.artifacts import Artifact, write_jsonl

    folder = tmp_path / "synthesize"
    folder.mkdir(parents=True)
    write_jsonl(folder / "facts.jsonl", (f.to_json() for f in facts))
    return Artifact("synthesize", folder, {"output_hash": "0" * 64, "details": {}})


def _facts(question="What is the capital of {}?"):
    return [Fact(fact_id=f"f{i:02d}", template="capital", key=country, fact=capital,
                 answer=f"The capital of {country} is {capital}.",
                 questions=[question.format(country), f"Name the capital city of {country}.",
                            f"Which city is the capital of {country}?"],
                 source={"source": "capitals", "file": "capitals.csv", "line": i + 2})
            for i, (country, capital, _) in enumerate(CAPITALS)]


def _curate(tmp_path, name, facts, **curate_cfg):
    pytest.importorskip("datasketch")
    from tuneline.curate import stage as curate

    cfg = PipelineConfig.model_validate({"curate": {"val_fraction": 0.1, "card": False,
                                                    **curate_cfg}})
    return curate.run(cfg, _synthesized(tmp_path / name, facts), None,
                      tmp_path / name / "curate")


def _lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_curate_writes_bedrock_next_to_unchanged_openai_files(tmp_path):
    plain = _curate(tmp_path, "plain", _facts())
    both = _curate(tmp_path, "both", _facts(), exports=["openai", "bedrock"])
    for name in ("train.jsonl", "val.jsonl", "test.jsonl", "eval/recall.jsonl"):
        assert (plain.path / name).read_bytes() == (both.path / name).read_bytes()
    assert not (plain.path / "bedrock").exists()
    chats = _lines(both.path / "train.jsonl")
    records = _lines(both.path / "bedrock" / "train.jsonl")
    assert records == [bedrock_record(chat, "conversation") for chat in chats]
    assert len(_lines(both.path / "bedrock" / "validation.jsonl")) == both.manifest["counts"]["val"]
    assert both.manifest["counts"]["bedrock:train"] == len(chats)
    assert not any(k.startswith("bedrock_warning") for k in both.manifest["counts"])


def test_bedrock_limits_warn_or_fail(tmp_path):
    facts = _facts("User: what is the capital of {}?")
    warned = _curate(tmp_path, "warn", facts, exports=["bedrock"],
                     bedrock_format="conversation")
    counts = warned.manifest["counts"]
    assert counts["bedrock_warning:reserved_keyword"] == counts["bedrock:train"] // 2 + \
        counts["bedrock:validation"] // 2
    assert "contains 'User:'" in warned.manifest["details"]["bedrock"]["problems"][0]
    with pytest.raises(DataError, match="curate.bedrock_strict is on"):
        _curate(tmp_path, "strict", facts, exports=["bedrock"], bedrock_strict=True)
    pc = _curate(tmp_path, "pc", facts, exports=["bedrock"], bedrock_format="prompt_completion")
    assert set(_lines(pc.path / "bedrock" / "train.jsonl")[0]) == {"prompt", "completion"}
    assert not any(k.startswith("bedrock_warning") for k in pc.manifest["counts"])


def test_hf_export_loads_with_datasets(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    curated = _curate(tmp_path, "hf", _facts(), exports=["openai", "hf"])
    folder = curated.path / "hf"
    loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))
    counts = curated.manifest["counts"]
    assert {name: len(split) for name, split in loaded.items()} == {
        "train": counts["train"], "validation": counts["val"], "test": counts["test"]}
    assert loaded["train"]["messages"] == [c["messages"] for c in
                                           _lines(curated.path / "train.jsonl")]
    evals = datasets.load_dataset(str(folder), "eval", cache_dir=str(tmp_path / "cache"))
    assert len(evals["recall"]) == counts["recall"]
    assert evals["heldout"][0] == _lines(curated.path / "eval" / "heldout.jsonl")[0]
    assert counts["hf:default/train"] == counts["train"]
