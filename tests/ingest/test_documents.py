import json

import pytest

from tuneline.config import load_config
from tuneline.errors import ConfigError, DataError
from tuneline.ingest import stage as ingest
from tuneline.ingest.config import SourceConfig
from tuneline.ingest.documents import chunk_document
from tuneline.ingest.sources import read_source, source_fingerprint

GUIDE = """\
---
title: front matter is not text
---
Tuneline turns tables into training data.

# Install

Use pip.

```bash
# a comment, not a heading
pip install tuneline
```

## On Linux

Nothing special.

Setext *heading*
----------------

Under the setext heading.

# Empty section
# Usage

Run it.
"""


def _source(**kwargs):
    return SourceConfig.model_validate({"name": "docs", **kwargs})


def test_markdown_chunks_keep_heading_trail_line_and_key(tmp_path):
    path = tmp_path / "guide.md"
    path.write_text(GUIDE, encoding="utf-8")
    records = list(read_source(_source(path=str(path))))
    got = [(r.data["title"], r.line, r.data["text"].splitlines()[0]) for r in records]
    assert got == [
        ("guide", 4, "Tuneline turns tables into training data."),
        ("Install", 8, "Use pip."),
        ("Install > On Linux", 17, "Nothing special."),
        ("Install > Setext heading", 22, "Under the setext heading."),
        ("Usage", 27, "Run it."),
    ]
    assert "# a comment, not a heading" in records[1].data["text"]
    assert [r.key for r in records] == [f"guide.md#{i}" for i in range(5)]
    assert records[2].data == {"text": "Nothing special.", "title": "Install > On Linux",
                               "chunk": "2", "file": "guide.md"}
    assert {r.file for r in records} == {str(path)}
    assert GUIDE.splitlines()[records[4].line - 1] == "Run it."


def test_chunks_respect_size_and_overlap_at_word_starts():
    words = [f"w{i}" for i in range(120)]
    text = " ".join(words[:60]) + ".\n\n" + " ".join(words[60:]) + "."
    chunks = chunk_document(text, "text", "notes", size=80, overlap=20)
    assert all(0 < len(c.text) <= 80 for c in chunks)
    assert {c.title for c in chunks} == {"notes"}
    for before, after in zip(chunks, chunks[1:], strict=False):
        first_word = after.text.split()[0]
        assert first_word in before.text.split()  # starts inside the previous chunk...
        shared = before.text[before.text.rindex(first_word):]
        assert after.text.startswith(shared) and len(shared) <= 20  # ...at most 20 chars back
    seen = {word.strip(".") for c in chunks for word in c.text.split()}
    assert seen == set(words)


def test_long_paragraph_splits_at_sentences_then_cuts():
    sentences = ["Alpha beta gamma delta epsilon.", "Zeta eta theta iota kappa lambda.",
                 "Mu nu xi omicron pi rho sigma."]
    chunks = chunk_document(" ".join(sentences), "text", "t", size=60, overlap=0)
    assert [c.text for c in chunks] == sentences
    token = "x" * 130
    pieces = chunk_document(token, "text", "t", size=50, overlap=10)
    assert "".join(c.text for c in pieces) == token and all(len(c.text) <= 50 for c in pieces)


def test_plain_text_has_no_headings_and_no_empty_chunks(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("# not a heading\n\n\n   \nsecond paragraph\n", encoding="utf-8")
    source = _source(path=str(path))
    assert source.format == "text"
    records = list(read_source(source))
    assert [(r.data["title"], r.line) for r in records] == [("notes", 1)]
    path.write_text("\n\n  \n", encoding="utf-8")
    assert list(read_source(source)) == []
    assert chunk_document("# Only\n## Headings\n", "markdown", "t", 100, 10) == []


def test_folder_source_reads_matching_files_sorted_and_recursively(tmp_path):
    docs = tmp_path / "docs"
    (docs / "b" / "deep").mkdir(parents=True)
    (docs / ".hidden").mkdir()
    (docs / "z.md").write_text("# Z\nzed", encoding="utf-8")
    (docs / "b" / "deep" / "a.markdown").write_text("deep text", encoding="utf-8")
    (docs / "a.MD").write_text("first", encoding="utf-8")
    (docs / "notes.txt").write_text("not markdown", encoding="utf-8")
    (docs / ".hidden" / "secret.md").write_text("skip me", encoding="utf-8")
    records = list(read_source(_source(path=str(docs), format="markdown")))
    assert [(r.key, r.data["text"]) for r in records] == [
        ("a.MD#0", "first"), ("b/deep/a.markdown#0", "deep text"), ("z.md#0", "zed")]
    assert records[1].file == str(docs / "b" / "deep" / "a.markdown")
    assert [r.data["text"] for r in read_source(_source(path=str(docs), format="text"))] == [
        "not markdown"]
    (docs / "z.md").unlink()
    for file in [docs / "a.MD", docs / "b" / "deep" / "a.markdown"]:
        file.unlink()
    with pytest.raises(DataError, match=r"docs: no \.md/\.markdown files in this folder"):
        list(read_source(_source(path=str(docs), format="markdown")))


@pytest.mark.parametrize(("source", "message"), [
    ({"path": "docs"}, r"is a folder; only document sources .text, markdown, rst, html, pdf"),
    ({"path": "docs", "format": "csv"}, "is a folder"),
    ({"path": "t.csv", "chunk_size": 200}, "chunk_size apply to document sources only"),
    ({"path": "a.md", "chunk_size": 100, "chunk_overlap": 60}, "at most half of chunk_size"),
    ({"path": "a.md", "chunk_size": 10}, "chunk_size"),
])
def test_document_config_problems(tmp_path, source, message):
    (tmp_path / "docs").mkdir()
    (tmp_path / "t.csv").write_text("a\n1\n", encoding="utf-8")
    (tmp_path / "a.md").write_text("x", encoding="utf-8")
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"ingest": {"sources": [{"name": "d", **source}]}}))
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(config)
    assert caught.value.problems[0].startswith("ingest.sources.0")


def test_folder_fingerprint_covers_every_document(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.md").write_text("one", encoding="utf-8")
    source = _source(path=str(tmp_path), format="markdown")
    before = source_fingerprint(source)
    (tmp_path / "ignored.csv").write_text("a\n", encoding="utf-8")
    assert source_fingerprint(source) == before
    (tmp_path / "b.md").write_text("two", encoding="utf-8")
    added = source_fingerprint(source)
    (tmp_path / "sub" / "a.md").write_text("one!", encoding="utf-8")
    assert len({before, added, source_fingerprint(source)}) == 3


def test_undecodable_document_names_file_and_offset(tmp_path):
    path = tmp_path / "bad.md"
    path.write_bytes(b"# Title\n" + b"ok\n" * 10 + b"caf\xe9\n")
    with pytest.raises(DataError, match=r"bad\.md: bytes at offset 41 are not valid utf-8"):
        list(read_source(_source(path=str(path), encoding="utf-8")))

    path.write_bytes("# Café\r\n\r\nCrème brûlée.\r\n".encode("cp1252"))
    (record,) = read_source(_source(path=str(path), encoding="cp1252"))
    assert (record.data["title"], record.data["text"], record.line) == ("Café", "Crème brûlée.", 3)
    path.write_bytes("\ufeff# Café\n\nCrème brûlée.\n".encode())  # auto: UTF-8 with a BOM
    (record,) = read_source(_source(path=str(path)))
    assert (record.data["title"], record.data["text"], record.line) == ("Café", "Crème brûlée.", 3)


def test_ingest_stage_reruns_when_a_document_is_added(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\nalpha", encoding="utf-8")
    config = tmp_path / "c.yaml"
    config.write_text("ingest:\n  sources:\n    - {name: docs, path: docs, format: markdown}\n")
    cfg = load_config(config)
    first = ingest.run(cfg, tmp_path / "out")
    tables = json.loads((tmp_path / "out" / ingest.TABLES).read_text(encoding="utf-8"))
    assert tables["docs"]["columns"] == ["text", "title", "chunk", "file"]
    assert first.manifest["counts"]["rows:docs"] == 1
    assert ingest.run(cfg, tmp_path / "out").skipped
    (docs / "b.md").write_text("beta", encoding="utf-8")
    second = ingest.run(cfg, tmp_path / "out")
    assert not second.skipped and second.manifest["counts"]["records"] == 2
    assert "repeated_files:docs" not in second.manifest["counts"]
    (docs / "c.md").symlink_to("b.md")  # the same document again: read once, counted
    third = ingest.run(cfg, tmp_path / "out")
    assert not third.skipped and third.manifest["counts"]["records"] == 2
    assert third.manifest["counts"]["repeated_files:docs"] == 1
