import pytest

from tuneline.errors import DataError
from tuneline.ingest.sources import read_csv


def test_rows_keep_file_and_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('a,b\n1,"x\ny"\n2,z\n', encoding="utf-8")
    rows = list(read_csv("t", path))
    assert [r.data for r in rows] == [{"a": "1", "b": "x\ny"}, {"a": "2", "b": "z"}]
    assert rows[1].line == 4 and rows[1].file == str(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a,b\n1,2\n3\n", r"t\.csv:3: expected 2 fields"),
        (b"", r"t\.csv:1: empty file"),
        (b"a,a\n1,2\n", r"t\.csv:1: column name 'a' appears twice"),
        (b"a,,c\n1,2,3\n", r"t\.csv:1: column 2 has an empty name"),
        (b"a,b\n1,caf\xe9\n", r"t\.csv: bytes at offset \d+ are not valid utf-8"),
        (b'a,b\n1,"unterminated\n', r"t\.csv:\d+: malformed CSV"),
    ],
)
def test_malformed_files_name_the_place(tmp_path, content, message):
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        list(read_csv("t", path))


def test_other_encodings_are_read_when_configured(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("a\ncafé\n".encode("latin-1"))
    assert next(read_csv("t", path, encoding="latin-1")).data == {"a": "café"}
