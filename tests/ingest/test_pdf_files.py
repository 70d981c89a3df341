"""PDF documents: words spaced as a reader sees them, sections at the outline's titles, FAQ
pairs from bookmarked questions, running headers and footers left out, located errors."""

from __future__ import annotations

import io

import pytest

from tuneline.errors import DataError
from tuneline.ingest.config import SourceConfig
from tuneline.ingest.sources import read_source

pytest.importorskip("pypdfium2")


def _read(path, **options):
    return list(read_source(SourceConfig.model_validate({"name": "d", "path": str(path),
                                                         **options})))


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _line(y: float, text: str) -> str:
    """One line of Helvetica at height y, its words placed by kerning alone (no space
    characters), as LaTeX writes them."""
    words = " -333 ".join(f"({_escaped(word)})" for word in text.split(" "))
    return f"BT /F1 10 Tf 72 {y} Td [{words}] TJ ET"


def _pdf(pages: list[list[str] | str]) -> bytes:
    """A minimal PDF: each page a list of lines set 14 points apart from y=700, a line given as
    (text, points higher) set off its place (a string page: one line; "": no text)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", "",
               "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for page in pages:
        lines = [page] if isinstance(page, str) else page
        placed = [(700 - 14 * i, line) if isinstance(line, str) else (700 - 14 * i + line[1],
                                                                      line[0])
                  for i, line in enumerate(lines)]
        stream = "\n".join(_line(y, text) for y, text in placed if text)
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


def _with_outline(pdf: bytes, entries: list[tuple[str, int, int]]) -> bytes:
    """`pdf` with bookmarks: (title, 0-based page, depth), depth 1 under the last depth 0."""
    pypdf = pytest.importorskip("pypdf")
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(pdf))
    parent = None
    for title, page, depth in entries:
        item = writer.add_outline_item(title=title, page_number=page,
                                       parent=parent if depth else None)
        if depth == 0:
            parent = item
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_words_placed_by_kerning_keep_their_spaces_and_chunks_their_page(tmp_path):
    path = tmp_path / "manual.pdf"
    path.write_bytes(_pdf(["Hold RESET for 15 seconds.", "", "Q: Is it waterproof? A: No."]))
    chunks = _read(path, chunk_size=50, chunk_overlap=0)
    assert [(r.line, r.data["text"]) for r in chunks] == [
        (1, "Hold RESET for 15 seconds."), (3, "Q: Is it waterproof? A: No.")]
    assert chunks[0].data["title"] == "manual"
    [pair] = _read(path, faq=True)
    assert (pair.data["question"], pair.data["answer"], pair.line) == (
        "Is it waterproof?", "No.", 3)


def test_outline_titles_split_sections_and_questions_become_pairs(tmp_path):
    pages = [
        ["Cover page of the guide"],
        ["Chapter 1", "Basics", "1.1 What is a widget?", "A widget turns cranks.",
         "It never stops.", "1.2 How do I clean", "a widget?", "Wipe it with a damp"],
        ["cloth, then dry it.", "Chapter 2", "LIMITS", "Widgets fear water."],
        ["Appendix A Reporting Bugs", "Mail the maintainers."],
    ]
    outline = [("Basics", 1, 0), ("What is a widget?", 1, 1),
               ("How do I clean a widget?", 1, 1), ("Limits", 2, 0),
               ("A title printed nowhere", 2, 1), ("Reporting Bugs", 3, 0)]
    path = tmp_path / "guide.pdf"
    path.write_bytes(_with_outline(_pdf(pages), outline))
    records = _read(path, faq=True)
    assert [r.key for r in records] == ["guide.pdf:2", "guide.pdf:2.2"]  # one page, two
    pairs = {r.data["question"]: (r.data["answer"], r.line, r.data["title"]) for r in records}
    assert pairs == {
        "What is a widget?": ("A widget turns cranks. It never stops.", 2,
                              "Basics > What is a widget?"),
        "How do I clean a widget?": ("Wipe it with a damp cloth, then dry it.", 2,
                                     "Basics > How do I clean a widget?"),
    }
    chunks = {r.data["title"]: r.data["text"] for r in _read(path, chunk_size=400)}
    assert chunks["guide"] == "Cover page of the guide"
    # "LIMITS" is the bookmark "Limits" set in capitals; a bookmark whose title is not in
    # the text starts no section: where is not known
    assert chunks["Limits"] == "Widgets fear water."
    assert chunks["Reporting Bugs"] == "Mail the maintainers."  # its label on its line (texinfo)
    assert "Basics" not in chunks  # its pages hold only its heading


def test_running_headers_and_page_numbers_are_left_out(tmp_path):
    body = ["The pump moves water uphill.", "Its seal lasts ten years.",
            "Replace the seal with the pump off."]
    pages = []
    for number, text in enumerate(body, start=1):
        # header at y=700, a blank line's gap, the text, then the page number far below
        # the last page's header a point higher, as an accented capital lifts it
        header = ("PUMP MANUAL", 1.0) if number == len(body) else "PUMP MANUAL"
        pages.append([header, "", "", text, *[""] * 30, str(number)])
    path = tmp_path / "pump.pdf"
    path.write_bytes(_pdf(pages))
    texts = [r.data["text"] for r in _read(path, chunk_size=50, chunk_overlap=0)]
    assert texts == body
    # on fewer than three pages nothing is taken for a running line
    path.write_bytes(_pdf(pages[:2]))
    assert _read(path, chunk_size=50, chunk_overlap=0)[0].data["text"].startswith("PUMP MANUAL")


def test_pdf_errors_name_the_file(tmp_path):
    path = tmp_path / "scan.pdf"
    path.write_bytes(_pdf(["", ""]))
    with pytest.raises(DataError, match=r"scan\.pdf: none of its 2 page\(s\) has a text layer"):
        _read(path)
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    with pytest.raises(DataError, match=r"broken\.pdf: not a readable PDF"):
        _read(tmp_path / "broken.pdf")
    pypdf = pytest.importorskip("pypdf")
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(_pdf(["Secret plans."])))
    writer.encrypt("hunter2", algorithm="RC4-128")
    with (tmp_path / "locked.pdf").open("wb") as handle:
        writer.write(handle)
    with pytest.raises(DataError, match=r"locked\.pdf: the PDF is encrypted"):
        _read(tmp_path / "locked.pdf")
