"""Documents as sections of blocks (reStructuredText, HTML, PDF, and markdown for FAQs): each
block keeps its source line (or page), each section its heading trail. Chunked for the index
like markdown is, and read for question-answer pairs (FAQs) with no LLM."""

from __future__ import annotations

import html as html_entities
import re
from dataclasses import dataclass, field
from typing import Any

from tuneline.ingest.documents import (
    _PARAGRAPH,
    Chunk,
    _blank_front_matter,
    _LineIndex,
    _units,
    inline_text,
    markdown_sections,
    markdown_tokens,
    pack,
)

# A question in a Q:/A: block, and its answer ("Q. ...", "Question: ...", "A) ...").
_Q_LINE = re.compile(r"^\s*(?:Q|Question)\s*[:.)]\s*(?P<text>\S.*)$", re.IGNORECASE)
_A_LINE = re.compile(r"^\s*(?:A|Answer)\s*[:.)]\s*(?P<text>.*)$", re.IGNORECASE)
# A section number before a heading's question ("1.1. What is Debian?", "3) Why?", "(3) How?",
# "Q4:", fetchmail's "G12."), which nobody types when asking it.
NUMBERING = re.compile(r"^(?:(?:\d+\.)+|\(?\d+\)|Q\d+[:.)]?|[A-Z]\d+[.)])\s+")
# A plain-text FAQ's item number, starting its paragraph ("2. I installed procmail...").
_ITEM_NUMBER = re.compile(r"^\s*(?:\((?P<parenthesised>\d+)\)|Q?(?P<number>\d+)[.)])\s")
# The same without its final dot ("8.1 Why?"), read as a number when a lowercase word
# follows ("3.14 is pi?").
_BARE_NUMBERING = re.compile(r"^\d+(?:\.\d+)+\s+")
# A question mark that ends a word, at the end or before more words ("Why spaces? I prefer
# tabs", "How do I delete a file? (And other file questions...)", "... in C++?", "etc.?",
# "What is *this*?"), or a French spaced one at the end ("Pourquoi ?", « Pourquoi ? »); not an
# operator, a key or a quoted mark ("?", "\?", "expr ? expr : expr", "(M-?)", "The '?' operator").
_QUESTION_MARK = re.compile(
    r"(?:\w|(?<=\S)[`'\"”’)\].+#%*!…）])(?:[?？][\"'”’)\]»）]*(?=\s|$)"
    r"|\s[?？](?:\s?[\"'”’)\]»）])*$)")


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
    for index, section in enumerate(sections):
        heading = section.trail[-1] if section.trail else ""
        answer = [b for b in section.blocks if b.kind != "term"]
        if asks(heading) and not answer:
            answer = _answered_below(sections, index)
        if asks(heading) and answer:
            pairs.append(FaqPair(as_asked(heading), _join(answer), section.title, section.line,
                                 "heading"))
            continue
        pairs += (_qa_blocks(section) + _definitions(section)
                  or _numbered_questions(section))
    return pairs


def _answered_below(sections: list[Section], index: int) -> list[Block]:
    """A question heading's answer given in subsections ("How can I use fetchmail with qmail?"
    then "qmail as your local SMTP server" and "qmail as your ISP's POP3 server"): each
    subheading as a line, then its text. None when a subheading asks a question itself: those
    are pairs of their own."""
    trail = sections[index].trail
    below = []
    for section in sections[index + 1:]:
        if len(section.trail) <= len(trail) or section.trail[:len(trail)] != trail:
            break
        if asks(section.trail[-1]):
            return []
        below += [Block(section.trail[-1], section.line), *section.blocks]
    return below


def _numbered_questions(section: Section) -> list[FaqPair]:
    """A plain-text FAQ's numbered paragraphs ("1. How do I ...?" then its answer, as
    procmail's FAQ): a numbered paragraph that asks, numbered above the item before it, starts
    the next question, answered by the paragraphs up to the next item. A list inside an answer
    restarts at 1 and does not end it; after the answer's text, the next number that does not
    ask ends it as an item not asked ("3. The compiler warns about pointers."). The whole
    numbered paragraph is the question (procmail's list several on their own lines)."""
    items: list[tuple[Block, list[Block]]] = []
    last, inner_list = 0, False
    for block in section.blocks:
        number = _item_number(block)
        asks = _asks_anywhere(block.text)
        if number is not None and number > last and (
                asks or number == last + 1 and not inner_list):
            items.append((block, []))
            last, inner_list = number, False
        elif items:
            items[-1][1].append(block)
            inner_list = inner_list or number == 1
    return [FaqPair(as_asked(question.text), _join(answer), section.title, question.line,
                    "numbered") for question, answer in items
            if answer and _asks_anywhere(question.text)]


def _item_number(block: Block) -> int | None:
    match = _ITEM_NUMBER.match(block.text) if block.kind == "text" else None
    return int(match["parenthesised"] or match["number"]) if match else None


def _asks_anywhere(text: str) -> bool:
    return "?" in text


def asks(text: str) -> bool:
    """Whether a heading or term asks a question (`_QUESTION_MARK`)."""
    return _QUESTION_MARK.search(text.strip()) is not None


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
    return "\n\n".join(_flowed_paragraph(p) for p in paragraphs).strip()


def _flowed_paragraph(paragraph: str) -> str:
    """One paragraph's lines run together, each line's indent dropped (plain-text FAQs indent
    answers with tabs); a line starting a "- " item keeps its own line."""
    lines = [line.strip() for line in paragraph.split("\n")]
    joined = lines[:1]
    for line in lines[1:]:
        joined.append(("\n" if line.startswith("- ") else " ") + line)
    return "".join(joined).strip()


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
        if block.kind != "term" or not asks(block.text):
            continue
        answer = []
        for following in blocks[i + 1:]:
            if following.kind != "definition":
                break
            answer.append(following)
        if answer:
            pairs.append(FaqPair(_completed(as_asked(block.text), section), _join(answer),
                                 section.title, block.line, "definition"))
    return pairs


def _completed(question: str, section: Section) -> str:
    """A term that continues its heading's sentence ("How do I..." then "... get section
    numbers?", Sphinx's FAQ) asked whole: "How do I get section numbers?"."""
    heading = section.trail[-1] if section.trail else ""
    stem = re.sub(r"(?:\.\.\.|\u2026)\s*$", "", heading)
    rest = re.sub(r"^(?:\.\.\.|\u2026)\s*", "", question)
    if stem == heading or rest == question:
        return question
    return f"{as_asked(stem).rstrip()} {rest}"


def text_sections(text: str, name: str, markdown: bool) -> list[Section]:
    """Sections of blocks of a markdown (headings) or plain-text document (one section)."""
    if markdown:
        text = _blank_front_matter(text)
    lines = _LineIndex(text)
    tokens = markdown_tokens(text) if markdown else []
    spans = markdown_sections(text, name, tokens) if markdown else [(name, 0, len(text))]
    blocks = _markdown_blocks(tokens, lines) if markdown else [
        (paragraph.start(), Block(paragraph.group().strip(), lines.line_of(paragraph.start())))
        for paragraph in _PARAGRAPH.finditer(text) if paragraph.group().strip()]
    sections = []
    for title, start, end in spans:
        trail = title.split(" > ") if title != name else []
        section = Section(trail, lines.line_of(max(0, start - 1)))
        section.blocks = [block for offset, block in blocks if start <= offset < end]
        sections.append(section)
    return sections


def _markdown_blocks(tokens: list[Any], lines: _LineIndex) -> list[tuple[int, Block]]:
    """(offset, block) of each paragraph, list item and code block of a markdown text, as a
    reader sees them (CommonMark): links, emphasis and inline code as their text, a list item
    with its "- " or "3. ", a code block's lines as they are, without its fences, raw HTML
    without its tags."""
    blocks: list[tuple[int, Block]] = []
    lists: list[str] = []
    prefix, in_heading = "", False
    for token in tokens:
        if token.type in ("bullet_list_open", "ordered_list_open"):
            lists.append(token.type)
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif token.type in ("list_item_open", "list_item_close"):
            bullet = lists[-1] == "bullet_list_open"
            prefix = "" if token.type == "list_item_close" else (
                "- " if bullet else f"{token.info}. ")
        elif token.type in ("heading_open", "heading_close") and token.level == 0:
            in_heading = token.type == "heading_open"  # a section's title (markdown_sections)
        elif token.map is None or in_heading:
            continue
        elif token.type in ("inline", "fence", "code_block", "html_block"):
            code = token.type in ("fence", "code_block")
            body = (token.content.strip("\n") if code
                    else _without_tags(token.content) if token.type == "html_block"
                    else prefix + inline_text(token, keep_breaks=True))
            prefix = ""
            if body.strip():
                offset = lines.offset_of(token.map[0])
                blocks.append((offset, Block(body, lines.line_of(offset),
                                             "code" if code else "text")))
    return blocks


def _without_tags(html: str) -> str:
    """The text of a block of raw HTML in markdown (a <details> answer), comments and tags
    dropped."""
    hidden = re.sub(r"<!--.*?-->|<(script|style)\b.*?</\1\s*>", " ", html,
                    flags=re.DOTALL | re.IGNORECASE)
    text = html_entities.unescape(re.sub(r"<[^>]*>", " ", hidden))
    return "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())

