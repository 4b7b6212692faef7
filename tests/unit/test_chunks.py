"""Chunk payloads: records survive chunking, bounds hold, memory stays bounded, bad payloads fail."""

from __future__ import annotations

import json

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from orgvault.domain.chunks import (
    ChunkBuilder,
    chunk_fields,
    decode_chunk,
    encode_chunks,
    encode_records,
    tombstone,
)
from orgvault.errors import IntegrityError, UnknownFormatVersion

json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def record_streams(draw):
    fields = draw(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=6, unique=True))
    n = draw(st.integers(0, 60))
    records = []
    for i in range(n):
        rec = {"Id": f"001{i:015d}"}
        for f in fields:
            if f != "Id":
                rec[f] = draw(json_value)
        records.append(rec)
    return records


@settings(max_examples=80, deadline=None)
@given(records=record_streams(), max_records=st.integers(1, 20), max_bytes=st.integers(1, 3000))
def test_chunks_concatenate_back_to_the_records(records, max_records, max_bytes):
    chunks = list(encode_chunks(records, max_records=max_records, max_bytes=max_bytes))
    back = [r for c in chunks for r in decode_chunk(c.payload)]
    assert back == records
    assert sum(c.records for c in chunks) == len(records)
    for c in chunks:
        assert c.records <= max_records
        assert c.records == 1 or c.plain_bytes <= max_bytes
        rows = list(decode_chunk(c.payload))
        assert (c.first_id, c.last_id) == (rows[0]["Id"], rows[-1]["Id"])
        assert list(rows[0]) == list(c.fields)


def test_field_order_is_kept():
    rec = {"Name": "x", "Id": "001", "Amount": 3}
    (out,) = decode_chunk(encode_records([rec]).payload)
    assert list(out) == ["Name", "Id", "Amount"]


def test_record_bound_closes_chunk():
    chunks = list(encode_chunks(({"Id": str(i)} for i in range(25)), max_records=10))
    assert [c.records for c in chunks] == [10, 10, 5]


def test_size_bound_closes_chunk():
    big = "x" * 1000
    chunks = list(encode_chunks(({"Id": str(i), "Body": big} for i in range(20)), max_bytes=5000))
    assert all(c.plain_bytes <= 5000 for c in chunks)
    assert sum(c.records for c in chunks) == 20 and len(chunks) >= 4


def test_oversized_record_gets_its_own_chunk():
    chunks = list(encode_chunks([{"Id": "1", "B": "y" * 100}, {"Id": "2", "B": "z" * 5000}], max_bytes=1000))
    assert [c.records for c in chunks] == [1, 1]


def test_changed_key_set_starts_a_new_chunk():
    recs = [{"Id": "1", "A": 1}, {"Id": "2", "A": 2}, {"Id": "3", "A": 3, "New__c": "x"}]
    chunks = list(encode_chunks(recs))
    assert [c.fields for c in chunks] == [("Id", "A"), ("Id", "A", "New__c")]
    assert [r for c in chunks for r in decode_chunk(c.payload)] == recs
    with pytest.raises(ValueError):
        encode_records(recs)


def test_builder_add_and_flush_contract():
    b = ChunkBuilder(max_records=2)
    assert b.add({"Id": "1"}) is None
    assert b.add({"Id": "2"}) is None
    assert b.pending == 2
    closed = b.add({"Id": "3"})  # closes the full chunk before adding
    assert closed is not None and closed.records == 2 and b.pending == 1
    last = b.flush()
    assert last is not None and last.records == 1
    assert b.flush() is None and b.pending == 0


def test_builder_holds_only_compressed_bytes():
    """Memory stays flat: 50,000 repetitive records are held compressed, far below their JSON size."""
    b = ChunkBuilder()
    for i in range(50_000):
        assert b.add({"Id": f"001{i:015d}", "Name": f"Account number {i % 10}", "Industry": "Energy"}) is None
    assert b.pending_bytes > 2_500_000
    assert len(b._out) < b.pending_bytes / 5
    chunk = b.flush()
    assert chunk is not None and chunk.records == 50_000
    assert len(chunk.payload) < chunk.plain_bytes / 5


def test_payload_is_zstd_jsonl_with_header_line():
    payload = encode_records([{"Id": "001", "Name": "A"}]).payload
    text = zstandard.ZstdDecompressor().decompressobj().decompress(payload).decode()
    head, row, end = text.split("\n")
    assert json.loads(head) == {"fields": ["Id", "Name"], "format": "ovc-rows", "v": 1}
    assert json.loads(row) == ["001", "A"] and end == ""
    assert chunk_fields(payload) == ("Id", "Name")


def test_tombstones():
    chunk = encode_records([tombstone("001A", "2026-01-01T00:00:00.000+0000"), tombstone("001B")])
    assert list(decode_chunk(chunk.payload)) == [
        {"Id": "001A", "deletedDate": "2026-01-01T00:00:00.000+0000"},
        {"Id": "001B", "deletedDate": None},
    ]


def test_unknown_payload_version_and_garbage():
    c = zstandard.ZstdCompressor()
    newer = c.compress(b'{"fields":["Id"],"format":"ovc-rows","v":2}\n["1"]\n')
    with pytest.raises(UnknownFormatVersion):
        list(decode_chunk(newer))
    for bad in (
        b"garbage",
        c.compress(b'{"format":"other"}\n'),
        c.compress(b""),
        c.compress(b'{"fields":["Id","A"],"format":"ovc-rows","v":1}\n["1"]\n'),
    ):
        with pytest.raises(IntegrityError):
            list(decode_chunk(bad))


def test_nan_is_refused():
    with pytest.raises(ValueError):
        encode_records([{"Id": "1", "X": float("nan")}])


_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)


@given(
    st.lists(
        st.one_of(
            _json_scalars,
            st.fixed_dictionaries({"$file": st.text(max_size=8), "size": st.integers(0, 10**9)}),
        )
    )
)
def test_row_encoder_matches_the_json_encoder(values: list[object]) -> None:
    """The fast row encoder (orjson) writes the same JSON as the reference encoder: the same values
    when read, and the same bytes unless a float is spelled differently (``1e-7`` / ``1e-07``)."""
    from orgvault.domain.chunks import _dumps, _dumps_row

    row = _dumps_row(values)
    assert row.endswith(b"\n") and row.count(b"\n") == 1
    assert json.loads(row) == values
    if not any(isinstance(v, float) for v in values):
        assert row == _dumps(values) + b"\n"


@pytest.mark.parametrize(
    "values",
    [
        [float("nan")],
        [float("inf"), None],
        ["null", float("-inf")],
        [None, "a null in text", float("nan"), None],
    ],
)
def test_row_encoder_refuses_non_finite_floats(values: list[object]) -> None:
    """orjson would write NaN/Infinity as ``null`` (a silent change of the value): refused instead."""
    from orgvault.domain.chunks import _dumps_row

    with pytest.raises(ValueError):
        _dumps_row(values)


def test_row_encoder_handles_what_orjson_cannot():
    """Integers beyond 64 bits go through the reference encoder (no error, exact digits)."""
    from orgvault.domain.chunks import _dumps_row

    assert _dumps_row([2**70, "x"]) == b'[1180591620717411303424,"x"]\n'
