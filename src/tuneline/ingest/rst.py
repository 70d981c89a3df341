"""reStructuredText documents as sections of blocks, parsed with docutils.

Sphinx sources (the Python docs) use roles and directives docutils does not know
(:func:`len`, .. versionadded::); they are read as their text instead of failing: a role as
its title, a directive as its arguments and content. Nothing is ever included from other files
or fetched."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from tuneline._optional import require
from tuneline.errors import DataError
from tuneline.ingest.sections import Block, Section

_ROLE = re.compile(r":(?P<name>[A-Za-z][\w.+-]*(?::[\w.+-]+)?):`")
_DIRECTIVE = re.compile(r"^\s*\.\.\s+(?P<name>[\w:.+-]+)::", re.MULTILINE)
# Directives whose content is not text a reader sees (an index entry, a table of contents).
_DROPPED = frozenset({"index", "highlight", "toctree", "tabularcolumns", "sectionauthor",
                      "moduleauthor", "currentmodule", "module", "literalinclude",
                      "testsetup", "testcleanup", "contents", "raw", "include", "meta"})
_SETTINGS = {"report_level": 5, "halt_level": 5, "file_insertion_enabled": False,
             "raw_enabled": False, "syntax_highlight": "none", "doctitle_xform": False}


def rst_sections(text: str, path: Path) -> list[Section]:
    """The sections of a reStructuredText document; DataError when docutils cannot parse it."""
    core = require("docutils.core")
    nodes = require("docutils.nodes")
    _register_unknown(text)
    try:
        doctree = core.publish_doctree(
            text, source_path=str(path),
            settings_overrides={**_SETTINGS, "warning_stream": io.StringIO()})
    except Exception as exc:  # docutils raises its own SystemMessage and parser errors
        raise DataError(f"{path}: not readable as reStructuredText ({exc})") from None
    lines = text.split("\n")
    sections: list[Section] = []
    preamble = Section([], 1)
    sections.append(preamble)
    _walk(doctree, [], preamble, sections, nodes, lines)
    return [s for s in sections if s.blocks or s.trail]


def _walk(node: Any, trail: list[str], current: Section, sections: list[Section], nodes: Any,
          lines: list[str]) -> None:
    for child in node.children:
        if isinstance(child, nodes.section):
            title = child.next_node(nodes.title)
            heading = " ".join(title.astext().split()) if title is not None else ""
            section = Section([*trail, heading], _title_line(title, lines))
            sections.append(section)
            _walk(child, [*trail, heading], section, sections, nodes, lines)
        elif isinstance(child, nodes.title | nodes.system_message | nodes.comment
                        | nodes.substitution_definition | nodes.target | nodes.pending):
            continue
        else:
            current.blocks += _blocks(child, nodes)


def _blocks(node: Any, nodes: Any) -> list[Block]:
    """A body element as blocks: lists by item, definition lists by term and definition."""
    line = _line(node)
    if isinstance(node, nodes.definition_list):
        blocks = []
        for item in node.children:
            term = item.next_node(nodes.term)
            definition = item.next_node(nodes.definition)
            if term is not None:
                blocks.append(Block(_text(term), _line(term) or line, "term"))
            if definition is not None:
                blocks.append(Block(_text(definition), _line(definition) or line,
                                    "definition"))
        return [b for b in blocks if b.text]
    if isinstance(node, nodes.bullet_list | nodes.enumerated_list):
        return [Block(f"- {_text(item)}", _line(item) or line) for item in node.children
                if _text(item)]
    if isinstance(node, nodes.container | nodes.compound | nodes.block_quote):
        return [b for child in node.children for b in _blocks(child, nodes)]
    text = _text(node) if not isinstance(node, nodes.literal_block | nodes.doctest_block) \
        else node.astext().strip("\n")
    kind = "code" if isinstance(node, nodes.literal_block | nodes.doctest_block) else "text"
    return [Block(text, line, kind)] if text.strip() else []


def _text(node: Any) -> str:
    return re.sub(r"[ \t]*\n[ \t]*", "\n", node.astext()).strip()


def _line(node: Any) -> int:
    while node is not None:
        if getattr(node, "line", None):
            return int(node.line)
        node = node.parent
    return 1


def _title_line(title: Any, lines: list[str]) -> int:
    """docutils gives a title the line of its underline; the title's own line is above it."""
    reported = _line(title) if title is not None else 1
    raw = " ".join((title.rawsource if title is not None else "").split())
    for number in range(min(reported, len(lines)), max(0, reported - 3), -1):
        if raw and " ".join(lines[number - 1].split()) == raw:
            return number
    return reported


def _register_unknown(text: str) -> None:
    """Register every role and directive the text uses that docutils does not know."""
    directives = require("docutils.parsers.rst.directives")
    roles = require("docutils.parsers.rst.roles")
    for name in set(_ROLE.findall(text)) - set(roles._roles) - set(roles._role_registry):
        roles.register_local_role(name, _literal_role)
    known = set(directives._directives) | set(directives._directive_registry)
    for name in set(_DIRECTIVE.findall(text)) - known:
        directives.register_directive(name, _dropped_directive() if name in _DROPPED
                                      else _content_directive())


def _literal_role(name: str, rawtext: str, text: str, lineno: int, inliner: Any,
                  options: Any = None, content: Any = None) -> tuple[list[Any], list[Any]]:
    """A Sphinx role as the text a reader sees: `title <target>` → title; `~a.b.c` → c."""
    nodes = require("docutils.nodes")
    shown = re.sub(r"\s*<[^>]*>$", "", text).lstrip("!")
    if shown.startswith("~"):
        shown = shown[1:].rsplit(".", 1)[-1]
    if name.lower() in ("pep", "rfc"):
        shown = f"{name.upper()} {shown}"
    return [nodes.literal(rawtext, shown)], []


def _content_directive() -> Any:
    directives = require("docutils.parsers.rst")
    nodes = require("docutils.nodes")

    class Content(directives.Directive):
        """An unknown directive read as its arguments, then its content parsed as text."""

        optional_arguments = 20
        final_argument_whitespace = True
        has_content = True
        option_spec = None

        def run(self) -> list[Any]:
            found: list[Any] = []
            if self.arguments:
                found.append(nodes.paragraph(text=" ".join(self.arguments)))
            if self.content:
                box = nodes.container()
                self.state.nested_parse(self.content, self.content_offset, box)
                found.append(box)
            for node in found:
                node.line = self.lineno
            return found

    return Content


def _dropped_directive() -> Any:
    class Dropped(_content_directive()):  # type: ignore[misc]
        """An unknown directive whose content a reader does not see (an index entry)."""

        def run(self) -> list[Any]:
            return []

    return Dropped
