"""LLM-written question-answer pairs grounded in document chunks, as conversations.

Each chunk is sent once; a pair is kept only when its evidence is a quote of the chunk, its
answer's content words are in the chunk, and its question stands alone (it never points at
"the passage" or "this document"). Rejections are counted by reason, as for table rows."""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path
from typing import Any

from tuneline.errors import ConfigError
from tuneline.ingest.records import Record
from tuneline.llm.client import UsageTotals, chat_all
from tuneline.synthesize.config import DocumentQaConfig
from tuneline.synthesize.conversations import Conversation
from tuneline.synthesize.llm_synth import SynthesisReport, parse_pairs
from tuneline.text import STOP_WORDS, normalize

SYSTEM_PROMPT = """\
You write training data for a question-answering assistant from a passage of the document
"{title}". Write up to {pairs} question-answer pairs that the passage answers.
- Each question must stand alone: name what it asks about, and never refer to "the passage",
  "the text", "this document", "the author" or "above".
- Each answer is one to three sentences, stating only what the passage says.
- "evidence" is an exact quote (a sentence or part of one) of the passage that supports it.
Reply with JSON lines only: one JSON object per line, no list, no code fences, no commentary.
Each object has exactly these keys: "question", "answer", "evidence", "fact" (the answer's key
words, as in the passage).
Example line:
{{"question": "...", "answer": "...", "evidence": "...", "fact": "..."}}"""

_POINTS_AT_DOCUMENT = re.compile(
    r"\b(the|this|that|above|given|following) (passage|text|document|section|excerpt|"
    r"article|paragraph|page|author)\b|\b(according to|as stated|mentioned) (above|here)\b",
    re.IGNORECASE)


def document_conversations(cfg: DocumentQaConfig, records: dict[str, list[Record]],
                           tables: dict[str, Any], seed: int, cache_dir: Path | None
                           ) -> tuple[list[Conversation], SynthesisReport, UsageTotals]:
    """Grounded pairs from the chunks of `cfg.sources`, each a single-turn conversation whose
    thread is its chunk (so a chunk's pairs share a split) with the chunk's provenance."""
    assert cfg.endpoint is not None  # enforced by the config
    chunks = _chunks(cfg, records, tables, seed)
    prompts = [_messages(chunk, cfg.pairs_per_chunk) for chunk in chunks]
    report = SynthesisReport()
    results, totals = chat_all(cfg.endpoint, prompts, cache_dir, "synthesize (documents)")
    conversations: list[Conversation] = []
    seen: set[str] = set()
    for index, chunk in enumerate(chunks):
        for pair in parse_pairs(results[index].text or "", report):
            reason = grounding_problem(pair, chunk.data["text"], cfg.min_answer_overlap)
            if reason is None and normalize(pair["questions"][0]) in seen:
                reason = "duplicate_question"
            if reason is not None:
                report.rejected[reason] += 1
                continue
            seen.add(normalize(pair["questions"][0]))
            conversations.append(_conversation(cfg, chunk, pair))
    report.accepted = len(conversations)
    return conversations, report, totals


def grounding_problem(pair: dict[str, Any], chunk: str, min_overlap: float) -> str | None:
    """Why a pair is not grounded in its chunk, or None."""
    if len(pair["questions"]) != 1:
        return "not_one_question"
    question = pair["questions"][0].strip()
    if not question.endswith("?"):
        return "not_a_question"
    if _POINTS_AT_DOCUMENT.search(question):
        return "question_points_at_document"
    evidence = str(pair.get("evidence") or "").strip()
    if not evidence or normalize(evidence) not in normalize(chunk):
        return "evidence_not_in_chunk"
    words = _content_words(pair["answer"])
    if words and len(words & _content_words(chunk)) / len(words) < min_overlap:
        return "answer_not_in_chunk"
    return None


def _content_words(text: str) -> set[str]:
    return {w for w in normalize(text).split() if w not in STOP_WORDS and len(w) > 1}


def _chunks(cfg: DocumentQaConfig, records: dict[str, list[Record]], tables: dict[str, Any],
            seed: int) -> list[Record]:
    problems = [f"synthesize.documents.sources: '{name}' is not an ingest source of document "
                f"chunks (text and title columns)" for name in cfg.sources
                if name not in tables or not {"text", "title"} <= set(tables[name]["columns"])]
    if problems:
        raise ConfigError(problems)
    chunks = [r for name in cfg.sources for r in records.get(name, [])
              if len(r.data["text"]) >= cfg.min_chunk_chars]
    if cfg.max_chunks is not None and len(chunks) > cfg.max_chunks:
        chunks = sorted(random.Random(seed).sample(chunks, cfg.max_chunks),
                        key=lambda r: (r.source, r.file, r.line))
    return chunks


def _messages(chunk: Record, pairs: int) -> list[dict[str, str]]:
    system = SYSTEM_PROMPT.format(title=chunk.data["title"], pairs=pairs)
    return [{"role": "system", "content": system},
            {"role": "user", "content": f"Passage:\n{chunk.data['text']}\n\nWrite the JSON "
                                        "lines now."}]


def _conversation(cfg: DocumentQaConfig, chunk: Record, pair: dict[str, Any]) -> Conversation:
    thread = chunk.key or f"{chunk.file}:{chunk.line}"
    question = pair["questions"][0].strip()
    digest = hashlib.sha256(f"{chunk.source}\0{thread}\0{normalize(question)}".encode())
    messages = [{"role": "user", "content": question},
                {"role": "assistant", "content": pair["answer"]}]
    if cfg.system:
        messages.insert(0, {"role": "system", "content": cfg.system})
    return Conversation(digest.hexdigest()[:16], chunk.source, thread, messages, None,
                        {"file": chunk.file, "lines": [chunk.line],
                         "evidence": str(pair["evidence"])})
