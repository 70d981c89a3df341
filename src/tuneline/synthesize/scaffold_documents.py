"""`tuneline init FOLDER`: a config for documents nobody configured. FAQ-shaped documents
(question headings, `Q:`/`A:` blocks, definition lists) give question-answer pairs offline,
trained as conversations; the same documents, in chunks, feed retrieval."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tuneline.errors import DataError
from tuneline.ingest.config import DOCUMENT_FORMATS, SourceConfig
from tuneline.ingest.documents import document_files
from tuneline.ingest.sources import read_source
from tuneline.synthesize.scaffold import (
    flow_yaml,
    quote_yaml,
    relative_to_config,
    run_and_model_lines,
    slug,
)

SUFFIXES = {".txt": "text", ".md": "markdown", ".markdown": "markdown", ".rst": "rst",
            ".rest": "rst", ".html": "html", ".htm": "html", ".xhtml": "html", ".pdf": "pdf"}
assert set(SUFFIXES.values()) == set(DOCUMENT_FORMATS)
MIN_PAIRS = 10  # a fifth held out and a tenth for dev leave too little to learn from below
CHUNK_CHARS = 1000
PASSAGES = 2


@dataclass(frozen=True)
class DocumentsPlan:
    """What `init` found in a folder (or file) of documents."""

    name: str
    path: Path
    format: str
    files: int
    pairs: int
    answer_tokens: int  # evaluate.reference_max_new_tokens
    other_formats: dict[str, int]  # formats in the folder left out, with their file counts


def document_format(path: Path) -> str | None:
    """The document format of a file by its name (`.rst.txt` is reStructuredText), or None."""
    name = path.name.lower()
    return "rst" if name.endswith(".rst.txt") else SUFFIXES.get(path.suffix.lower())


def is_documents(path: Path) -> bool:
    return path.is_dir() or document_format(path) is not None


def plan_documents(path: Path, name: str | None = None) -> DocumentsPlan:
    """Read the question-answer pairs of the folder's most common document format; a
    DataError says what init needs when there are too few."""
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    files = ([path] if path.is_file() else
             sorted(f for f in path.rglob("*") if f.is_file() and document_format(f)
                    and not any(part.startswith(".") for part in f.relative_to(path).parts)))
    formats = Counter(document_format(f) for f in files)
    if not formats:
        raise DataError(f"{path}: no documents in it; init reads folders of "
                        f"{', '.join(sorted(SUFFIXES))} files")
    chosen = formats.most_common(1)[0][0]
    assert chosen is not None
    source = SourceConfig(name="faq", path=path, format=chosen, faq=True)
    pairs = [record.data for record in read_source(source)]
    if len(pairs) < MIN_PAIRS:
        raise DataError(
            f"{path}: {len(pairs)} question-answer pair(s) found in its {chosen} files without "
            f"an LLM; init needs at least {MIN_PAIRS}: FAQ-shaped documents (a heading that "
            "asks a question and the text under it, `Q:` / `A:` blocks, a definition-list term "
            "that asks one), or an LLM endpoint that writes questions from the chunks "
            "(synthesize.documents, docs/synthesize.md)")
    return DocumentsPlan(name or slug(path.stem if path.is_file() else path.name), path,
                         chosen, len(document_files(path, chosen)), len(pairs),
                         _answer_tokens(pairs),
                         {f: n for f, n in formats.items() if f != chosen and f})


def render_documents_config(plan: DocumentsPlan, config_path: Path) -> str:
    path = relative_to_config(plan.path, config_path.parent)
    left_out = ", ".join(f"{n} {f}" for f, n in plan.other_formats.items())
    lines = [
        f"# Written by `tuneline init` for {plan.path}: {plan.files} {plan.format} file(s), "
        f"{plan.pairs} question-answer pairs.",
        f"# Run:       tuneline run {config_path}",
        "# Held-out questions are graded against the documents' own answers: ROUGE-L, "
        "embedding", "# similarity (MiniLM) and token F1.",
        *([f"# Other documents in the folder, left out (one format per source): {left_out}."]
          if left_out else []),
        *run_and_model_lines(plan.name), "ingest:", "  sources:",
        "    # One record per question: a heading that asks one and the text under it (or a",
        "    # Q:/A: block, a definition-list term), with its file and line.",
        "    - " + flow_yaml({"name": "faq", "path": path, "format": plan.format, "faq": True}),
        "    # The same documents in chunks (heading trail + text) for retrieval.",
        "    - " + flow_yaml({"name": "docs", "path": path, "format": plan.format,
                          "chunk_size": CHUNK_CHARS, "chunk_overlap": 100}),
        "", "synthesize:", "  conversations:",
        "    - {source: faq, prompt: question, response: answer}", "",
        "index:", "  enabled: true", "  sources: [docs]",
        "  # A passage less similar to the question than a floor derived from the training",
        "  # questions is not shown; a question left with none is declined (docs/rag.md).",
        f"  retrieval: {{mode: hybrid, top_k: {PASSAGES}, max_passage_chars: {CHUNK_CHARS}, "
        "min_similarity: auto}",
        "",
        "curate:", "  heldout_fraction: 0.2", "  val_fraction: 0.05", "  dev_fraction: 0.1",
        "  # Half the training questions are also trained with the passages retrieved for",
        "  # them, so the tuned model reads the documents when it is given them.",
        "  rag: {conversation_fraction: 0.5}",
        "  # Trained questions a rule can reword are also asked that way, untrained.",
        "  reworded_fraction: 0.5", "",
        "train:", "  epochs: 2", "  learning_rate: 2.0e-3", "  batch_size: 8",
        "  # max_seq_len: unset, every example trains whole with its passages (train's",
        "  # manifest records the longest); set it to cap memory: train stops if over 2%",
        "  # would be dropped.",
        "  # Batches of long examples run as micro-batches of at most this many tokens:",
        "  # the same gradients, about 7 GiB at the peak instead of 11-14 at 4096.",
        "  max_micro_batch_tokens: 2048",
        "  lora: {r: 16, alpha: 32}", "  replay: {fraction: 0.1}   # against forgetting", "",
        "evaluate:", "  max_new_tokens: 48",
        f"  reference_max_new_tokens: {plan.answer_tokens}", "",
        "# A model below these is not registered (exit 7). What is served (below: the tuned",
        "# model reading the passages retrieved for each question) is graded on held-out",
        "# questions: ROUGE-L at least 0.10 (an unrelated answer scores about 0.05), and no",
        "# lower than the base model reading the same passages (base+rag).",
        "gate:", "  min_score: {reference: {rouge_l: 0.10}}",
        "  min_gain: {reference: {rouge_l: 0.0}}", "",
        "register:", f"  name: {quote_yaml(plan.name)}", "",
        "# Every request is answered with the passages retrieval finds. The closed-book model",
        "# is in the report, not served: on questions it never trained on it knows no more",
        "# than the base model (docs/benchmarks.md).",
        "serve:", "  retrieval: always", "",
    ]
    return "\n".join(lines)


def _answer_tokens(pairs: list[dict[str, str]]) -> int:
    """New tokens for a graded answer: the median answer's words x 1.4, 64 to 256."""
    median_words = statistics.median(len(p["answer"].split()) for p in pairs)
    return int(min(256, max(64, 32 * math.ceil(median_words * 1.4 / 32))))
