"""The sealed-object envelope, format version 1 (see docs/format.md, "Envelope").

Bytes of every sealed object (chunk, file body, manifest, secret)::

    "OVLT" | version u8 (=1) | header length u32 BE | header (canonical JSON, UTF-8) | body

The body is the plaintext cut into segments of ``segment_size`` bytes (the last one shorter, possibly
empty), each sealed with AES-256-GCM as ``ciphertext || 16-byte tag``. Segment ``i`` uses the nonce
``nonce_prefix (7 bytes) || i (u32 BE) || final (u8: 1 for the last segment, else 0)`` and the AAD =
every byte before the body (magic, version, header length, header). So a changed header or context,
reordered segments, a dropped or duplicated segment, and a truncation at a segment boundary all fail.

This module is pure: serialization (:class:`EnvelopeHeader`, :func:`parse_preamble`) is kept apart
from the cryptography (:func:`seal_segments`, :func:`open_segments`), and both apart from policy (which
key, which context: ``orgvault.services.vault``). Readers check magic and version first: an unknown
version raises :class:`~orgvault.errors.UnknownFormatVersion`; every other defect raises
:class:`EnvelopeError` (an :class:`~orgvault.errors.IntegrityError`) whose ``reason`` names it.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from orgvault.errors import IntegrityError, UnknownFormatVersion

MAGIC = b"OVLT"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})
TAG_SIZE = 16
NONCE_PREFIX_SIZE = 7
KEY_SIZE = 32
DEFAULT_SEGMENT_SIZE = 1024 * 1024
MAX_SEGMENT_SIZE = 64 * 1024 * 1024  # a reader refuses larger segments (bounded memory)
MAX_HEADER_SIZE = 64 * 1024
_FIXED = struct.Struct(">4sBI")  # magic, version, header length
PREAMBLE_FIXED_SIZE = _FIXED.size  # 9


class Reason(StrEnum):
    """Why an envelope failed to open (``EnvelopeError.reason``)."""

    NOT_AN_ENVELOPE = "not-an-envelope"  # wrong magic or a malformed header
    TRUNCATED = "truncated"  # ends before its final segment
    TAMPERED = "tampered"  # a segment or the header failed authentication
    MISPLACED = "misplaced"  # authentic, but sealed for another org/snapshot/object/sequence
    WRONG_KEY = "wrong-key"  # the data key could not be unwrapped for this context
    HASH_MISMATCH = "hash-mismatch"  # authentic, but not the bytes the catalog/manifest recorded
    CONTENT_MISMATCH = "content-mismatch"  # a file body whose keyed id or size is not the expected one


class EnvelopeError(IntegrityError):
    """A sealed object failed to open. ``reason`` is a :class:`Reason`; the message says what failed
    and never contains key material or plaintext."""

    def __init__(self, message: str, *, reason: Reason) -> None:
        super().__init__(message)
        self.reason = reason


class Compression(StrEnum):
    NONE = "none"
    ZSTD = "zstd"


def canonical_json(value: Any) -> bytes:
    """The canonical JSON used in headers, contexts and manifests: sorted keys, no spaces, ASCII."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


@dataclass(frozen=True)
class EnvelopeHeader:
    """What precedes the ciphertext. All of it is authenticated (it is the AAD).

    ``kind`` says what the plaintext is (``chunk``, ``file``, ``manifest``, ``secret``);
    ``context`` is the encryption context the data key was generated with (string values only) and
    names where the object belongs; ``compression`` says how the plaintext is encoded.
    """

    kind: str
    key_ref: str
    wrapped_key: bytes
    nonce_prefix: bytes
    context: Mapping[str, str]
    compression: Compression = Compression.NONE
    segment_size: int = DEFAULT_SEGMENT_SIZE
    version: int = FORMAT_VERSION
    # The exact preamble bytes when parsed from storage (authenticated as stored, never re-encoded).
    # Not an init argument, so ``dataclasses.replace`` yields a header that encodes itself afresh.
    _encoded: bytes = field(default=b"", init=False, repr=False, compare=False)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "compression": str(self.compression),
            "context": {str(k): str(v) for k, v in self.context.items()},
            "key_ref": self.key_ref,
            "kind": self.kind,
            "nonce": base64.b64encode(self.nonce_prefix).decode("ascii"),
            "segment_size": self.segment_size,
            "wrapped_key": base64.b64encode(self.wrapped_key).decode("ascii"),
        }

    def preamble(self) -> bytes:
        """Every byte before the body: magic, version, header length, header. This is the AAD."""
        if self._encoded:
            return self._encoded
        if len(self.nonce_prefix) != NONCE_PREFIX_SIZE:
            raise ValueError(f"nonce prefix must be {NONCE_PREFIX_SIZE} bytes")
        if not 1 <= self.segment_size <= MAX_SEGMENT_SIZE:
            raise ValueError("segment size out of range")
        if any(not isinstance(v, str) for v in self.context.values()):
            raise ValueError("encryption context values must be strings")
        header = canonical_json(self.to_json_dict())
        return _FIXED.pack(MAGIC, self.version, len(header)) + header


def parse_preamble(data: bytes) -> tuple[EnvelopeHeader, int]:
    """Parse the header at the start of ``data`` (which may hold more than the preamble).

    Returns the header and the preamble length (the body starts there). Checks magic, then
    version (``UnknownFormatVersion``), then the header (``EnvelopeError``)."""
    if len(data) < PREAMBLE_FIXED_SIZE:
        if MAGIC.startswith(data[:4]) and data:
            raise EnvelopeError("sealed object ends inside its preamble", reason=Reason.TRUNCATED)
        raise EnvelopeError("not an orgvault sealed object (too short)", reason=Reason.NOT_AN_ENVELOPE)
    magic, version, header_len = _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise EnvelopeError("not an orgvault sealed object (bad magic)", reason=Reason.NOT_AN_ENVELOPE)
    if version not in SUPPORTED_VERSIONS:
        raise UnknownFormatVersion(
            f"sealed object has format version {version}; this orgvault reads {sorted(SUPPORTED_VERSIONS)}. "
            "Upgrade orgvault to read it."
        )
    if header_len > MAX_HEADER_SIZE:
        raise EnvelopeError("envelope header too large", reason=Reason.NOT_AN_ENVELOPE)
    end = PREAMBLE_FIXED_SIZE + header_len
    if len(data) < end:
        raise EnvelopeError("sealed object ends inside its header", reason=Reason.TRUNCATED)
    raw = data[PREAMBLE_FIXED_SIZE:end]
    try:
        obj = json.loads(raw)
        context = obj["context"]
        if not isinstance(context, dict) or any(not isinstance(v, str) for v in context.values()):
            raise ValueError("context")
        header = EnvelopeHeader(
            kind=str(obj["kind"]),
            key_ref=str(obj["key_ref"]),
            wrapped_key=base64.b64decode(obj["wrapped_key"], validate=True),
            nonce_prefix=base64.b64decode(obj["nonce"], validate=True),
            context=dict(context),
            compression=Compression(obj["compression"]),
            segment_size=int(obj["segment_size"]),
            version=version,
        )
        object.__setattr__(header, "_encoded", bytes(data[:end]))
    except (ValueError, KeyError, TypeError) as exc:
        raise EnvelopeError("malformed envelope header", reason=Reason.NOT_AN_ENVELOPE) from exc
    if len(header.nonce_prefix) != NONCE_PREFIX_SIZE or not 1 <= header.segment_size <= MAX_SEGMENT_SIZE:
        raise EnvelopeError("envelope header out of range", reason=Reason.NOT_AN_ENVELOPE)
    return header, end


def new_nonce_prefix() -> bytes:
    return os.urandom(NONCE_PREFIX_SIZE)


def _nonce(prefix: bytes, index: int, final: bool) -> bytes:
    if index >= 2**32:
        raise ValueError("too many segments")
    return prefix + struct.pack(">IB", index, 1 if final else 0)


def seal_segments(
    key: bytes, aad: bytes, nonce_prefix: bytes, segment_size: int, parts: Iterable[bytes]
) -> Iterator[bytes]:
    """Yield the sealed body for the plaintext given as ``parts`` (any sizes), one sealed segment at a
    time. Holds at most two segments of plaintext."""
    aes = AESGCM(key)
    buf = bytearray()
    index = 0
    for part in parts:
        buf += part
        # Keep at least one byte back: only the end of input decides which segment is final.
        while len(buf) > segment_size:
            yield aes.encrypt(_nonce(nonce_prefix, index, False), bytes(buf[:segment_size]), aad)
            del buf[:segment_size]
            index += 1
    yield aes.encrypt(_nonce(nonce_prefix, index, True), bytes(buf), aad)


def open_segments(
    key: bytes, aad: bytes, nonce_prefix: bytes, segment_size: int, parts: Iterable[bytes], *, what: str = ""
) -> Iterator[bytes]:
    """Yield the plaintext of a sealed body given as ``parts`` (any sizes), segment by segment.

    Raises ``EnvelopeError`` (TAMPERED or TRUNCATED) at the first segment that fails: a consumer must
    read to the end before trusting what it got."""
    aes = AESGCM(key)
    sealed_size = segment_size + TAG_SIZE
    buf = bytearray()
    index = 0
    label = f" of {what}" if what else ""
    for part in parts:
        buf += part
        while len(buf) > sealed_size:
            yield _open_one(aes, nonce_prefix, index, False, bytes(buf[:sealed_size]), aad, label)
            del buf[:sealed_size]
            index += 1
    if len(buf) < TAG_SIZE:
        raise EnvelopeError(f"sealed body{label} ends before its final segment", reason=Reason.TRUNCATED)
    yield _open_one(aes, nonce_prefix, index, True, bytes(buf), aad, label)


def _open_one(
    aes: AESGCM, prefix: bytes, index: int, final: bool, sealed: bytes, aad: bytes, label: str
) -> bytes:
    try:
        return aes.decrypt(_nonce(prefix, index, final), sealed, aad)
    except InvalidTag:
        if final:
            # Either this segment was altered, or the body was cut at a segment boundary (the last
            # remaining segment was sealed as non-final).
            try:
                aes.decrypt(_nonce(prefix, index, False), sealed, aad)
            except InvalidTag:
                pass
            else:
                raise EnvelopeError(
                    f"sealed body{label} is truncated after segment {index}", reason=Reason.TRUNCATED
                ) from None
        raise EnvelopeError(
            f"segment {index}{label} failed authentication (altered, reordered or wrong key)",
            reason=Reason.TAMPERED,
        ) from None


def seal(key: bytes, header: EnvelopeHeader, plaintext: bytes) -> bytes:
    """Seal ``plaintext`` in one piece: preamble followed by the sealed body."""
    pre = header.preamble()
    return pre + b"".join(seal_segments(key, pre, header.nonce_prefix, header.segment_size, [plaintext]))


def seal_stream(key: bytes, header: EnvelopeHeader, parts: Iterable[bytes]) -> Iterator[bytes]:
    """Seal a plaintext stream; yields the preamble then sealed segments (flat memory)."""
    pre = header.preamble()
    yield pre
    yield from seal_segments(key, pre, header.nonce_prefix, header.segment_size, parts)


KeyResolver = Callable[[EnvelopeHeader], bytes]
"""Given the parsed header, return the 32-byte data key (unwrap ``wrapped_key`` with the expected
context) or raise. The resolver is where policy lives: it must check the context it expects."""


def open_envelope(data: bytes, resolve_key: KeyResolver, *, what: str = "") -> tuple[EnvelopeHeader, bytes]:
    """Open a whole sealed object held in memory; returns the header and the plaintext."""
    header, start = parse_preamble(data)
    key = resolve_key(header)
    body = memoryview(data)[start:]
    plain = b"".join(
        open_segments(
            key, header.preamble(), header.nonce_prefix, header.segment_size, [bytes(body)], what=what
        )
    )
    return header, plain


def open_stream(
    parts: Iterable[bytes], resolve_key: KeyResolver, *, what: str = ""
) -> tuple[EnvelopeHeader, Iterator[bytes]]:
    """Open a sealed stream: reads just enough to parse the header, resolves the key, and returns the
    header with an iterator of plaintext pieces (flat memory). The iterator raises ``EnvelopeError``
    on the first bad segment, so only a fully consumed iterator proves the whole object authentic."""
    it = iter(parts)
    buf = bytearray()
    header: EnvelopeHeader | None = None
    start = 0
    while header is None:
        try:
            buf += next(it)
        except StopIteration:
            header, start = parse_preamble(bytes(buf))  # raises the right error for short data
            break
        if len(buf) >= PREAMBLE_FIXED_SIZE:
            _, _, hlen = _FIXED.unpack_from(buf)
            if buf[:4] != MAGIC or hlen > MAX_HEADER_SIZE or len(buf) >= PREAMBLE_FIXED_SIZE + hlen:
                header, start = parse_preamble(bytes(buf))
    key = resolve_key(header)
    rest = bytes(buf[start:])

    def body() -> Iterator[bytes]:
        if rest:
            yield rest
        yield from it

    assert header is not None
    return header, open_segments(
        key, header.preamble(), header.nonce_prefix, header.segment_size, body(), what=what
    )


def check_context(header: EnvelopeHeader, expected: Mapping[str, str], *, what: str) -> None:
    """Raise ``EnvelopeError(MISPLACED)`` if the header's context is not exactly ``expected``.

    The message names both places so an operator sees where the object came from."""
    got = dict(header.context)
    want = {k: str(v) for k, v in expected.items()}
    if got != want:
        raise EnvelopeError(
            f"{what} is sealed for {canonical_json(got).decode()} but expected {canonical_json(want).decode()}",
            reason=Reason.MISPLACED,
        )
