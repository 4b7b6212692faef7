"""Chunk payloads: records in, compact compressed bytes out, and back (docs/format.md, "Chunk payload").

A chunk payload is zstd (one frame) of JSON Lines::

    {"fields":["Id","Name",...],"format":"ovc-rows","v":1}     header line: field order
    ["001000000000001AAA","Acme",...]                            one JSON array per record
    ...

Values are canonical JSON values as the records hold them (strings, numbers, booleans, null, and
objects such as file references ``{"$file": ..., "size": ...}``). All records in one chunk have the
same keys in the same order; a record with another key set closes the chunk and starts the next one.
Tombstone chunks use the same format with the fields ``Id`` and ``deletedDate``.

:class:`ChunkBuilder` holds at most one chunk, compressed as it goes, so memory stays flat.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import zstandard

from orgvault.errors import IntegrityError, UnknownFormatVersion

PAYLOAD_FORMAT = "ovc-rows"
PAYLOAD_VERSION = 1
DEFAULT_MAX_BYTES = 8 * 1024 * 1024  # uncompressed JSON bytes per chunk
DEFAULT_MAX_RECORDS = 50_000
ZSTD_LEVEL = 3
TOMBSTONE_FIELDS = ("Id", "deletedDate")


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_ENCODE = _ENCODER.encode
# The C encoder ``JSONEncoder.encode`` builds on every call, built once (same bytes, less per-row work;
# no circular-reference check: rows hold canonical values, never themselves).
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_ROW_ENCODE: Any = (
    _c_make_encoder(
        None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
    if _c_make_encoder is not None
    else None
)
_COMPRESS_BATCH = 256 * 1024  # rows are handed to zstd in batches (one C call per batch, not per row)


def _dumps(value: Any) -> bytes:
    return _ENCODE(value).encode("utf-8")


def _dumps_row_json(values: list[Any]) -> bytes:
    """One row line with the standard library's encoder (the reference encoding)."""
    if _ROW_ENCODE is None:
        return _dumps(values) + b"\n"
    return ("".join(_ROW_ENCODE(values, 0)) + "\n").encode("utf-8")


_ORJSON_DUMPS = orjson.dumps
_ORJSON_ROW = orjson.OPT_APPEND_NEWLINE


def _dumps_row(values: list[Any]) -> bytes:
    """One row line (JSON array + newline) as :mod:`orjson` writes it (about 5x faster than the
    standard library's encoder).

    Equal to the reference encoding (``_dumps_row_json``) byte for byte except for how some floats
    are spelled (``1e-7`` not ``1e-07``, ``0.00001`` not ``1e-05``): the same JSON number, the same
    value when read. orjson writes a non-finite float as ``null``; a row whose ``null`` count is not
    its ``None`` count (a NaN, or ``null`` inside a string) is encoded by the reference encoder
    instead, which refuses NaN and infinities. So is anything orjson cannot encode (an int beyond
    64 bits, a subclass it does not know)."""
    try:
        out: bytes = _ORJSON_DUMPS(values, option=_ORJSON_ROW)
    except TypeError:
        return _dumps_row_json(values)
    if out.count(b"null") != values.count(None):
        return _dumps_row_json(values)
    return out


@dataclass(frozen=True)
class EncodedChunk:
    """A closed chunk: the compressed payload and what the catalog and manifest record about it."""

    payload: bytes
    records: int
    plain_bytes: int  # uncompressed payload size
    fields: tuple[str, ...]
    first_id: str = ""
    last_id: str = ""


class ChunkBuilder:
    """Accumulates records and closes a chunk at ``max_bytes`` of uncompressed rows or ``max_records``,
    whichever comes first (a single record larger than ``max_bytes`` gets a chunk of its own).

    Usage::

        for record in records:
            if (chunk := builder.add(record)) is not None:
                write(chunk)
        if (chunk := builder.flush()) is not None:
            write(chunk)

    ``add`` closes the current chunk *before* adding a record that would not fit (so at most one
    chunk comes out per call); ``flush`` closes whatever is pending. ``pending`` is how many records
    are held. The builder can be reused after ``flush``.
    """

    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_records: int = DEFAULT_MAX_RECORDS,
        level: int = ZSTD_LEVEL,
    ) -> None:
        if max_bytes < 1 or max_records < 1:
            raise ValueError("chunk bounds must be positive")
        self.max_bytes = max_bytes
        self.max_records = max_records
        self._cctx = zstandard.ZstdCompressor(level=level)
        self._reset()

    def _reset(self) -> None:
        self._fields: tuple[str, ...] | None = None
        self._out = bytearray()
        self._batch: list[bytes] = []
        self._batch_bytes = 0
        self._comp: Any = None
        self._records = 0
        self._plain = 0
        self._first_id = ""
        self._last_id = ""

    @property
    def pending(self) -> int:
        return self._records

    @property
    def pending_bytes(self) -> int:
        return self._plain

    def add(self, record: Mapping[str, Any]) -> EncodedChunk | None:
        fields = tuple(record)
        row = _dumps_row(list(record.values()))
        closed: EncodedChunk | None = None
        if self._records and (
            fields != self._fields
            or self._records >= self.max_records
            or self._plain + len(row) > self.max_bytes
        ):
            closed = self.flush()
        if self._fields is None:
            self._fields = fields
            self._comp = self._cctx.compressobj()
            head = _dumps({"fields": list(fields), "format": PAYLOAD_FORMAT, "v": PAYLOAD_VERSION}) + b"\n"
            self._out += self._comp.compress(head)
            self._plain += len(head)
            first = record.get("Id")
            self._first_id = first if isinstance(first, str) else ""
        self._batch.append(row)
        self._batch_bytes += len(row)
        if self._batch_bytes >= _COMPRESS_BATCH:
            self._out += self._comp.compress(b"".join(self._batch))
            self._batch, self._batch_bytes = [], 0
        self._plain += len(row)
        self._records += 1
        last = record.get("Id")
        self._last_id = last if isinstance(last, str) else ""
        return closed

    def flush(self) -> EncodedChunk | None:
        if not self._records:
            return None
        assert self._fields is not None
        if self._batch:
            self._out += self._comp.compress(b"".join(self._batch))
        self._out += self._comp.flush()
        chunk = EncodedChunk(
            payload=bytes(self._out),
            records=self._records,
            plain_bytes=self._plain,
            fields=self._fields,
            first_id=self._first_id,
            last_id=self._last_id,
        )
        self._reset()
        return chunk


def encode_chunks(
    records: Iterable[Mapping[str, Any]],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_records: int = DEFAULT_MAX_RECORDS,
) -> Iterator[EncodedChunk]:
    """All chunks for ``records`` (a convenience over :class:`ChunkBuilder`)."""
    builder = ChunkBuilder(max_bytes=max_bytes, max_records=max_records)
    for record in records:
        if (chunk := builder.add(record)) is not None:
            yield chunk
    if (chunk := builder.flush()) is not None:
        yield chunk


def encode_records(records: Iterable[Mapping[str, Any]]) -> EncodedChunk:
    """Exactly one chunk holding all ``records`` (all with the same keys). Raises ``ValueError`` on
    an empty input or mixed key sets."""
    builder = ChunkBuilder(max_bytes=2**62, max_records=2**62)
    for record in records:
        if builder.add(record) is not None:
            raise ValueError("records in one chunk must all have the same fields in the same order")
    chunk = builder.flush()
    if chunk is None:
        raise ValueError("a chunk needs at least one record")
    return chunk


def tombstone(record_id: str, deleted_date: str | None = None) -> dict[str, Any]:
    """The record a tombstone chunk holds for a deleted id."""
    return {"Id": record_id, "deletedDate": deleted_date}


def _decompress(payload: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompressobj().decompress(payload)


def decode_chunk(payload: bytes) -> Iterator[dict[str, Any]]:
    """Yield the records of a chunk payload, fields in their original order.

    Raises ``UnknownFormatVersion`` for a newer payload version and ``IntegrityError`` for a payload
    that does not decode (sealed payloads are authenticated first, so this means a writer bug)."""
    try:
        text = _decompress(payload)
        head_line, _, body = text.partition(b"\n")
        if not head_line:
            raise IntegrityError("chunk payload is empty")
        head = json.loads(head_line)
        if not isinstance(head, dict) or head.get("format") != PAYLOAD_FORMAT:
            raise IntegrityError("chunk payload has an unknown format")
        if head.get("v") != PAYLOAD_VERSION:
            raise UnknownFormatVersion(
                f"chunk payload version {head.get('v')!r}; upgrade orgvault to read it"
            )
        fields = head["fields"]
        # JSON text never holds a raw newline, so the rows parse as one array: one call, not one per row.
        body = body.rstrip(b"\n")
        rows = json.loads(b"[" + body.replace(b"\n", b",") + b"]") if body else []
        width = len(fields)
        if any(not isinstance(row, list) or len(row) != width for row in rows):
            raise IntegrityError("chunk row does not match its field list")
    except (zstandard.ZstdError, ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"chunk payload does not decode: {type(exc).__name__}") from exc
    for row in rows:
        yield dict(zip(fields, row, strict=True))


def chunk_fields(payload: bytes) -> tuple[str, ...]:
    """The field list from a chunk payload's header line."""
    head_line, _, _ = _decompress(payload).partition(b"\n")
    return tuple(json.loads(head_line or b"{}").get("fields", ()))
