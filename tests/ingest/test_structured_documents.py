"""reStructuredText, HTML and PDF documents: sections with their heading trail and source line
(or page), chunks for the index, and FAQ pairs found without an LLM; bad files get a located
error."""

from __future__ import annotations

import pytest

from tuneline.errors import DataError
from tuneline.ingest.config import SourceConfig
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


def test_undecodable_html_names_the_offset(tmp_path):
    path = tmp_path / "bad.html"
    path.write_bytes(b"<p>caf\xc3\xa9</p><p>\xff\xfe broken</p>" * 3)
    with pytest.raises(DataError, match=r"bad\.html: bytes at offset \d+ are not valid"):
        _read(path, encoding="utf-8")


def _pdf(pages: list[str]) -> bytes:
    """A minimal PDF with one Helvetica text line per page (an empty string: no text)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", "",
               "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET" if text else ""
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents "
                       f"{len(objects)} 0 R /Resources << /Font << /F1 3 0 R >> >> >>")
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n"
            "%%EOF\n").encode()
    return out


def test_pdf_chunks_keep_their_page(tmp_path):
    pytest.importorskip("pypdf")
    path = tmp_path / "manual.pdf"
    path.write_bytes(_pdf(["Hold RESET for 15 seconds.", "", "Q: Is it waterproof? A: No."]))
    chunks = _read(path, chunk_size=50, chunk_overlap=0)
    assert [(r.line, r.data["text"]) for r in chunks] == [
        (1, "Hold RESET for 15 seconds."), (3, "Q: Is it waterproof? A: No.")]
    assert chunks[0].data["title"] == "manual"


def test_pdf_without_a_text_layer_is_refused(tmp_path):
    pytest.importorskip("pypdf")
    path = tmp_path / "scan.pdf"
    path.write_bytes(_pdf(["", ""]))
    with pytest.raises(DataError, match=r"scan\.pdf: none of its 2 page\(s\) has a text layer"):
        _read(path)
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    with pytest.raises(DataError, match=r"broken\.pdf: not a readable PDF"):
        _read(tmp_path / "broken.pdf")


def test_markdown_question_headings_are_faq_pairs(tmp_path):
    path = tmp_path / "faq.md"
    path.write_text("# FAQ\n\n## Does it float?\n\nNo, it\nsinks.\n\n## Colours\n\nRed.\n",
                    encoding="utf-8")
    [pair] = _read(path, faq=True)
    assert (pair.data["question"], pair.data["answer"], pair.line) == (
        "Does it float?", "No, it sinks.", 3)


def test_faq_only_for_documents():
    with pytest.raises(ValueError, match="faq reads documents"):
        SourceConfig.model_validate({"name": "t", "path": __file__, "format": "csv",
                                     "faq": True})
