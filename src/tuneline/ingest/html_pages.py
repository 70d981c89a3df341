"""HTML pages as sections of blocks (BeautifulSoup with the standard-library parser: every
element keeps its source line), without the page's furniture: navigation, tables of contents,
sidebars, headers and footers, whether marked by element, ARIA role or class."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tuneline._optional import require
from tuneline.ingest.sections import NUMBERING, Block, Section, asks

HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
# Elements read whole as one block (what they contain is not walked again).
LEAF_BLOCKS = {"p": "text", "pre": "code", "li": "text", "dt": "term", "dd": "definition",
               "tr": "text", "caption": "text", "figcaption": "text", "summary": "text"}
# Elements that are not the page's content.
SKIPPED = ("script", "style", "noscript", "template", "nav", "header", "footer", "aside",
           "form", "button", "svg", "head")
# ARIA roles of the same furniture on elements of any name.
SKIPPED_ROLES = {"navigation", "banner", "contentinfo", "complementary", "search"}
# A word of a class naming furniture in generated pages (DocBook's navheader, navfooter and
# toc, Sphinx's sphinxsidebar, a theme's md-nav or dropdown-menu), on a container
# only: a link in a heading may be classed so (Sphinx's "toc-backref" holds the heading's
# text). Whole words, and never ids, which pages derive from their content
# ("menus-and-toolbars").
FURNITURE_CLASS_WORDS = {"nav", "navbar", "navheader", "navfooter", "navigation", "toc",
                         "sidebar", "sphinxsidebar", "breadcrumb", "breadcrumbs", "menu"}
# Whole class names of furniture whose word alone says too little ("card-footer" holds
# content; Sphinx's "footer" its copyright lines).
FURNITURE_CLASS_NAMES = {"footer"}
# Link types (HTML's rel) that move through a document's pages.
NAVIGATION_RELS = {"next", "prev", "previous", "up", "contents", "index", "first", "last",
                   "start"}
_CONTAINERS = {"div", "nav", "section", "ul", "ol", "dl", "table", "p"}
# The permalink mark ending a heading (Sphinx's and MkDocs' "¶"), on any element.
PERMALINK_CLASS = "headerlink"
# Elements inside a line of text; holding none of _BLOCK_LEVEL, they run on with the text
# around them.
INLINE = {"a", "abbr", "b", "bdi", "bdo", "big", "cite", "code", "data", "del", "dfn", "em",
          "font", "i", "img", "ins", "kbd", "mark", "q", "s", "samp", "small", "span", "strike",
          "strong", "sub", "sup", "time", "tt", "u", "var", "wbr"}
# A bold paragraph standing for a heading sits below every h1-h6 trail level; the next one
# replaces it. Longer than this it is a bold sentence, not a title.
EMPHASISED_DEPTH = 7
MAX_EMPHASISED_TITLE = 300
MIN_CONTENTS_LINKS = 3
# Elements that start a new line inside a block read whole (a definition holding a list).
_LINE_STARTERS = {"p", "div", "li", "dt", "dd", "tr", "pre", "ul", "ol", "dl", "table",
                  "blockquote", "section", *HEADINGS}


_BLOCK_LEVEL = [*HEADINGS, *LEAF_BLOCKS, *_LINE_STARTERS, "article", "main", "aside", "nav",
                "figure", "details", "hr", "form", "header", "footer"]


def html_sections(text: str, path: Path) -> list[Section]:
    """Sections of an HTML page, split at its h1-h6 headings."""
    bs4 = require("bs4")
    soup = bs4.BeautifulSoup(text, "html.parser")
    for element in soup(list(SKIPPED)) + soup(_is_furniture):
        if not element.decomposed:
            element.decompose()
    for line_break in soup("br"):
        line_break.replace_with("\n")
    preamble = Section([], 1)
    state: dict[str, Any] = {"sections": [preamble], "levels": []}
    _visit(soup.body or soup, state, bs4)
    return [s for s in state["sections"] if s.blocks or s.trail]


def _visit(element: Any, state: dict[str, Any], bs4: Any) -> None:
    run: list[Any] = []  # text and inline elements in a row: one paragraph without a <p>
    for child in element.children:
        if isinstance(child, bs4.Comment | bs4.Doctype | bs4.Declaration):
            continue
        if isinstance(child, bs4.NavigableString) or _is_inline(child):
            run.append(child)
            continue
        _add_run(run, state, bs4)
        run = []
        if not isinstance(child, bs4.Tag):
            continue
        if child.name in HEADINGS:
            _open_section(state, int(child.name[1]), _block_text(child, bs4), child)
        elif (title := _emphasised_title(child, bs4, _answering(state))) is not None:
            _open_section(state, EMPHASISED_DEPTH, title, child)
        elif child.name in LEAF_BLOCKS:
            kind = LEAF_BLOCKS[child.name]
            text = (child.get_text().strip("\n") if kind == "code"
                    else _lines(_block_text(child, bs4)))
            if child.name == "li":
                text = f"- {text}"
            if text.strip("- "):
                _add(state, Block(text, _line(child), kind))
        else:
            _visit(child, state, bs4)
    _add_run(run, state, bs4)


def _is_inline(tag: Any) -> bool:
    return tag.name in INLINE and tag.find(_BLOCK_LEVEL) is None


def _add_run(run: list[Any], state: dict[str, Any], bs4: Any) -> None:
    """Text and inline elements met in a row outside any paragraph, as one block ("SQLite
    uses <a>dynamic typing</a>." straight inside a blockquote), its line breaks kept (an old
    page's "Q: ...<br>A: ..." lines)."""
    text = _lines("".join(str(node) if isinstance(node, bs4.NavigableString)
                          else _block_text(node, bs4) for node in run))
    if text:
        first = run[0]
        _add(state, Block(text, _line(first if isinstance(first, bs4.Tag) else first.parent)))


def _open_section(state: dict[str, Any], depth: int, title: str, tag: Any) -> None:
    levels = [(d, t) for d, t in state["levels"] if d < depth]
    levels.append((depth, " ".join(title.split())))
    state["levels"] = levels
    state["sections"].append(Section([t for _, t in levels], _line(tag)))


def _answering(state: dict[str, Any]) -> bool:
    """Whether the text read now answers an h1-h6 heading that asks a question."""
    headings = [title for depth, title in state["levels"] if depth < EMPHASISED_DEPTH]
    return bool(headings) and asks(headings[-1])


def _emphasised_title(tag: Any, bs4: Any, answering: bool) -> str | None:
    """The text of a paragraph that stands for a heading in a hand-written page: all of it
    bold (`b`, `strong`), short, and asking a question or numbered ("(3) SQLite lets me...!"
    in SQLite's FAQ, "<p><b>Q2. ...</b></p>" in exported Word pages); else None. A bold
    sentence inside an answer ("Warning: ...") neither asks nor is numbered, and under a
    heading that asks, a numbered one is a step of its answer ("1. Open settings")."""
    if tag.name != "p":
        return None
    text = " ".join(tag.get_text().split())
    if not text or len(text) > MAX_EMPHASISED_TITLE:
        return None
    words = [node for node in tag.find_all(string=True)
             if node.strip() and not isinstance(node, bs4.Comment)]
    if not all(_in_bold(node, tag) for node in words):
        return None
    return text if asks(text) or NUMBERING.match(text) and not answering else None


def _in_bold(node: Any, within: Any) -> bool:
    for parent in node.parents:
        if parent is within:
            return False
        if parent.name in ("b", "strong"):
            return True
    return False


def _is_page_contents(tag: Any) -> bool:
    """A list whose every word is a link to a place on the page: its table of contents
    (written by hand, without a class saying so). Its chunk would match every question."""
    if tag.name not in ("ul", "ol"):
        return False
    links = tag.find_all("a", href=True)
    if len(links) < MIN_CONTENTS_LINKS or not all(a["href"].startswith("#") for a in links):
        return False
    linked = "".join(a.get_text() for a in links)
    return "".join(tag.get_text().split()) == "".join(linked.split())


def _links_through_pages(tag: Any) -> bool:
    """A bar of links to the next, previous or parent page (texinfo's "Next: ..., Up: ...",
    marked by the links' rel): two or more, and besides them a word or two each ("Next:"),
    so that a container holding text as well is kept."""
    if tag.name not in _CONTAINERS or tag.find(HEADINGS) is not None:
        return False
    links = tag.find_all("a")
    moves = sum(bool(NAVIGATION_RELS.intersection(a.get("rel") or [])) for a in links)
    other_words = len(tag.get_text().split()) - sum(len(a.get_text().split()) for a in links)
    return moves >= 2 and other_words <= 2 * moves


def _is_furniture(tag: Any) -> bool:
    """A page's navigation, table of contents, sidebar, permalink mark or decoration, by role
    or class. A container classed so that holds the page's content (Read the Docs wraps it all
    in `wy-grid-for-nav`) is not furniture: it holds a main or article element, or more than
    one heading. `hidden` is no sign: tabbed answers hide every tab but one."""
    if (tag.get("role") in SKIPPED_ROLES or tag.get("aria-hidden") == "true"
            or _is_page_contents(tag) or _links_through_pages(tag)):
        return True
    classes = [name.lower() for name in tag.get("class", [])]
    if PERMALINK_CLASS in classes:
        return True
    if tag.name not in _CONTAINERS or not any(
            name in FURNITURE_CLASS_NAMES
            or any(word in FURNITURE_CLASS_WORDS for word in re.split(r"[-_]+", name))
            for name in classes):
        return False
    holds_content = tag.find(["main", "article"]) or tag.find(attrs={"role": "main"})
    return not holds_content and len(tag.find_all(HEADINGS, limit=2)) < 2


def _block_text(tag: Any, bs4: Any) -> str:
    """A block's text, a new line where an element inside it starts one (BeautifulSoup's
    get_text runs "8.1.1 dpkg" and "8.1.2 APT" of a nested list together)."""
    parts = []
    for node in tag.descendants:
        if isinstance(node, bs4.Tag) and node.name in _LINE_STARTERS:
            parts.append("\n")
        elif isinstance(node, bs4.NavigableString) and not isinstance(
                node, bs4.Comment | bs4.Doctype | bs4.Declaration):
            parts.append(str(node))
    return "".join(parts)


def _lines(text: str) -> str:
    """An element's text: spaces collapsed within each line, empty lines dropped."""
    return "\n".join(line for line in (" ".join(part.split()) for part in text.split("\n"))
                     if line)


def _add(state: dict[str, Any], block: Block) -> None:
    state["sections"][-1].blocks.append(block)


def _line(tag: Any) -> int:
    return int(getattr(tag, "sourceline", None) or 1)
