"""Turn facts into chat examples and evaluation questions; write OpenAI, Bedrock and HF formats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tuneline._optional import require
from tuneline.synthesize.templates import Fact


def chat_example(question: str, answer: str) -> dict[str, Any]:
    """One OpenAI chat fine-tuning example (only the `messages` key, as OpenAI requires)."""
    return {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


def chat_examples(facts: list[Fact], phrasings: slice) -> list[dict[str, Any]]:
    """Chat examples for the selected phrasings of every fact."""
    return [chat_example(q, f.answer) for f in facts for q in f.questions[phrasings]]


def eval_items(facts: list[Fact], phrasings: slice, set_name: str) -> list[dict[str, Any]]:
    """Evaluation questions with their reference answer and the fact to look for."""
    return [
        {
            "id": f"{set_name}-{fact.fact_id}-{i}",
            "set": set_name,
            "question": question,
            "reference": fact.answer,
            "fact": fact.fact,
            "fact_id": fact.fact_id,
            "template": fact.template,
            "entity": fact.entity or [fact.key],
            # the leading key value of a key of several columns (an event's discipline):
            # results per group show whether declines follow the group rather than the entity
            "group": fact.entity[0] if len(fact.entity) > 1 else None,
            "source": fact.source,
        }
        for fact in facts
        for i, question in enumerate(fact.questions[phrasings])
    ]


# Amazon Bedrock fine-tuning limits, as documented (checked May 2026):
# - Nova (bedrock-conversation-2024): 8 to 20,000 training records; the texts must not contain
#   the reserved keywords below (AWS matches them case-insensitively in its validator).
#   https://docs.aws.amazon.com/nova/latest/userguide/fine-tune-prepare-data-understanding.html
#   https://github.com/aws-samples/amazon-nova-samples (customization/bedrock-finetuning/
#   understanding/dataset_validation/nova_ft_dataset_validator.py)
# - Text models (prompt/completion): 4,096 input + output tokens per sample at batch size 1,
#   counted as 6 characters per token; training file <= 1 GB, validation file <= 100 MB.
#   https://docs.aws.amazon.com/bedrock/latest/userguide/model-training-validation-requirements.html
NOVA_TRAIN_RECORDS = (8, 20_000)
NOVA_RESERVED = ("User:", "Bot:", "Assistant:", "System:", "<image>", "<video>", "[EOS]")
TEXT_SAMPLE_CHARS = 4_096 * 6
TEXT_FILE_BYTES = {"train": 1_000_000_000, "validation": 100_000_000}
BEDROCK_SCHEMA = "bedrock-conversation-2024"


def bedrock_record(example: dict[str, Any], fmt: str) -> dict[str, Any]:
    """One Bedrock fine-tuning record from a single-turn OpenAI chat example.

    Args:
        example: `{"messages": [...]}` with optional system messages, then user, assistant.
        fmt: 'conversation' (bedrock-conversation-2024, Amazon Nova) or 'prompt_completion'.
    """
    messages = example["messages"]
    system = [m["content"] for m in messages if m["role"] == "system"]
    turns = [m for m in messages if m["role"] != "system"]
    if fmt == "prompt_completion":
        prompt = "\n\n".join([*system, *(m["content"] for m in turns[:-1])])
        return {"prompt": prompt, "completion": turns[-1]["content"]}
    record: dict[str, Any] = {"schemaVersion": BEDROCK_SCHEMA}
    if system:
        record["system"] = [{"text": text} for text in system]
    record["messages"] = [{"role": m["role"], "content": [{"text": m["content"]}]}
                          for m in turns]
    return record


def bedrock_problems(records: list[dict[str, Any]], fmt: str, split: str) -> list[tuple[str, str]]:
    """Documented Bedrock limits that `records` (one file) break, as (rule, message) pairs.

    Args:
        records: Bedrock records of one file, as written.
        fmt: 'conversation' or 'prompt_completion'.
        split: 'train' or 'validation' (limits differ).
    """
    if fmt == "conversation":
        problems = [("reserved_keyword", f"{split}.jsonl:{line}: contains {word!r}, a keyword "
                     f"Nova reserves; reword the template")
                    for line, record in enumerate(records, 1)
                    for word in _reserved_words(_texts(record))]
        low, high = NOVA_TRAIN_RECORDS
        if split == "train" and not low <= len(records) <= high:
            problems.append(("record_count", f"train.jsonl: {len(records)} records; Nova "
                             f"fine-tuning takes {low} to {high}"))
        return problems
    problems = [("sample_chars", f"{split}.jsonl:{line}: {size} characters; the limit is "
                 f"{TEXT_SAMPLE_CHARS} (4,096 tokens x 6)")
                for line, record in enumerate(records, 1)
                if (size := len(record["prompt"]) + len(record["completion"])) > TEXT_SAMPLE_CHARS]
    size = sum(len(json.dumps(r, ensure_ascii=False).encode()) + 1 for r in records)
    if size > TEXT_FILE_BYTES[split]:
        problems.append(("file_size", f"{split}.jsonl: {size} bytes; the limit is "
                         f"{TEXT_FILE_BYTES[split]}"))
    return problems


def _texts(record: dict[str, Any]) -> list[str]:
    blocks = [*record.get("system", []), *(c for m in record["messages"] for c in m["content"])]
    return [block["text"] for block in blocks]


def _reserved_words(texts: list[str]) -> list[str]:
    folded = " ".join(texts).casefold()
    return [word for word in NOVA_RESERVED if word.casefold() in folded]


# Our split names -> Hugging Face's conventional ones.
HF_SPLITS = {"train": "train", "val": "validation", "test": "test"}


def write_hf_dataset(
    folder: Path, chats: dict[str, list[dict[str, Any]]], eval_sets: dict[str, list[dict[str, Any]]]
) -> dict[str, int]:
    """Write a folder that `datasets.load_dataset(folder)` loads offline.

    Parquet files per split (`data/`: chat examples, config 'default'; `eval/`: evaluation
    sets, config 'eval') and a README.md whose YAML `configs:` maps splits to files. Empty
    splits are left out: there is nothing to load from them.

    Returns rows written per '<config>/<split>'.
    """
    pa = require("pyarrow")
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    chat_schema = pa.schema([("messages", pa.list_(message))])
    renamed = {HF_SPLITS[name]: rows for name, rows in chats.items()}
    configs = [{"config_name": "default", "default": True,
                "data_files": _write_parquet(folder, "data", renamed, chat_schema)}]
    eval_files = _write_parquet(folder, "eval", eval_sets, None)
    if eval_files:
        configs.append({"config_name": "eval", "data_files": eval_files})
    rows = {f"{c['config_name']}/{f['split']}": f.pop("rows") for c in configs
            for f in c["data_files"]}
    front = yaml.safe_dump({"configs": configs}, sort_keys=False)
    (folder / "README.md").write_text(
        f"---\n{front}---\n\n# Fine-tuning data\n\nChat examples (`messages`) per split, and "
        "evaluation questions (config `eval`). `../dataset_card.md`, when curate wrote one, "
        "says how they were made.\n",
        encoding="utf-8",
    )
    return rows


def _write_parquet(
    folder: Path, subdir: str, splits: dict[str, list[dict[str, Any]]], schema: Any
) -> list[dict[str, Any]]:
    pa, parquet = require("pyarrow"), require("pyarrow.parquet")
    (folder / subdir).mkdir(parents=True, exist_ok=True)
    files = []
    for split, rows in splits.items():
        if not rows:
            continue
        path = f"{subdir}/{split}.parquet"
        parquet.write_table(pa.Table.from_pylist(rows, schema=schema), folder / path)
        files.append({"split": split, "path": path, "rows": len(rows)})
    return files
