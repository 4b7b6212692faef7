"""The faster id index build writes exactly the format readers expect: the same Bloom bits as the
reference probe function and the same fixed-width sorted blob, for usual and unusual ids."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from orgvault.domain import record_index as ri

ids15 = st.text(alphabet=string.ascii_letters + string.digits, min_size=15, max_size=18)
odd = st.text(min_size=1, max_size=20)


def _reference_bloom(keys: list[str]) -> bytes:
    nbits = max(64, len(keys) * ri.BLOOM_BITS_PER_ID)
    bits = bytearray((nbits + 7) // 8)
    for k in keys:
        for b in ri._probes(k, nbits):
            bits[b >> 3] |= 1 << (b & 7)
    return bytes(bits)


def _reference_blob(ids: list[str]) -> tuple[bytes, int]:
    keys = sorted({ri.id15(i) for i in ids})
    width = max((len(k.encode()) for k in keys), default=15)
    return b"".join(k.encode().ljust(width) for k in keys), width


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(ids15, odd), max_size=300))
def test_index_matches_the_reference_build_and_reads_back(ids: list[str]) -> None:
    keys = sorted({ri.id15(i) for i in ids})
    assert ri.bloom_of(keys) == _reference_bloom(keys)
    idx = ri.parse_index(ri.index_payload("ab" * 32, ids))
    assert (idx.blob, idx.width) == _reference_blob(ids)
    assert idx.bloom == _reference_bloom(keys)
    for i in ids:
        assert i in idx
        assert ri.bloom_may_contain(idx.bloom, i)


def test_a_chunk_of_salesforce_ids() -> None:
    ids = [f"001{n:012d}AAA" for n in range(5000, 0, -1)]
    idx = ri.parse_index(ri.index_payload("cd" * 32, ids))
    assert idx.width == 15 and len(idx) == 5000
    assert idx.first() == "001000000000001" and idx.last() == "001000000005000"
    assert "001000000004999XYZ" in idx and "001000000005001AAA" not in idx
    assert idx.bloom == _reference_bloom(sorted(i[:15] for i in ids))
