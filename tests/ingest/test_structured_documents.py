"""reStructuredText, HTML and PDF documents: sections with their heading trail and source line
(or page), chunks for the index, and FAQ pairs found without an LLM; bad files get a located
error."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneline.errors import DataError
from tuneline.ingest.config import SourceConfig
from tuneline.ingest.documents import repeated_document_files
from tuneline.ingest.sections import as_asked, asks
from tuneline.ingest.sources import read_source

RST = """\
:tocdepth: 2

==========
Python FAQ
==========

.. index:: hidden-entry

General
=======

What is Python?
---------------

Python is an interpreted language.  See :ref:`the tutorial <tutorial-index>`
and :pep:`8`; call :func:`~os.path.join` or :meth:`!str.split`.

.. versionadded:: 3.8
   The walrus operator.

How do I print?
---------------

Use the print function::

   print("hello")

Glossary
--------

Is Python slow?
   Not for most programs.

GIL
   The global interpreter lock.
"""


def _read(path, **options):
    return list(read_source(SourceConfig.model_validate({"name": "d", "path": str(path),
                                                         **options})))


def test_rst_faq_pairs_keep_their_line_and_read_sphinx_roles(tmp_path):
    path = tmp_path / "general.rst.txt"
    path.write_text(RST, encoding="utf-8")
    pairs = _read(path, format="rst", faq=True)
    by_question = {r.data["question"]: r for r in pairs}
    assert list(by_question) == ["What is Python?", "How do I print?", "Is Python slow?"]
    first = by_question["What is Python?"]
    assert first.line == 12 and first.key == "general.rst.txt:12"
    assert first.data["title"] == "Python FAQ > General > What is Python?"
    assert first.data["answer"] == (
        "Python is an interpreted language.  See the tutorial and PEP 8; call join or "
        "str.split.\n\n3.8 The walrus operator.")
    assert 'print("hello")' in by_question["How do I print?"].data["answer"]
    assert by_question["Is Python slow?"].data == {
        "question": "Is Python slow?", "answer": "Not for most programs.",
        "title": "Python FAQ > General > Glossary", "file": "general.rst.txt",
        "shape": "definition"}
    assert by_question["Is Python slow?"].line == 31


def test_rst_chunks_for_the_index(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "general.rst.txt").write_text(RST, encoding="utf-8")
    (tmp_path / "docs" / "notes.txt").write_text("not rst", encoding="utf-8")
    chunks = _read(tmp_path / "docs", format="rst", chunk_size=200, chunk_overlap=0)
    assert {r.data["file"] for r in chunks} == {"general.rst.txt"}
    assert all("hidden-entry" not in r.data["text"] for r in chunks)
    what = next(r for r in chunks if r.data["text"].startswith("Python is an"))
    assert what.data["title"] == "Python FAQ > General > What is Python?" and what.line == 15


HTML = """<!doctype html>
<html><head><title>Help</title><script>var x = "What?";</script></head>
<body><nav>Home | About</nav>
<h1>Help centre</h1>
<h2>How do I reset my password?</h2>
<p>Open <b>Settings</b> and choose
Reset.</p>
<ul><li>It takes a minute.</li></ul>
<h2>Billing</h2>
<p>Q: When am I billed?<br>A: On the first of each month.</p>
<dl><dt>Can I pay by invoice?</dt><dd>Yes, for annual plans.</dd></dl>
</body></html>
"""


def test_html_sections_and_faq_pairs(tmp_path):
    path = tmp_path / "help.html"
    path.write_text(HTML, encoding="utf-8")
    pairs = {r.data["question"]: (r.data["answer"], r.line, r.data["shape"])
             for r in _read(path, faq=True)}
    assert pairs == {
        "How do I reset my password?": ("Open Settings and choose Reset.\n\n- It takes a "
                                        "minute.", 5, "heading"),
        "When am I billed?": ("On the first of each month.", 10, "qa_block"),
        "Can I pay by invoice?": ("Yes, for annual plans.", 11, "definition"),
    }
    chunks = _read(path)
    assert not any("var x" in r.data["text"] or "Home | About" in r.data["text"]
                   for r in chunks)
    assert chunks[0].data["title"] == "Help centre > How do I reset my password?"


DOCBOOK_HTML = """<html><body>
<div class="navheader"><table><tr><td><a href="prev.html">Prev</a></td>
<th>Chapter 8. Tools</th></tr></table></div>
<div class="chapter"><h1>Chapter 8. Tools</h1>
<div class="toc"><dl class="toc"><dt>8.1. What does Debian provide?</dt>
<dd><dl><dt>8.1.1. dpkg</dt><dt>8.1.2. APT</dt></dl></dd></dl></div>
<div role="navigation">Skip to content</div>
<h2>8.1. What does Debian provide?</h2>
<p>Two tools, <code>dpkg</code> and <code>apt</code>.</p>
<h2>8.2. What is meant by <code>hold</code>, and <code>purge</code>?</h2>
<p>Package states.</p>
<h2>8.3. Glossary</h2>
<dl><dt>Which one installs?</dt><dd><ul><li>dpkg installs a file.</li>
<li>apt fetches it first.</li></ul></dd></dl>
<span aria-hidden="true">decoration</span>
</div>
<div class="navfooter">Next: Chapter 9</div>
</body></html>
"""


def test_page_furniture_is_left_out_and_section_numbers_are_not_asked(tmp_path):
    path = tmp_path / "pkgtools.en.html"
    path.write_text(DOCBOOK_HTML, encoding="utf-8")
    pairs = {r.data["question"]: r.data["answer"] for r in _read(path, faq=True)}
    assert pairs == {
        "What does Debian provide?": "Two tools, dpkg and apt.",
        "What is meant by hold, and purge?": "Package states.",
        "Which one installs?": "dpkg installs a file. apt fetches it first.",
    }
    text = " ".join(r.data["text"] for r in _read(path))
    for furniture in ("Prev", "Next: Chapter 9", "8.1.1", "Skip to content", "decoration"):
        assert furniture not in text


READ_THE_DOCS_HTML = """<html><body>
<div class="wy-grid-for-nav">
<nav class="wy-nav-side"><div class="wy-menu"><p>Install</p><p>Reset</p></div></nav>
<section class="wy-nav-content-wrap"><div class="wy-nav-content"><div role="main">
<h1>Widget FAQ</h1>
<h2>How do I reset it?</h2><p>Hold RESET.</p>
<h2>How do I install it?</h2>
<div role="tabpanel"><pre>pip install widget</pre></div>
<div role="tabpanel" hidden=""><pre>conda install widget</pre></div>
</div></div></section></div>
</body></html>
"""


def test_a_wrapper_classed_like_navigation_keeps_the_page_it_holds(tmp_path):
    """Read the Docs wraps the whole page in classes with "nav" in them; a hidden tab panel
    is an answer too."""
    path = tmp_path / "faq.html"
    path.write_text(READ_THE_DOCS_HTML, encoding="utf-8")
    pairs = {r.data["question"]: r.data["answer"] for r in _read(path, faq=True)}
    assert pairs == {"How do I reset it?": "Hold RESET.",
                     "How do I install it?": "pip install widget\n\nconda install widget"}
    assert "Install Reset" not in " ".join(r.data["text"] for r in _read(path))


@pytest.mark.parametrize(("heading", "asked"), [
    ("1.1.\u00a0What is Debian?", "What is Debian?"), ("3) Why?", "Why?"), ("(3) Why?", "Why?"),
    ("Q4: How now?", "How now?"), ("1.3 OK, now?", "OK, now?"),
    ("1.1 Что такое Debian?", "Что такое Debian?"), ("12. why not?", "why not?"),
    ("3.14 is pi?", "3.14 is pi?"), ("10 things?", "10 things?"), ("G12. Firewalls?", "Firewalls?"),
    ("X11 forwarding?", "X11 forwarding?"),
    ("X11: How do I forward it?", "X11: How do I forward it?")])
def test_a_section_number_is_not_part_of_the_question(heading, asked):
    assert as_asked(heading) == asked


def test_a_file_repeated_by_a_symlink_or_a_copy_is_read_once(tmp_path):
    docs = tmp_path / "docs"
    (docs / "old").mkdir(parents=True)
    (docs / "faq.en.html").write_text(HTML, encoding="utf-8")
    (docs / "faq.html").symlink_to("faq.en.html")  # sorted first, yet the real file is read
    (docs / "old" / "faq.html").write_text(HTML, encoding="utf-8")
    (docs / "other.html").write_text("<h2>Is it other?</h2><p>Yes.</p>", encoding="utf-8")
    records = _read(docs, format="html", faq=True)
    assert sorted({r.data["file"] for r in records}) == ["faq.en.html", "other.html"]
    assert len(records) == 4
    assert repeated_document_files(docs, "html") == [docs / "faq.html", docs / "old/faq.html"]


def test_undecodable_html_names_the_offset(tmp_path):
    path = tmp_path / "bad.html"
    path.write_bytes(b"<p>caf\xc3\xa9</p><p>\xff\xfe broken</p>" * 3)
    with pytest.raises(DataError, match=r"bad\.html: bytes at offset \d+ are not valid"):
        _read(path, encoding="utf-8")


def test_markdown_question_headings_are_faq_pairs(tmp_path):
    path = tmp_path / "faq.md"
    path.write_text("# FAQ\n\n## Does it float?\n\nNo, it\nsinks.\n\n## Colours\n\nRed.\n",
                    encoding="utf-8")
    [pair] = _read(path, faq=True)
    assert (pair.data["question"], pair.data["answer"], pair.line) == (
        "Does it float?", "No, it sinks.", 3)


def test_a_question_mark_before_more_words_still_asks(tmp_path):
    # Headings of real FAQs: black's (Markdown), the Python FAQ's (rst), the Debian FAQ's.
    path = tmp_path / "faq.md"
    path.write_text("# FAQ\n\n## Why spaces? I prefer tabs\n\nPEP 8 says spaces.\n\n"
                    "## How do I delete a file? (And other file questions...)\n\n"
                    "Use os.remove.\n\n## Can I create my own functions in C++?\n\nYes.\n",
                    encoding="utf-8")
    assert [r.data["question"] for r in _read(path, faq=True)] == [
        "Why spaces? I prefer tabs", "How do I delete a file? (And other file questions...)",
        "Can I create my own functions in C++?"]


@pytest.mark.parametrize(("text", "asking"), [
    ("What are all those names like etch, lenny, etc.?", True),
    ("How can I keep a log? I'd like to know when upgrades occurred!", True),
    ("Is `x?` valid?", True), ("Pourquoi ?", True),
    ("什么是 Python？", True), ("What is *this*?", True), ("Really!?", True),
    ("« Pourquoi ? »", True), ("（Python）？", True), ("The '?' operator", False),
    ('"?" wildcard', False),
    # The bash manual's index terms and operators ask nothing.
    ("?", False), ("\\?", False), ("expr ? expr : expr", False),
    ("possible-completions (M-?)", False), ("!?string[?]", False),
    ("See https://example.org/?q=1", False), ("Colours", False)])
def test_a_question_mark_asks_only_where_it_ends_a_word(text, asking):
    assert asks(text) is asking


def test_faq_only_for_documents():
    with pytest.raises(ValueError, match="faq reads documents"):
        SourceConfig.model_validate({"name": "t", "path": __file__, "format": "csv",
                                     "faq": True})


DEBIAN_FAQ = Path(__file__).parent / "data" / "debian-faq"


def test_a_real_docbook_chapter_reads_as_its_six_questions(tmp_path):
    pytest.importorskip("bs4")
    pairs = _read(DEBIAN_FAQ, format="html", faq=True)
    assert [r.data["question"] for r in pairs] == [
        "What programs does Debian provide for managing its packages?",
        "Debian claims to be able to update a running program; how is this accomplished?",
        "How can I tell what packages are already installed on a Debian system?",
        "How do I display the files of an installed package?",
        "How can I find out what package produced a particular file?",
        "Why is `foo-data' not removed when I uninstall `foo'? How do I make sure old unused "
        "library-packages get purged?"]
    assert {r.data["file"] for r in pairs} == {"pkgtools.en.html"}  # not its symlink too
    assert pairs[3].data["answer"].startswith(
        "To list all the files provided by the installed package foo execute the command")
    chunks = " ".join(r.data["text"] for r in _read(DEBIAN_FAQ, format="html"))
    assert "Table of Contents" not in chunks and "Prev" not in chunks


def test_a_sphinx_page_reads_as_the_same_questions_as_its_rst_source():
    pytest.importorskip("bs4")
    pytest.importorskip("docutils")
    html = _read(Path(__file__).parent / "data" / "python-faq-html" / "installed.html",
                 faq=True)
    rst = _read(Path(__file__).parents[2] / "examples" / "python-faq" / "data" / "faq"
                / "installed.rst.txt", format="rst", faq=True)
    assert [r.data["question"] for r in html] == [r.data["question"] for r in rst] == [
        "What is Python?", "Why is Python installed on my machine?", "Can I delete Python?"]
    assert html[2].data["answer"].startswith("That depends on where Python came from.\n\n")
    assert html[2].data["answer"].endswith("would then be required to fix things again.")
    chunks = " ".join(r.data["text"] for r in _read(html[0].file))
    for furniture in ("¶", "Table of Contents", "Previous topic", "Report a Bug", "Navigation"):
        assert furniture not in chunks


def test_a_hand_written_faq_asks_in_bold_numbered_paragraphs():
    """The SQLite FAQ: each question a bold paragraph "(n) ...", its answer below; a numbered
    statement ("(3) SQLite lets me insert a string...!") ends the answer before it without
    being asked; the list of links to the questions is the page's table of contents."""
    pytest.importorskip("bs4")
    page = Path(__file__).parent / "data" / "sqlite-faq" / "faq.html"
    pairs = _read(page, faq=True)
    asked = [r.data["question"] for r in pairs]
    assert asked[:3] == ["How do I create an AUTOINCREMENT field?",
                         "What datatypes does SQLite support?",
                         "Why doesn't SQLite allow me to use '0' and '0.0' as the primary key "
                         "on two different rows of the same table?"]
    assert len(asked) >= 18 and "Is SQLite threadsafe?" in asked
    assert all(not question.startswith("(") for question in asked)
    assert pairs[0].data["answer"].startswith("Short answer: A column declared INTEGER PRIMARY")
    assert pairs[1].data["answer"] == ("SQLite uses dynamic typing. Content can be stored as "
                                       "INTEGER, REAL, TEXT, BLOB, or as NULL.")
    chunks = [r.data["text"] for r in _read(page)]
    assert not any("What datatypes does SQLite support?" in c
                   and "Is SQLite threadsafe?" in c for c in chunks)  # no table of contents


def test_bold_paragraphs_ask_only_when_they_ask_or_are_numbered(tmp_path):
    pytest.importorskip("bs4")
    path = tmp_path / "faq.html"
    path.write_text(
        "<h1>Help</h1><ul><li><a href='#a'>Can I undo?</a></li><li><a href='#b'>Q2</a></li>"
        "<li><a href='#c'>Q3</a></li></ul>"
        "<p><strong>Can I <em>undo</em> a sync?</strong></p><p>Yes, within a day.</p>"
        "<p><b>Warning: back up first.</b></p><p>Restores overwrite.</p>"
        "<p><b>Is it free?</b> Mostly.</p><p>Ask sales.</p>", encoding="utf-8")
    [pair] = _read(path, faq=True)
    assert (pair.data["question"], pair.line) == ("Can I undo a sync?", 1)
    assert pair.data["answer"] == ("Yes, within a day.\n\nWarning: back up first.\n\nRestores "
                                   "overwrite.\n\nIs it free? Mostly.\n\nAsk sales.")
    assert not any("Q3" in r.data["text"] for r in _read(path))  # the links list is contents


def test_markdown_answers_read_as_a_reader_sees_them_and_code_keeps_its_lines(tmp_path):
    """Links, emphasis and inline code as their text (as HTML's and rst's are), code blocks
    line by line (they were reflowed: "```sh ./configure make install ```")."""
    path = tmp_path / "faq.md"
    path.write_text("## How do I install it?\n\nRun _Black_'s [installer](/docs/install.md)"
                    " with `--user`:\n\n```sh\n./configure\n\nmake install\n```\n\n"
                    "- or, on a list item:\n\n  ```\n  pip install it\n  ```\n\n"
                    "3. a third\n\n<details><!-- hidden -->\n<summary>More</summary>\nDone, it"
                    "\nworks.\n</details>\n", encoding="utf-8")
    [pair] = _read(path, faq=True)
    assert pair.data["answer"] == ("Run Black's installer with --user:\n\n./configure\n\n"
                                   "make install\n\n- or, on a list item:\n\npip install it"
                                   "\n\n3. a third\n\nMore Done, it works.")


def test_a_plain_text_faq_of_numbered_paragraphs(tmp_path):
    """procmail's FAQ layout: numbered questions, tab-indented answers. A numbered statement
    ends the answer before it and is not asked; a list inside an answer restarts at 1 and
    does not end it, even where its numbers reach the next question's; a question numbered
    past a gap is still one."""
    path = tmp_path / "FAQ.txt"
    path.write_text(
        "---- Frequently Asked Questions ----\n\n"
        "1. How do I set up a mailing list?\n\n\tLook in the SmartList directory,\n"
        "\tstart with INTRO.\n\n"
        "2. The compiler warns about pointers.\n\n\tIgnore these warnings.\n\n"
        "3. I installed it, but how am I supposed\n   to use it?  Typing it does nothing.\n\n"
        "\tDo this:\n\n\t1. write a .forward\n\n\t2. write a .procmailrc\n\n"
        "\t3. log in\n\n\t4. mail yourself\n\n"
        "6. Is it Y2K safe?\n\n\tYes.\n", encoding="utf-8")
    pairs = _read(path, faq=True)
    assert [(p.data["question"], p.data["answer"], p.line) for p in pairs] == [
        ("How do I set up a mailing list?", "Look in the SmartList directory, start with INTRO.",
         3),
        ("I installed it, but how am I supposed to use it? Typing it does nothing.",
         "Do this:\n\n1. write a .forward\n\n2. write a .procmailrc\n\n3. log in\n\n"
         "4. mail yourself", 12),
        ("Is it Y2K safe?", "Yes.", 25)]


def test_a_bar_of_next_and_up_links_is_navigation_but_text_around_such_links_is_not(tmp_path):
    """texinfo's HTML heads each node with "Next: ..., Up: ... [Contents]", marked only by the
    links' rel; a paragraph that mentions the next page in a sentence stays."""
    pytest.importorskip("bs4")
    path = tmp_path / "manual.html"
    path.write_text(
        "<div class='section'><div class='header'><p>Next: <a href='#b' rel='next'>Builtins</a>"
        ", Up: <a href='#top' rel='up'>Top</a> [<a href='#c' rel='contents'>Contents</a>]</p>"
        "</div><h3>Quoting</h3><p>Quote with care.</p><p>Read on in <a href='#b' rel='next'>"
        "Builtins</a> once you know how the shell splits words, or go <a href='#top' rel='up'>"
        "back</a>.</p></div>", encoding="utf-8")
    [chunk] = _read(path, chunk_size=400)
    assert chunk.data["text"] == ("Quote with care.\n\nRead on in Builtins once you know how the "
                                  "shell splits words, or go back.")


def test_a_question_answered_in_subsections_takes_them_as_its_answer(tmp_path):
    """fetchmail's FAQ answers "How can I use fetchmail with qmail?" under two subheadings;
    a question heading whose subheadings ask questions of their own is a category."""
    pytest.importorskip("bs4")
    path = tmp_path / "faq.html"
    path.write_text(
        "<h2>How do I use it with qmail?</h2><h3>As the local server</h3><p>Don't.</p>"
        "<h3>As the POP3 server</h3><p>Sizes are wrong.</p>"
        "<h2>What about other mailers?</h2><h3>Does exim work?</h3><p>Yes.</p>"
        "<h2>Why not?</h2><p>Because.</p>", encoding="utf-8")
    pairs = {r.data["question"]: (r.data["answer"], r.line) for r in _read(path, faq=True)}
    assert pairs == {
        "How do I use it with qmail?": ("As the local server\n\nDon't.\n\nAs the POP3 server"
                                        "\n\nSizes are wrong.", 1),
        "Does exim work?": ("Yes.", 1), "Why not?": ("Because.", 1)}


def test_a_term_that_continues_its_heading_is_asked_whole(tmp_path):
    """Sphinx's own FAQ: a "How do I..." section of terms "... get section numbers?"."""
    pytest.importorskip("docutils")
    path = tmp_path / "faq.rst"
    path.write_text("How do I...\n-----------\n\n... get section numbers?\n   They are "
                    "automatic.\n\n\u2026 add a logo?\n   Set html_logo.\n\nOther\n-----\n\n"
                    "... or not?\n   Maybe.\n", encoding="utf-8")
    pairs = [(r.data["question"], r.data["answer"]) for r in _read(path, faq=True)]
    assert pairs == [("How do I get section numbers?", "They are automatic."),
                     ("How do I add a logo?", "Set html_logo."), ("... or not?", "Maybe.")]


def test_review_cases_old_and_hand_made_pages(tmp_path):
    """Pages a review made up from the shapes above: Q:/A: lines split by <br> outside any
    paragraph; a bold numbered step inside an answer; a wrapper and a card whose classes
    hold the word "footer"; a markdown heading inside a quote; an empty list item."""
    pytest.importorskip("bs4")
    pages = {
        "old.html": "<div>Q: How do I start?<br>A: Run start.<br>Q: How do I stop?<br>"
                    "A: Run stop.</div>",
        "steps.html": "<h2>How do I configure it?</h2><p>Edit it in two steps:</p>"
                      "<p><strong>1. Open settings</strong></p><p>Click the gear.</p>"
                      "<p><b>2. Save</b></p>",
        "wrapped.html": "<div class='page has-footer'><h1>FAQ</h1><p><b>How do I begin?</b>"
                        "</p><p>Run begin.</p><div class='card-footer'><p>Or ask us.</p>"
                        "</div></div><div class='footer'>&copy; 2026 Us</div>",
    }
    for name, page in pages.items():
        (tmp_path / name).write_text(page, encoding="utf-8")
    pairs = {r.data["question"]: r.data["answer"]
             for r in _read(tmp_path, format="html", faq=True)}
    assert pairs == {"How do I start?": "Run start.", "How do I stop?": "Run stop.",
                     "How do I configure it?": "Edit it in two steps:\n\n1. Open settings\n\n"
                                               "Click the gear.\n\n2. Save",
                     "How do I begin?": "Run begin.\n\nOr ask us."}
    markdown = tmp_path / "faq.md"
    markdown.write_text("## Is it free?\n\n> ### Note\n> Mostly.\n\n- \n\nAsk sales.\n",
                        encoding="utf-8")
    [pair] = _read(markdown, faq=True)
    assert pair.data["answer"] == "Note\n\nMostly.\n\nAsk sales."
