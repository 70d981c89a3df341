"""HTML pages (BeautifulSoup, the standard-library parser: every element keeps its source line)
and PDF files (pypdf's text layer, page by page) as sections of blocks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneline._optional import require
from tuneline.errors import DataError
from tuneline.ingest.sections import Block, Section

HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
# Elements read whole as one block (what they contain is not walked again).
LEAF_BLOCKS = {"p": "text", "pre": "code", "li": "text", "dt": "term", "dd": "definition",
               "tr": "text", "caption": "text", "figcaption": "text", "summary": "text"}
# Elements that are not the page's content.
SKIPPED = ("script", "style", "noscript", "template", "nav", "header", "footer", "aside",
           "form", "button", "svg", "head")


def html_sections(text: str, path: Path) -> list[Section]:
    """Sections of an HTML page, split at its h1-h6 headings."""
    bs4 = require("bs4")
    soup = bs4.BeautifulSoup(text, "html.parser")
    for element in soup(list(SKIPPED)):
        element.decompose()
    for line_break in soup("br"):
        line_break.replace_with("\n")
    preamble = Section([], 1)
    state: dict[str, Any] = {"sections": [preamble], "levels": []}
    _visit(soup.body or soup, state, bs4)
    return [s for s in state["sections"] if s.blocks or s.trail]


def _visit(element: Any, state: dict[str, Any], bs4: Any) -> None:
    for child in element.children:
        if isinstance(child, bs4.NavigableString):
            if isinstance(child, bs4.Comment | bs4.Doctype | bs4.Declaration):
                continue
            text = " ".join(str(child).split())
            if text:
                _add(state, Block(text, _line(child.parent)))
            continue
        if not isinstance(child, bs4.Tag):
            continue
        if child.name in HEADINGS:
            depth = int(child.name[1])
            levels = [(d, t) for d, t in state["levels"] if d < depth]
            levels.append((depth, child.get_text(" ", strip=True)))
            state["levels"] = levels
            state["sections"].append(Section([t for _, t in levels], _line(child)))
        elif child.name in LEAF_BLOCKS:
            kind = LEAF_BLOCKS[child.name]
            text = (child.get_text().strip("\n") if kind == "code"
                    else _lines(child.get_text()))
            if child.name == "li":
                text = f"- {text}"
            if text.strip("- "):
                _add(state, Block(text, _line(child), kind))
        else:
            _visit(child, state, bs4)


def _lines(text: str) -> str:
    """An element's text: spaces collapsed within each line, empty lines dropped."""
    return "\n".join(line for line in (" ".join(part.split()) for part in text.split("\n"))
                     if line)


def _add(state: dict[str, Any], block: Block) -> None:
    state["sections"][-1].blocks.append(block)


def _line(tag: Any) -> int:
    return int(getattr(tag, "sourceline", None) or 1)


def pdf_sections(path: Path) -> list[Section]:
    """One section per PDF (titled by the file), a block per page with text (`line` is the
    page number). DataError for an encrypted PDF or one without a text layer."""
    pypdf = require("pypdf")
    try:
        reader = pypdf.PdfReader(str(path))
        if reader.is_encrypted and reader.decrypt("") == 0:
            raise DataError(f"{path}: the PDF is encrypted; save a copy without a password")
        pages = [(number, page.extract_text() or "")
                 for number, page in enumerate(reader.pages, start=1)]
    except DataError:
        raise
    except Exception as exc:  # pypdf raises PdfReadError and friends for a broken file
        raise DataError(f"{path}: not a readable PDF ({type(exc).__name__}: {exc})") from None
    blocks = [Block(text.strip(), number, "page") for number, text in pages if text.strip()]
    if not blocks:
        raise DataError(f"{path}: none of its {len(pages)} page(s) has a text layer (a scanned "
                        "PDF?); run OCR on it first (e.g. ocrmypdf) or leave it out")
    return [Section([], 1, blocks)]
