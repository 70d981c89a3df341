"""HTML pages as sections of blocks (BeautifulSoup with the standard-library parser: every
element keeps its source line), without the page's furniture: navigation, tables of contents,
sidebars, headers and footers, whether marked by element, ARIA role or class."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tuneline._optional import require
from tuneline.ingest.sections import Block, Section

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
# toc, Sphinx's sphinxsidebar, a theme's md-nav or dropdown-menu), on a container only: a link
# in a heading may be classed so (Sphinx's "toc-backref" holds the heading's text). Whole words,
# and never ids, which pages derive from their content ("menus-and-toolbars").
FURNITURE_CLASS_WORDS = {"nav", "navbar", "navheader", "navfooter", "navigation", "toc",
                         "sidebar", "sphinxsidebar", "breadcrumb", "breadcrumbs", "menu"}
_CONTAINERS = {"div", "nav", "section", "ul", "ol", "dl", "table", "p"}
# The permalink mark ending a heading (Sphinx's and MkDocs' "¶"), on any element.
PERMALINK_CLASS = "headerlink"
# Elements that start a new line inside a block read whole (a definition holding a list).
_LINE_STARTERS = {"p", "div", "li", "dt", "dd", "tr", "pre", "ul", "ol", "dl", "table",
                  "blockquote", "section", *HEADINGS}


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
            levels.append((depth, " ".join(_block_text(child, bs4).split())))
            state["levels"] = levels
            state["sections"].append(Section([t for _, t in levels], _line(child)))
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


def _is_furniture(tag: Any) -> bool:
    """A page's navigation, table of contents, sidebar, permalink mark or decoration, by role
    or class. A container classed so that holds the page's content (Read the Docs wraps it all
    in `wy-grid-for-nav`) is not furniture: it holds a main or article element, or more than
    one heading. `hidden` is no sign: tabbed answers hide every tab but one."""
    if tag.get("role") in SKIPPED_ROLES or tag.get("aria-hidden") == "true":
        return True
    classes = [name.lower() for name in tag.get("class", [])]
    if PERMALINK_CLASS in classes:
        return True
    if tag.name not in _CONTAINERS or not any(
            word in FURNITURE_CLASS_WORDS for name in classes for word in re.split(r"[-_]+", name)):
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
