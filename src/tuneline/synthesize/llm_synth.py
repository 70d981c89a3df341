"""LLM-written Q&A pairs from batches of table rows: prompts, strict parsing, grounding."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

from tuneline.artifacts import hash_strings
from tuneline.ingest.records import Record
from tuneline.llm.client import UsageTotals, chat_all
from tuneline.synthesize.config import LlmSynthesisConfig
from tuneline.synthesize.templates import Fact
from tuneline.text import contains_fact, normalize

SYSTEM_PROMPT = """\
You write training data for a question-answering assistant from rows of the table "{table}".
Write {pairs} question-answer pairs. Each pair must be answerable from ONE row alone, and each
question must name the entity it asks about (for example its name, event or date) so that it
makes sense without the table.
Reply with JSON lines only: one JSON object per line, no list, no code fences, no commentary.
Each object has exactly these keys:
  "row": the number of the row the pair comes from,
  "questions": {phrasings} different phrasings of the same question,
  "answer": one full sentence that answers it,
  "fact": the exact value from that row that answers the question (it must appear in the answer).
Example line:
{{"row": 1, "questions": ["...", "...", "..."], "answer": "...", "fact": "..."}}"""

_FENCE = re.compile(r"^```[a-zA-Z]*$")


@dataclass
class SynthesisReport:
    """Why lines and pairs were dropped, by reason."""

    pairs: int = 0
    accepted: int = 0
    bad_lines: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {"pairs": self.pairs, "accepted": self.accepted,
                "bad_lines": dict(self.bad_lines), "rejected": dict(self.rejected)}


def generate_facts(cfg: LlmSynthesisConfig, records: dict[str, list[Record]],
                   min_questions: int, seed: int,
                   cache_dir: Path | None) -> tuple[list[Fact], SynthesisReport, UsageTotals]:
    """Ask the endpoint for pairs about batches of rows; keep the grounded ones as Facts.

    Args:
        cfg: the `synthesize.llm` section (endpoint, batch sizes, limits).
        records: ingested records by source name.
        min_questions: phrasings a pair must keep (curate needs some to train, some to probe).
        seed: seeds the row batches.
        cache_dir: response cache folder (None: no cache).
    """
    assert cfg.endpoint is not None
    rng = random.Random(seed)
    jobs = [(name, batch) for name in (cfg.sources or sorted(records))
            for batch in row_batches(records[name], cfg.rows_per_prompt, None, rng)]
    jobs = jobs[:cfg.max_prompts] if cfg.max_prompts is not None else jobs
    prompts = [build_messages(name, batch, cfg.pairs_per_prompt, cfg.questions_per_pair,
                              cfg.system_prompt) for name, batch in jobs]
    report = SynthesisReport()
    results, totals = chat_all(cfg.endpoint, prompts, cache_dir, "synthesize (llm)")
    facts = []
    for index, (_, batch) in enumerate(jobs):  # in prompt order, so the output is deterministic
        for pair in parse_pairs(results[index].text or "", report):
            fact, reason = ground_pair(pair, batch, cfg.min_fuzzy_ratio, min_questions)
            if fact is None:
                report.rejected[reason] += 1
            else:
                facts.append(fact)
    report.accepted = len(facts)
    return facts, report, totals


def row_batches(records: list[Record], rows_per_prompt: int, max_prompts: int | None,
                rng: random.Random) -> list[list[Record]]:
    """Shuffled batches covering every row once (the seed's 'N random rows per prompt')."""
    order = list(records)
    rng.shuffle(order)
    batches = [order[i:i + rows_per_prompt] for i in range(0, len(order), rows_per_prompt)]
    return batches[:max_prompts] if max_prompts is not None else batches


def build_messages(table: str, batch: list[Record], pairs: int, phrasings: int,
                   system_prompt: str | None = None) -> list[dict[str, str]]:
    """The chat messages asking for `pairs` JSON-line Q&A pairs about the numbered rows."""
    system = (system_prompt or SYSTEM_PROMPT).format(table=table, pairs=pairs,
                                                      phrasings=phrasings)
    rows = "\n".join(f"Row {i}: " + json.dumps(r.data, ensure_ascii=False)
                     for i, r in enumerate(batch, start=1))
    return [{"role": "system", "content": system},
            {"role": "user", "content": f"Rows:\n{rows}\n\nWrite the {pairs} JSON lines now."}]


def parse_pairs(text: str, report: SynthesisReport) -> list[dict[str, Any]]:
    """Objects from a JSON-lines reply; every unusable line is counted by reason, never raised."""
    pairs = []
    for raw in text.splitlines():
        line = raw.strip().rstrip(",")
        if not line or _FENCE.match(line):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            report.bad_lines["not_json"] += 1
            continue
        problem = _shape_problem(obj)
        if problem:
            report.bad_lines[problem] += 1
            continue
        pairs.append(obj)
    report.pairs += len(pairs)
    return pairs


def _shape_problem(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return "not_an_object"
    questions = obj.get("questions", obj.get("question"))
    if isinstance(questions, str):
        obj["questions"] = questions = [questions]
    if not isinstance(questions, list) or not all(isinstance(q, str) for q in questions):
        return "bad_questions"
    for name in ("answer", "fact"):
        if not isinstance(obj.get(name), str | int | float) or not str(obj[name]).strip():
            return f"missing_{name}"
    obj["fact"], obj["answer"] = str(obj["fact"]).strip(), str(obj["answer"]).strip()
    return None


def matches_cell(claim: str, cell: str, min_ratio: float) -> bool:
    """Is the claimed value this cell (normalised equality, number equality, or fuzzy)?"""
    a, b = normalize(claim), normalize(cell)
    if not a or not b:
        return False
    if a == b or _same_number(claim, cell):
        return True
    return SequenceMatcher(None, a, b).ratio() >= min_ratio


def _same_number(a: str, b: str) -> bool:
    try:
        return float(a.strip().rstrip(".")) == float(b.strip())
    except ValueError:
        return False




def ground_pair(pair: dict[str, Any], batch: list[Record], min_ratio: float,
                min_questions: int) -> tuple[Fact | None, str | None]:
    """The pair as a Fact when its source row supports it, else the rejection reason."""
    record, cell = _supporting_cell(pair, batch, min_ratio)
    if record is None:
        return None, "row_out_of_range" if cell == "bad_row" else "fact_not_in_row"
    if not contains_fact(pair["answer"], pair["fact"]) and not contains_fact(pair["answer"], cell):
        return None, "fact_not_in_answer"
    entities = [v for v in record.data.values()
                if v.strip() and v != cell and len(normalize(v)) > 2]
    questions = [q.strip() for q in dict.fromkeys(pair["questions"]) if q.strip()]
    with_entity = [q for q in questions if any(contains_fact(q, e) for e in entities)]
    if questions and not with_entity:
        return None, "entity_not_in_question"
    if len(normalize(pair["fact"])) > 3:
        with_entity = [q for q in with_entity if not contains_fact(q, pair["fact"])]
    if len(with_entity) < min_questions:
        return None, "too_few_phrasings"
    subject = next(e for e in entities if contains_fact(with_entity[0], e))
    return _fact(record, subject, pair["fact"], pair["answer"], with_entity), None


def _supporting_cell(pair: dict[str, Any], batch: list[Record],
                     min_ratio: float) -> tuple[Record | None, str]:
    """The row the pair cites (or, without a row number, the one row holding the fact)."""
    row = pair.get("row")
    if row is None:
        holders = [(r, c) for r in batch for c in r.data.values()
                   if matches_cell(pair["fact"], c, min_ratio)]
        return holders[0] if len({id(r) for r, _ in holders}) == 1 else (None, "")
    if not isinstance(row, int) or isinstance(row, bool) or not 1 <= row <= len(batch):
        return None, "bad_row"
    record = batch[row - 1]
    cells = [c for c in record.data.values() if matches_cell(pair["fact"], c, min_ratio)]
    return (record, cells[0]) if cells else (None, "")


def _fact(record: Record, subject: str, fact: str, answer: str, questions: list[str]) -> Fact:
    template = f"llm:{record.source}"
    key = f"{subject} | {questions[0]}"
    return Fact(
        fact_id=hash_strings(template, record.file, str(record.line), normalize(questions[0])),
        template=template, key=key, fact=fact, answer=answer, questions=questions,
        source={"source": record.source, "file": record.file, "line": record.line},
    )
