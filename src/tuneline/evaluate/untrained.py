"""Recall questions about rows that training never reached.

Training that stops within its first epoch (a time limit, train.max_steps, early stopping)
leaves some rows of curate's train.jsonl untrained, as does a row too long for
train.max_seq_len, and the train stage lists them. A recall question (a trained fact asked
anew, a trained question reworded, a trained entity under a variant name) expects the reply
that trained rows say; when every row that says it went untrained, scoring the question as
recall would count a fact never shown as one forgotten. Such questions are left out of
evaluation, and counted.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from tuneline.artifacts import read_jsonl


def _taught_replies(train_file: Path, untrained_rows: set[int]) -> dict[str, bool]:
    """Each assistant reply of `train_file` (whitespace-normalised): whether at least one row
    that says it was trained."""
    taught: dict[str, bool] = {}
    for number, row in enumerate(read_jsonl(train_file), start=1):
        trained = number not in untrained_rows
        for message in row["messages"]:
            if message["role"] == "assistant":
                reply = _normalised(message["content"])
                taught[reply] = taught.get(reply, False) or trained
    return taught


def split_untrained(items: list[dict[str, Any]], train_file: Path, untrained_rows: set[int]
                    ) -> tuple[list[dict[str, Any]], Counter[str]]:
    """`items` without the questions whose expected reply only untrained rows say, and how many
    of each set were left out. Questions that expect a decline are kept: declines are no fact
    of a row."""
    if not untrained_rows:
        return items, Counter()
    taught = _taught_replies(train_file, untrained_rows)
    kept, left_out = [], Counter[str]()
    for item in items:
        reply = _normalised(str(item.get("reference") or ""))
        if item.get("expect") != "abstain" and taught.get(reply) is False:
            left_out[item["set"]] += 1
        else:
            kept.append(item)
    return kept, left_out


def describe_left_out(left_out: Counter[str], untrained_rows: int) -> str:
    sets = ", ".join(f"{count} {name}" for name, count in sorted(left_out.items()))
    return (f"{sets} questions left out as never trained: no trained row of train.jsonl "
            f"says their answers ({untrained_rows} rows went untrained: training stopped "
            "within its first epoch, or a row was too long; train's never_trained.json)")


def _normalised(text: str) -> str:
    return " ".join(text.split())
