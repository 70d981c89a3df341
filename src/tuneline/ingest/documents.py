"""Read plain-text and markdown documents as overlapping chunks that keep their file and line."""

from __future__ import annotations

import bisect
import hashlib
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneline.artifacts import hash_file
from tuneline.errors import DataError
from tuneline.ingest.config import SourceConfig
from tuneline.ingest.records import Record, resolve_encoding, undecodable

SUFFIXES = {"text": (".txt",), "markdown": (".md", ".markdown"),
            "rst": (".rst", ".rst.txt", ".rest"), "html": (".html", ".htm", ".xhtml"),
            "pdf": (".pdf",)}
_PARAGRAPH = re.compile(r"(?:^[ \t]*\S.*(?:\n|\Z))+", re.MULTILINE)
_SENTENCE = re.compile(r"\S.*?(?:[.!?。！？…]+[\"'”’)\]]*(?=\s)|\Z)", re.DOTALL)
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n.*?^(?:---|\.\.\.)[ \t]*$", re.DOTALL | re.MULTILINE)


@dataclass(frozen=True)
class Chunk:
    """A piece of a document: its text, heading trail and 1-based starting line."""

    text: str
    title: str
    line: int


def document_files(path: Path, fmt: str) -> list[Path]:
    """`path` itself, or the files under the folder `path` with the format's suffixes, each
    content once (see `repeated_document_files`).

    Folders are walked recursively in sorted order; hidden files and folders are skipped.
    """
    files = _files_with_suffix(path, fmt)
    repeated = set(_repeats(files))
    return [file for file in files if file not in repeated]


def repeated_document_files(path: Path, fmt: str) -> list[Path]:
    """The files under `path` left out because another one holds the same bytes: a symlink
    to it (Debian's doc packages ship `faq.html -> faq.en.html`) or a copy."""
    return _repeats(_files_with_suffix(path, fmt))


def _files_with_suffix(path: Path, fmt: str) -> list[Path]:
    if not path.is_dir():
        return [path]
    files = [
        file for file in path.rglob("*")
        if file.name.lower().endswith(SUFFIXES[fmt]) and file.is_file()
        and not any(part.startswith(".") for part in file.relative_to(path).parts)
    ]
    return sorted(files, key=lambda file: file.relative_to(path).as_posix())


def _repeats(files: list[Path]) -> list[Path]:
    """Every file but the first of each content, a real file kept before a symlink. Only files
    whose size another shares are hashed."""
    size = {file: file.stat().st_size for file in files}
    shared = Counter(size.values())
    kept: dict[str | Path, Path] = {}
    for file in sorted(files, key=lambda file: file.is_symlink()):  # stable sort
        kept.setdefault(hash_file(file) if shared[size[file]] > 1 else file, file)
    chosen = set(kept.values())
    return [file for file in files if file not in chosen]


def documents_fingerprint(path: Path, fmt: str) -> str:
    """sha256 over the relative names and contents of every document under a source, those
    read once as repeats included (so a new symlink updates `repeated_files`)."""
    digest = hashlib.sha256()
    for file in _files_with_suffix(path, fmt):
        digest.update(relative_name(file, path).encode() + b"\0" + hash_file(file).encode())
    return digest.hexdigest()


def read_documents(source: SourceConfig) -> Iterator[Record]:
    """One Record per chunk of each document of a text or markdown source.

    Columns: text, title, chunk (index within its file) and file (relative to the source's
    folder); provenance: the file, the chunk's first line, key '<file>#<chunk>'.
    """
    assert source.path is not None  # guaranteed by SourceConfig's validation
    files = document_files(source.path, source.format)
    if not files:
        raise DataError(f"{source.path}: no {'/'.join(SUFFIXES[source.format])} files in this "
                        f"folder for source '{source.name}'; check path and format")
    for file in files:
        relative = relative_name(file, source.path)
        text = read_text(file, source.encoding)
        chunks = chunk_document(text, source.format, file.stem, source.chunk_size,
                                source.chunk_overlap)
        for index, chunk in enumerate(chunks):
            data = {"text": chunk.text, "title": chunk.title, "chunk": str(index),
                    "file": relative}
            yield Record(source.name, str(file), chunk.line, data, key=f"{relative}#{index}")


def relative_name(file: Path, root: Path) -> str:
    return file.name if file == root else file.relative_to(root).as_posix()


def read_text(path: Path, encoding: str = "auto") -> str:
    """The decoded text of a file with newlines normalised to '\\n'.

    Raises:
        DataError: naming the file and the byte offset of the first undecodable byte.
    """
    encoding = resolve_encoding(path, encoding)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc.strerror})") from None
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise undecodable(path, encoding, exc.start, exc.reason) from None
    except LookupError:
        raise DataError(f"{path}: unknown encoding '{encoding}'; use a Python codec name "
                        "such as utf-8 or cp1252") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def chunk_document(text: str, fmt: str, name: str, size: int, overlap: int) -> list[Chunk]:
    """Split a document into chunks of at most `size` characters, none of them empty.

    Markdown is first cut into sections at its headings (the title is the heading trail,
    e.g. 'Install > Linux'; text before the first heading is titled `name`); plain text is one
    section titled `name`. YAML front matter is skipped. Within a section, paragraphs are
    packed greedily; each chunk but a section's first starts about `overlap` characters before
    the previous one ended.
    """
    if fmt == "markdown":
        text = _blank_front_matter(text)
    lines = _LineIndex(text)
    sections = markdown_sections(text, name) if fmt == "markdown" else [(name, 0, len(text))]
    chunks: list[Chunk] = []
    for title, start, end in sections:
        for begin, finish in pack(text, _units(text, start, end, size, overlap), size, overlap):
            chunks.append(Chunk(text[begin:finish], title, lines.line_of(begin)))
    return chunks


def markdown_tokens(text: str) -> list[Any]:
    """A markdown text's CommonMark block tokens (markdown-it-py)."""
    from tuneline._optional import require

    markdown_it = require("markdown_it")  # installed with rich, a core dependency
    return markdown_it.MarkdownIt("commonmark").parse(text)


def markdown_sections(text: str, name: str, tokens: list[Any] | None = None
                      ) -> list[tuple[str, int, int]]:
    """(heading trail, start offset, end offset) of each section's body, in document order.

    Headings are found by a CommonMark parser, so '#' lines inside code blocks or quotes are
    not mistaken for headings; setext (underlined) headings count.
    """
    lines = _LineIndex(text)
    tokens = markdown_tokens(text) if tokens is None else tokens
    trail: list[tuple[int, str]] = []
    sections: list[tuple[str, int, int]] = []
    title, start = name, 0
    for position, token in enumerate(tokens):
        if token.type != "heading_open" or token.level != 0 or token.map is None:
            continue
        sections.append((title, start, lines.offset_of(token.map[0])))
        depth = int(token.tag[1])
        heading = inline_text(tokens[position + 1])
        trail = [(d, t) for d, t in trail if d < depth] + [(depth, heading)]
        title, start = " > ".join(t for _, t in trail if t) or name, lines.offset_of(token.map[1])
    sections.append((title, start, len(text)))
    return sections


def _blank_front_matter(text: str) -> str:
    """Front matter replaced by as many empty lines, so that line numbers stay right."""
    match = _FRONT_MATTER.match(text)
    if match is None:
        return text
    return "\n" * match.group().count("\n") + text[match.end():]


def inline_text(inline: Any, keep_breaks: bool = False) -> str:
    """The visible text of an inline token: markup such as `*` or `[]()` dropped, an image as
    its alt text; line breaks as spaces, or kept (`keep_breaks`)."""
    parts: list[str] = []
    for child in inline.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n" if keep_breaks else " ")
        elif child.children:
            parts.append(inline_text(child, keep_breaks))
    text = "".join(parts)
    return text.strip() if keep_breaks else " ".join(text.split())


def _units(text: str, start: int, end: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """Spans to pack: paragraphs of at most `size` characters; longer ones split into sentences,
    and sentences cut, to at most `size - overlap`, which leaves room for the overlap."""
    units: list[tuple[int, int]] = []
    for paragraph in _PARAGRAPH.finditer(text, start, end):
        begin, finish = _strip(text, paragraph.start(), paragraph.end())
        if finish - begin <= size:
            units.append((begin, finish))
            continue
        for sentence in _SENTENCE.finditer(text, begin, finish):
            units += _cut(text, *_strip(text, sentence.start(), sentence.end()), size - overlap)
    return [(begin, finish) for begin, finish in units if finish > begin]


def _cut(text: str, start: int, end: int, size: int) -> list[tuple[int, int]]:
    """Spans of at most `size` characters, cut at the last space of each window when it lies
    in the window's second half, else exactly at `size` (a long URL, unspaced scripts)."""
    spans = []
    while end - start > size:
        space = max(text.rfind(" ", start + size // 2, start + size + 1),
                    text.rfind("\n", start + size // 2, start + size + 1))
        stop = space if space > 0 else start + size
        spans.append(_strip(text, start, stop))
        start = _strip(text, stop, end)[0]
    return [*spans, (start, end)]


def pack(
    text: str, units: list[tuple[int, int]], size: int, overlap: int
) -> Iterator[tuple[int, int]]:
    """(start, end) offsets of chunks made of consecutive `units`, each at most `size` long.

    A chunk after the first starts `overlap` characters before the previous chunk's end,
    moved forward to the start of a word, and less when the next unit would not fit otherwise.
    """
    index, previous_end = 0, None
    while index < len(units):
        start = units[index][0]
        if previous_end is not None and overlap:
            earliest = max(units[0][0], previous_end - overlap, units[index][1] - size)
            word = _word_start(text, earliest, previous_end)
            start = word if word < previous_end else start
        end = units[index][1]
        index += 1
        while index < len(units) and units[index][1] - start <= size:
            end = units[index][1]
            index += 1
        yield start, end
        previous_end = end


def _word_start(text: str, position: int, limit: int) -> int:
    """The first word start at or after `position` (not inside a word), or `limit`."""
    if position > 0 and not text[position - 1].isspace():
        while position < limit and not text[position].isspace():
            position += 1
    while position < limit and text[position].isspace():
        position += 1
    return position


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


class _LineIndex:
    """Converts between character offsets and 1-based line numbers of one text."""

    def __init__(self, text: str):
        self.starts = [0] + [match.end() for match in re.finditer("\n", text)]
        self.length = len(text)

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset)

    def offset_of(self, line_index: int) -> int:
        """Offset where the 0-based line `line_index` starts (the end of text past the last)."""
        return self.starts[line_index] if line_index < len(self.starts) else self.length
