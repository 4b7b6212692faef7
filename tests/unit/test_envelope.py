"""The envelope (format version 1): round trips, tamper detection, version check, known answers."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orgvault.adapters.local_keys import LocalKeyProvider
from orgvault.domain.chunks import decode_chunk
from orgvault.domain.envelope import (
    PREAMBLE_FIXED_SIZE,
    TAG_SIZE,
    Compression,
    EnvelopeError,
    EnvelopeHeader,
    Reason,
    check_context,
    open_envelope,
    open_stream,
    parse_preamble,
    seal,
    seal_stream,
)
from orgvault.errors import IntegrityError, UnknownFormatVersion

FIXTURES = Path(__file__).parent / "fixtures"
KEY = bytes(range(32))
CTX = {"org": "acme", "snapshot": "r1", "object": "Account", "seq": "3", "v": "1"}


def header(segment_size: int = 64, **kw) -> EnvelopeHeader:
    return EnvelopeHeader(
        kind=kw.get("kind", "chunk"),
        key_ref="local:acme",
        wrapped_key=b"wrapped",
        nonce_prefix=kw.get("nonce", b"\x01" * 7),
        context=kw.get("context", CTX),
        compression=Compression.ZSTD,
        segment_size=segment_size,
    )


def key_of(_: EnvelopeHeader) -> bytes:
    return KEY


def split(data: bytes, sizes: list[int]) -> list[bytes]:
    parts, i = [], 0
    for s in sizes:
        parts.append(data[i : i + s])
        i += s
    parts.append(data[i:])
    return parts


# --- round trips ---------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(plain=st.binary(max_size=700), seg=st.integers(1, 100), cuts=st.lists(st.integers(0, 90), max_size=12))
def test_open_of_seal_is_identity_whole_and_streamed(plain, seg, cuts):
    h = header(seg)
    sealed = seal(KEY, h, plain)
    got_header, got = open_envelope(sealed, key_of)
    assert got == plain
    assert dict(got_header.context) == CTX and got_header.segment_size == seg
    # streamed in arbitrary pieces, both directions
    streamed = b"".join(seal_stream(KEY, h, split(plain, cuts)))
    assert streamed[: len(h.preamble())] == h.preamble()
    _, pieces = open_stream(split(streamed, cuts), key_of)
    assert b"".join(pieces) == plain
    _, pieces = open_stream(split(sealed, cuts), key_of)
    assert b"".join(pieces) == plain


def test_sealed_size_is_preamble_plus_segments():
    h = header(10)
    sealed = seal(KEY, h, b"x" * 25)  # segments 10, 10, 5
    assert len(sealed) == len(h.preamble()) + 25 + 3 * TAG_SIZE
    sealed = seal(KEY, h, b"x" * 20)  # 10, 10 (the last one full and final)
    assert len(sealed) == len(h.preamble()) + 20 + 2 * TAG_SIZE
    assert len(seal(KEY, h, b"")) == len(h.preamble()) + TAG_SIZE


def test_fresh_nonce_prefix_gives_different_bytes():
    a = seal(KEY, header(nonce=b"\x01" * 7), b"same")
    b = seal(KEY, header(nonce=b"\x02" * 7), b"same")
    assert a != b


def test_streaming_memory_is_bounded_by_segments():
    """Sealing 64 MiB in 1 MiB parts never yields more than one segment at a time."""
    h = header(1024 * 1024)
    part = b"\0" * (1024 * 1024)
    biggest = max(len(p) for p in seal_stream(KEY, h, (part for _ in range(64))))
    assert biggest <= 1024 * 1024 + TAG_SIZE


# --- tampering -----------------------------------------------------------------------------------

SEALED = seal(KEY, header(16), bytes(range(256)) * 2)


@settings(max_examples=300, deadline=None)
@given(pos=st.integers(0, len(SEALED) - 1), bit=st.integers(0, 7))
def test_any_flipped_bit_fails(pos, bit):
    bad = bytearray(SEALED)
    bad[pos] ^= 1 << bit
    with pytest.raises((EnvelopeError, UnknownFormatVersion)):
        open_envelope(bytes(bad), key_of)
    with pytest.raises((EnvelopeError, UnknownFormatVersion)):
        _, it = open_stream([bytes(bad)], key_of)
        b"".join(it)


@settings(max_examples=200, deadline=None)
@given(length=st.integers(0, len(SEALED) - 1))
def test_any_truncation_fails(length):
    with pytest.raises(EnvelopeError):
        open_envelope(SEALED[:length], key_of)


def test_truncation_at_segment_boundary_is_named_truncated():
    h = header(16)
    sealed = seal(KEY, h, b"a" * 64)  # 4 full segments
    cut = len(h.preamble()) + 3 * (16 + TAG_SIZE)
    with pytest.raises(EnvelopeError) as info:
        open_envelope(sealed[:cut], key_of)
    assert info.value.reason == Reason.TRUNCATED


def _segments(sealed: bytes, seg: int) -> tuple[bytes, list[bytes]]:
    _, start = parse_preamble(sealed)
    body = sealed[start:]
    n = seg + TAG_SIZE
    return sealed[:start], [body[i : i + n] for i in range(0, len(body), n)]


def test_swapped_segments_fail():
    pre, segs = _segments(SEALED, 16)
    segs[1], segs[2] = segs[2], segs[1]
    with pytest.raises(EnvelopeError) as info:
        open_envelope(pre + b"".join(segs), key_of)
    assert info.value.reason == Reason.TAMPERED


def test_duplicated_or_dropped_segment_fails():
    pre, segs = _segments(SEALED, 16)
    for body in (segs[:3] + segs[2:], segs[:2] + segs[3:], segs + segs[-1:]):
        with pytest.raises(EnvelopeError):
            open_envelope(pre + b"".join(body), key_of)


def test_segment_from_another_envelope_fails():
    other = seal(KEY, header(16, nonce=b"\x09" * 7), bytes(range(256)) * 2)
    pre, segs = _segments(SEALED, 16)
    _, other_segs = _segments(other, 16)
    segs[0] = other_segs[0]
    with pytest.raises(EnvelopeError):
        open_envelope(pre + b"".join(segs), key_of)


def test_header_cannot_be_rewritten():
    """A re-encoded header with another context (an attacker moving a chunk) fails authentication."""
    h = header(16, context={**CTX, "object": "Contact"})
    _, start = parse_preamble(SEALED)
    forged = h.preamble() + SEALED[start:]
    with pytest.raises(EnvelopeError) as info:
        open_envelope(forged, key_of)
    assert info.value.reason == Reason.TAMPERED


def test_wrong_key_fails():
    with pytest.raises(EnvelopeError):
        open_envelope(SEALED, lambda _: bytes(32))


def test_check_context_names_both_places():
    h, _ = parse_preamble(SEALED)
    check_context(h, CTX, what="chunk x")
    with pytest.raises(EnvelopeError) as info:
        check_context(h, {**CTX, "org": "beta"}, what="chunk x")
    assert info.value.reason == Reason.MISPLACED
    assert '"org":"acme"' in str(info.value) and '"org":"beta"' in str(info.value)


# --- version and shape checks --------------------------------------------------------------------


def test_unknown_version_is_refused_before_anything_else():
    called = []
    bad = SEALED[:4] + bytes([2]) + SEALED[5:]

    def resolver(h):
        called.append(h)
        return KEY

    with pytest.raises(UnknownFormatVersion):
        open_envelope(bad, resolver)
    with pytest.raises(UnknownFormatVersion):
        open_stream([bad[:3], bad[3:7], bad[7:]], resolver)
    assert called == []


def test_not_an_envelope():
    for data in (b"", b"PK\x03\x04" + b"\0" * 40, b"{}"):
        with pytest.raises(EnvelopeError) as info:
            open_envelope(data, key_of)
        assert info.value.reason in (Reason.NOT_AN_ENVELOPE, Reason.TRUNCATED)
        assert isinstance(info.value, IntegrityError)


def test_malformed_header_is_refused():
    junk = b"not json"
    data = b"OVLT" + bytes([1]) + struct.pack(">I", len(junk)) + junk + b"\0" * 16
    with pytest.raises(EnvelopeError) as info:
        open_envelope(data, key_of)
    assert info.value.reason == Reason.NOT_AN_ENVELOPE


def test_header_is_canonical_json_with_documented_fields():
    pre = header(16).preamble()
    assert pre[:4] == b"OVLT" and pre[4] == 1
    (length,) = struct.unpack(">I", pre[5:9])
    assert len(pre) == PREAMBLE_FIXED_SIZE + length
    obj = json.loads(pre[9:])
    assert sorted(obj) == [
        "compression",
        "context",
        "key_ref",
        "kind",
        "nonce",
        "segment_size",
        "wrapped_key",
    ]
    assert pre[9:] == json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def test_context_values_must_be_strings():
    with pytest.raises(ValueError):
        header(context={"org": "acme", "seq": 3}).preamble()


# --- known-answer vectors: old backups stay readable forever -------------------------------------


VECTORS = json.loads((FIXTURES / "envelope_v1.json").read_text())


@pytest.mark.parametrize("vec", VECTORS, ids=[v["name"] for v in VECTORS])
def test_known_answer_vectors(vec):
    key = bytes.fromhex(vec["data_key_hex"])
    sealed = bytes.fromhex(vec["sealed_hex"])
    plain = bytes.fromhex(vec["plaintext_hex"])
    h, got = open_envelope(sealed, lambda _: key)
    assert got == plain
    assert dict(h.context) == vec["context"] and h.key_ref == vec["key_ref"]
    assert h.wrapped_key == base64.b64decode(vec["wrapped_key_b64"])
    # and this code still writes exactly these bytes
    rebuilt = EnvelopeHeader(
        kind=vec["kind"],
        key_ref=vec["key_ref"],
        wrapped_key=base64.b64decode(vec["wrapped_key_b64"]),
        nonce_prefix=bytes.fromhex(vec["nonce_prefix_hex"]),
        context=vec["context"],
        compression=Compression(vec["compression"]),
        segment_size=vec["segment_size"],
    )
    assert seal(key, rebuilt, plain) == sealed
    if "records" in vec:
        assert list(decode_chunk(plain)) == vec["records"]


def test_known_answer_local_key_wrap():
    vec = json.loads((FIXTURES / "local_wrap_v1.json").read_text())
    provider = LocalKeyProvider(master_key=base64.b64decode(vec["master_key_b64"]))
    got = provider.decrypt_data_key(vec["key_ref"], bytes.fromhex(vec["wrapped_hex"]), vec["context"])
    assert got == bytes.fromhex(vec["data_key_hex"])
