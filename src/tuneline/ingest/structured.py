"""Read documents of any format (reStructuredText, HTML, PDF, and text or markdown for FAQs)
into sections of blocks; yield their chunks, or their FAQ question-answer pairs, as records."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from tuneline.errors import DataError
from tuneline.ingest.config import SourceConfig
from tuneline.ingest.documents import SUFFIXES, document_files, read_text, relative_name
from tuneline.ingest.records import Record
from tuneline.ingest.sections import Section, chunk_sections, faq_pairs, text_sections

STRUCTURED_FORMATS = ("rst", "html", "pdf")  # read into sections of blocks, then chunked


def reads_structured(source: SourceConfig) -> bool:
    """Whether this module reads `source` (rst, html, pdf, or any document source with faq)."""
    return source.format in STRUCTURED_FORMATS or source.faq


def read_structured(source: SourceConfig) -> Iterator[Record]:
    """One record per chunk (columns text, title, chunk, file) or, with `faq`, per question-
    answer pair (question, answer, title, file, shape), of every document of the source."""
    assert source.path is not None  # guaranteed by SourceConfig's validation
    files = document_files(source.path, source.format)
    if not files:
        raise DataError(f"{source.path}: no {'/'.join(SUFFIXES[source.format])} files in this "
                        f"folder for source '{source.name}'; check path and format")
    for file in files:
        relative = relative_name(file, source.path)
        sections = document_sections(file, source.format, source.encoding)
        if source.faq:
            seen: Counter[int] = Counter()
            for pair in faq_pairs(sections):
                data = {"question": pair.question, "answer": pair.answer, "title": pair.title,
                        "file": relative, "shape": pair.shape}
                # a PDF's line is its page, which may hold several questions
                seen[pair.line] += 1
                repeat = f".{seen[pair.line]}" if seen[pair.line] > 1 else ""
                yield Record(source.name, str(file), pair.line, data,
                             key=f"{relative}:{pair.line}{repeat}")
            continue
        chunks = chunk_sections(sections, document_stem(file), source.chunk_size,
                                source.chunk_overlap)
        for index, chunk in enumerate(chunks):
            data = {"text": chunk.text, "title": chunk.title, "chunk": str(index),
                    "file": relative}
            yield Record(source.name, str(file), chunk.line, data, key=f"{relative}#{index}")


def document_sections(file: Path, fmt: str, encoding: str = "auto") -> list[Section]:
    """The sections of one document of any document format."""
    if fmt == "pdf":
        from tuneline.ingest.pdf_files import pdf_sections

        return pdf_sections(file)
    text = read_text(file, encoding)
    if fmt == "rst":
        from tuneline.ingest.rst import rst_sections

        return rst_sections(text, file)
    if fmt == "html":
        from tuneline.ingest.html_pages import html_sections

        return html_sections(text, file)
    return text_sections(text, document_stem(file), markdown=fmt == "markdown")


def document_stem(file: Path) -> str:
    """The file name without its document suffix ('general.rst.txt' -> 'general')."""
    name = file.name
    for suffix in sorted((s for group in SUFFIXES.values() for s in group), key=len,
                         reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return file.stem
