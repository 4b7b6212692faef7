"""Bulk CSV bodies are split into lines by hand (no TextIOWrapper): every byte and every row survives."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orgvault.adapters import salesforce


def _rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(salesforce._csv_lines(io.BytesIO(body)), strict=True))


@pytest.fixture(autouse=True)
def tiny_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(salesforce, "_CSV_READ", 5)  # multibyte characters and lines cut at every place


def test_quoted_newlines_bom_crlf_and_odd_separators_survive():
    text = 'Id,Note\r\n"1","two\nlines"\r\n"2","é\u2028x"\r\n3,a\x0bb\u2028c\x1cd\r\n4,"last, no newline"'
    body = "\ufeff".encode() + text.encode()
    assert _rows(body) == [
        ["Id", "Note"],
        ["1", "two\nlines"],
        ["2", "é\u2028x"],
        ["3", "a\x0bb\u2028c\x1cd"],
        ["4", "last, no newline"],
    ]


def test_bytes_that_are_not_utf8_are_refused():
    with pytest.raises(UnicodeDecodeError):
        _rows(b"Id,Name\n1,\xff\xfe\n")


@given(
    st.lists(st.lists(st.text(min_size=0, max_size=12), min_size=2, max_size=2), min_size=1, max_size=20),
    st.sampled_from(["\n", "\r\n"]),
)
def test_any_rows_round_trip(rows: list[list[str]], eol: str) -> None:
    """Any text in quoted fields (Bulk results quote every value), LF or CRLF line endings."""
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator=eol, quoting=csv.QUOTE_ALL).writerows(rows)
    parsed = list(csv.reader(io.StringIO(out.getvalue(), newline=""), strict=True))
    assert _rows(out.getvalue().encode()) == parsed
