"""Documents as sections of blocks (reStructuredText, HTML, PDF, and markdown for FAQs): each
block keeps its source line (or page), each section its heading trail. Chunked for the index
like markdown is, and read for question-answer pairs (FAQs) with no LLM."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tuneline.ingest.documents import (
    _PARAGRAPH,
    Chunk,
    _blank_front_matter,
    _LineIndex,
    _units,
    markdown_sections,
    pack,
)

# A question in a Q:/A: block, and its answer ("Q. ...", "Question: ...", "A) ...").
_Q_LINE = re.compile(r"^\s*(?:Q|Question)\s*[:.)]\s*(?P<text>\S.*)$", re.IGNORECASE)
_A_LINE = re.compile(r"^\s*(?:A|Answer)\s*[:.)]\s*(?P<text>.*)$", re.IGNORECASE)
# A section number before a heading's question ("1.1. What is Debian?", "3) Why?", "(3) How?",
# "Q4:"), which nobody types when asking it.
NUMBERING = re.compile(r"^(?:(?:\d+\.)+|\(?\d+\)|Q\d+[:.)]?)\s+")
# The same without its final dot ("8.1 Why?"), read as a number when a lowercase word
# follows ("3.14 is pi?").
_BARE_NUMBERING = re.compile(r"^\d+(?:\.\d+)+\s+")


@dataclass(frozen=True)
class Block:
    """A paragraph, list item, code block, or definition-list term or definition."""

    text: str
    line: int
    # "text", "code", "term" (a definition-list term), "definition", or "page": a PDF page's
    # text, whose `line` is the page number
    kind: str = "text"


@dataclass
class Section:
    """A heading (its trail of parent headings) and the blocks under it before the next
    heading of any level."""

    trail: list[str]
    line: int
    blocks: list[Block] = field(default_factory=list)

    @property
    def title(self) -> str:
        return " > ".join(t for t in self.trail if t)


@dataclass(frozen=True)
class FaqPair:
    """A question and its answer found in a document, with where the question stands."""

    question: str
    answer: str
    title: str
    line: int
    shape: str  # "heading", "qa_block" or "definition"


def chunk_sections(sections: list[Section], name: str, size: int, overlap: int) -> list[Chunk]:
    """Chunks of at most `size` characters, packed from each section's blocks as markdown
    sections are; a chunk's line is that of the block it starts in."""
    chunks: list[Chunk] = []
    for section in sections:
        if not section.blocks:
            continue
        texts = [b.text if b.kind == "code" else flowed(b.text) for b in section.blocks]
        starts, offset = [], 0
        for text in texts:
            starts.append(offset)
            offset += len(text) + 2
        joined = "\n\n".join(texts)
        for begin, finish in pack(joined, _units(joined, 0, len(joined), size, overlap), size,
                                  overlap):
            block = section.blocks[max(0, _last_at_or_before(starts, begin))]
            chunks.append(Chunk(joined[begin:finish], section.title or name, block.line))
    return chunks


def _last_at_or_before(starts: list[int], offset: int) -> int:
    import bisect

    return bisect.bisect_right(starts, offset) - 1


def faq_pairs(sections: list[Section]) -> list[FaqPair]:
    """Question-answer pairs: a heading that asks a question, with the blocks under it as the
    answer; `Q:` / `A:` blocks; a definition-list term that asks a question, with its
    definition. Questions without an answer are left out."""
    pairs: list[FaqPair] = []
    for section in sections:
        heading = section.trail[-1] if section.trail else ""
        own = [b for b in section.blocks if b.kind != "term"]
        if _asks(heading) and own:
            pairs.append(FaqPair(as_asked(heading), _join(own), section.title, section.line,
                                 "heading"))
            continue
        pairs += _qa_blocks(section) + _definitions(section)
    return pairs


def _asks(text: str) -> bool:
    return text.rstrip().endswith("?")


def as_asked(question: str) -> str:
    """A heading's or term's question as a reader would ask it: without its section number,
    its spaces plain and single."""
    text = " ".join(question.split())
    if match := NUMBERING.match(text):
        return text[match.end():]
    if (match := _BARE_NUMBERING.match(text)) and not _starts_lowercase(text[match.end():]):
        return text[match.end():]
    return text


def _starts_lowercase(text: str) -> bool:
    letter = next((c for c in text if c.isalpha()), "")
    return letter.islower()


def _join(blocks: list[Block]) -> str:
    """Blocks as one answer: prose lines joined into paragraphs, code kept as it is, a PDF's
    pages run on (a page break is no paragraph break)."""
    texts = [b.text if b.kind == "code" else flowed(b.text) for b in blocks]
    joined = texts[:1]
    for previous, block, text in zip(blocks, blocks[1:], texts[1:], strict=False):
        joined.append((" " if previous.kind == block.kind == "page" else "\n\n") + text)
    return "".join(joined).strip()


def flowed(text: str) -> str:
    """Prose whose source lines were wrapped: one line per paragraph, list items kept apart."""
    paragraphs = re.split(r"\n\s*\n", text)
    return "\n\n".join(re.sub(r"\n(?!- )", " ", re.sub(r"[ \t]+\n", "\n", p)).strip()
                        for p in paragraphs).strip()


def _qa_blocks(section: Section) -> list[FaqPair]:
    """Q:/A: pairs, whether each is its own paragraph or both share one."""
    lines = [(block.line + (number if block.kind != "page" else 0), text, block.kind)
             for block in section.blocks if block.kind in ("text", "page")
             for number, text in enumerate(block.text.split("\n"))]
    pairs: list[FaqPair] = []
    question: tuple[str, int] | None = None
    answer: list[str] = []

    def close() -> None:
        if question is not None and "".join(answer).strip():
            text = flowed("\n".join(answer))
            pairs.append(FaqPair(question[0], text, section.title, question[1], "qa_block"))

    in_answer = False
    for line, text, _ in lines:
        if (match := _Q_LINE.match(text)) is not None:
            close()
            asked, _, replied = match["text"].partition(" A: ")  # "Q: ... A: ..." on one line
            question, answer, in_answer = (asked.strip(), line), [], False
            if replied.strip():
                answer, in_answer = [replied], True
        elif question is not None and (match := _A_LINE.match(text)) is not None:
            answer, in_answer = [match["text"]], True
        elif question is not None and in_answer:
            answer.append(text)
        elif question is not None:  # the question continues on the next line
            question = (f"{question[0]} {text.strip()}".strip(), question[1])
    close()
    return pairs


def _definitions(section: Section) -> list[FaqPair]:
    pairs = []
    blocks = section.blocks
    for i, block in enumerate(blocks):
        if block.kind != "term" or not _asks(block.text):
            continue
        answer = []
        for following in blocks[i + 1:]:
            if following.kind != "definition":
                break
            answer.append(following)
        if answer:
            pairs.append(FaqPair(as_asked(block.text), _join(answer), section.title,
                                 block.line, "definition"))
    return pairs


def text_sections(text: str, name: str, markdown: bool) -> list[Section]:
    """Sections of blocks of a markdown (headings) or plain-text document (one section)."""
    if markdown:
        text = _blank_front_matter(text)
    lines = _LineIndex(text)
    spans = markdown_sections(text, name) if markdown else [(name, 0, len(text))]
    sections = []
    for title, start, end in spans:
        trail = title.split(" > ") if title != name else []
        section = Section(trail, lines.line_of(max(0, start - 1)))
        for paragraph in _PARAGRAPH.finditer(text, start, end):
            body = paragraph.group().strip()
            if body:
                section.blocks.append(Block(body, lines.line_of(paragraph.start())))
        sections.append(section)
    return sections
