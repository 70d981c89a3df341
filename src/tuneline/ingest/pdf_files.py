"""PDF files as sections of blocks, read with PDFium (pypdfium2): its text keeps the spaces
that LaTeX-made PDFs place by kerning alone (pypdf read the Debian FAQ's as
"tofreedom,notprice"). The document outline (bookmarks), where there is one, splits the
text into sections at each title; running headers and footers (a page number, the chapter
name) are left out."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneline._optional import require
from tuneline.errors import DataError
from tuneline.ingest.sections import Block, Section

# PDFium's error code for a document that needs a password (FPDF_ERR_PASSWORD).
_PASSWORD_ERROR = 4
# A line that labels the heading after it ("Chapter 3", "Appendix B"), part of that heading.
_HEADING_LABEL = re.compile(
    r"(?i:chapter|part|appendix|section|book)\s+(?-i:\d+|[A-Z]|[IVXLC]+)\.?")
# Quotes and hyphens are left out when matching a title: LaTeX sets `stable' as a combining
# accent and a curly quote, an outline as ASCII; PDFium drops a hyphen that ends a line.
_PLAIN_PUNCTUATION = str.maketrans(dict.fromkeys(
    "'`\"\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u00b4-\u2010\u2011\u2013\u2014\u00ad", None))
# How near two lines' heights must be to count as one running band, in points.
_BAND_TOLERANCE = 2.0
# PDFium marks a word hyphenated across lines with U+FFFE and joins its two halves.
_SOFT_HYPHEN = "\ufffe"


@dataclass
class _Page:
    number: int
    lines: list[str]


@dataclass(frozen=True)
class _Bookmark:
    depth: int
    title: str
    page: int  # 1-based


def pdf_sections(path: Path) -> list[Section]:
    """The PDF's sections: one per outline entry (its trail of parent entries), or one titled
    by the file where it has no outline; a block per page (or part of a page) with text, whose
    `line` is the page number. DataError for an encrypted PDF or one without a text layer."""
    pdfium = require("pypdfium2")
    try:
        document = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == _PASSWORD_ERROR:
            raise DataError(f"{path}: the PDF is encrypted; save a copy without a password"
                            ) from None
        raise DataError(f"{path}: not a readable PDF ({exc})") from None
    try:
        pages = _body_pages(document)
        bookmarks = _bookmarks(document)
    finally:
        document.close()
    if not any(line.strip() for page in pages for line in page.lines):
        raise DataError(f"{path}: none of its {len(pages)} page(s) has a text layer (a scanned "
                        "PDF?); run OCR on it first (e.g. ocrmypdf) or leave it out")
    return _split_at_bookmarks(pages, bookmarks)


def _body_pages(document: Any) -> list[_Page]:
    """Each page's text lines, without the running header and footer."""
    read = [_read_page(document[index]) for index in range(len(document))]
    header = _running_band([first for _, first, _ in read])
    footer = _running_band([last for _, _, last in read])
    pages = []
    for number, (lines, first, last) in enumerate(read, start=1):
        if _in_band(first, header):
            lines = lines[1:]
        if _in_band(last, footer) and lines:
            lines = lines[:-1]
        pages.append(_Page(number, lines))
    return pages


def _read_page(page: Any) -> tuple[list[str], float | None, float | None]:
    """(lines, y of the first line's top, y of the last line's bottom), the two ys only where
    that line stands apart from the rest of the page (a blank line's height or more), as a
    running header or footer does."""
    textpage = page.get_textpage()
    try:
        text = textpage.get_text_range()
        lines = text.replace(_SOFT_HYPHEN, "").split("\r\n")
        raw = text.split("\r\n")
        # char indices count UTF-16 units (a character beyond U+FFFF is two)
        if (len(raw) < 2 or not all((raw[0], raw[1], raw[-2], raw[-1]))
                or textpage.count_chars() != _utf16_length(text)):
            return lines, None, None
        second_start = _utf16_length(raw[0]) + 2
        last_start = _utf16_length(text) - _utf16_length(raw[-1])
        first_box, second_box = textpage.get_charbox(0), textpage.get_charbox(second_start)
        last_box = textpage.get_charbox(last_start)
        before_last_box = textpage.get_charbox(last_start - 2 - _utf16_length(raw[-2]))
    finally:
        textpage.close()
    # a charbox is (left, bottom, right, top)
    first = first_box[3] if _apart(first_box, second_box) else None
    last = last_box[1] if _apart(before_last_box, last_box) else None
    return lines, first, last


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _apart(upper: tuple[float, ...], lower: tuple[float, ...]) -> bool:
    height = max(upper[3] - upper[1], lower[3] - lower[1], 1.0)
    return upper[1] - lower[3] >= 2 * height


def _running_band(ys: list[float | None]) -> float | None:
    """The height at which a set-apart first (or last) line stands, within _BAND_TOLERANCE, on
    at least half of the pages and three or more: a running header (footer) band; None if
    there is none. (An accented capital lifts one page's header by a point.)"""
    known = [y for y in ys if y is not None]
    if not known:
        return None
    count, band = max((sum(_in_band(other, y) for other in known), y) for y in known)
    return band if count >= max(3, len(ys) / 2) else None


def _in_band(y: float | None, band: float | None) -> bool:
    return y is not None and band is not None and abs(y - band) <= _BAND_TOLERANCE


def _bookmarks(document: Any) -> list[_Bookmark]:
    """The outline's entries that point at a page of this document, in outline order."""
    entries = []
    for item in document.get_toc():
        destination = item.get_dest()
        index = destination.get_index() if destination is not None else None
        title = " ".join((item.get_title() or "").split())
        if index is not None and 0 <= index < len(document) and title:
            entries.append(_Bookmark(item.level, title, index + 1))
    return entries


def _split_at_bookmarks(pages: list[_Page], bookmarks: list[_Bookmark]) -> list[Section]:
    """Sections that start where each bookmark's title stands on its page; the title's lines
    are the heading, not text. A bookmark whose title is not in the text starts no section:
    where it would start is not known, and a question paired with another's answer is worse
    than one left out."""
    starts = sorted(((found, bookmark) for found, bookmark in
                     zip(_title_positions(pages, bookmarks), bookmarks, strict=True)
                     if found is not None),
                    key=lambda start: (start[1].page, start[0][0]))
    sections, trail = [Section([], 1)], []
    for page in pages:
        cursor = 0
        while starts and starts[0][1].page == page.number:
            (line, span), bookmark = starts.pop(0)
            _add_text(sections[-1], page, cursor, line)
            trail = [(d, t) for d, t in trail if d < bookmark.depth] + [
                (bookmark.depth, bookmark.title)]
            sections.append(Section([t for _, t in trail], page.number))
            cursor = line + span
        _add_text(sections[-1], page, cursor, len(page.lines))
    return [s for s in sections if s.blocks or s.trail]


def _add_text(section: Section, page: _Page, start: int, end: int) -> None:
    text = "\n".join(page.lines[start:end]).strip()
    if text:
        section.blocks.append(Block(text, page.number, "page"))


def _title_positions(pages: list[_Page], bookmarks: list[_Bookmark]
                     ) -> list[tuple[int, int] | None]:
    """For each bookmark, (the line its title starts on, how many lines it takes), or None
    where the title is not in its page's text. Titles are looked for in outline order, each
    after the one before it on the same page."""
    positions: list[tuple[int, int] | None] = []
    after: dict[int, int] = {}
    for bookmark in bookmarks:
        page = pages[bookmark.page - 1]
        found = _find_title(page.lines, bookmark.title, after.get(page.number, 0))
        positions.append(found)
        if found is not None:
            after[page.number] = found[0] + found[1]
    return positions


def _find_title(lines: list[str], title: str, start: int) -> tuple[int, int] | None:
    """(first line, number of lines) of `title` as a heading in `lines` from `start`: the
    title's words, after an optional section number (and label: texinfo's "Appendix A Reporting
    Bugs"), at the start of a line and running over at most three lines, with a "Chapter 2"
    line just before it; None where it is not there.
    Case, quotes, hyphens and accents are not compared and ligatures are spelled out (an
    outline's "doesn't" is the text's "doesn’t", its "Debian-specific" a line-end
    "Debianspecific"; a heading may be set in capitals)."""
    words = _plain(title).split()
    pattern = re.compile(rf"(?:{_HEADING_LABEL.pattern}:?\s+)?(?-i:[\dA-Z]+(?:\.\d+)*\.?\s+)?"
                         + r"\s+".join(map(re.escape, words)) + r"\s*$", re.IGNORECASE)
    for first in range(start, len(lines)):
        for span in (1, 2, 3):
            if first + span > len(lines):
                break
            if pattern.match(_plain(" ".join(lines[first:first + span])).strip()):
                labelled = first > start and _HEADING_LABEL.fullmatch(lines[first - 1].strip())
                return (first - 1, span + 1) if labelled else (first, span)
    return None


def _plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).translate(
        _PLAIN_PUNCTUATION)
