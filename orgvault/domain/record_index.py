"""Id indexes: find one record at a point in time without decrypting a whole object.

A snapshot's object is a list of layers (a base full read, then delta layers of changed records and
tombstones). To find id X at a snapshot:

1. one small sealed *range summary* per (object, set of chunks) gives every chunk's true min/max id
   (not the first/last id read, which depend on the order Salesforce returned rows in);
2. walking the layers newest first, only chunks whose range holds X are candidates, and each
   candidate's *id index* (a small sealed object: the chunk's sorted ids) says whether X is there;
3. the first chunk holding X decides: a tombstone chunk means deleted, a records chunk is decrypted
   and only the row(s) mentioning X are parsed.

So a lookup decrypts one data chunk whatever the number of snapshots (index objects are not data).

Index payload (format 3), before sealing: zstd(``"OVIX3\\n" + chunk_sha256 + "\\n" + width + "\\n" +
bloom length + "\\n" + Bloom filter of the ids + sorted 15-character ids, each padded to ``width``
bytes, concatenated``): fixed-width, so a lookup binary-searches the blob without parsing it. The chunk's sha256 inside binds the index to exactly one
sealed chunk: an index that does not name the chunk it is used for is ignored (and rebuilt), so a
stale or swapped index can cost time, never correctness — a hit is always confirmed in the
decrypted chunk. Summary payload: zstd(``"OVIS2\\n" + JSON {chunk_sha256: [min, max, count,
base64 Bloom filter (delta layers only)]}``).

The backup may write chunk indexes as it writes chunks (it already holds the records):
``orgvault.services.browse.write_chunk_index``; otherwise readers build them on first use.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import zstandard

INDEX_MAGIC = b"OVIX3"


def id15(record_id: str) -> str:
    """The case-sensitive 15-character form of a Salesforce id (the key used by indexes)."""
    return record_id[:15]


class _Slots:
    """The fixed-width id records of an index blob as a read-only sequence (for bisect)."""

    def __init__(self, blob: bytes, width: int) -> None:
        self.blob, self.width = blob, width

    def __len__(self) -> int:
        return len(self.blob) // self.width if self.width else 0

    def __getitem__(self, i: int) -> bytes:
        w = self.width
        return self.blob[i * w : (i + 1) * w]


@dataclass(frozen=True)
class IdIndex:
    """The sorted ids of one chunk, kept as one fixed-width blob: membership is a binary search over
    it, with nothing parsed or allocated per id (an index of 50,000 ids opens in microseconds)."""

    chunk_sha256: str
    blob: bytes = b""
    width: int = 15
    bloom: bytes = b""  # a Bloom filter of the same ids (built once, with the index)

    @staticmethod
    def of(chunk_sha256: str, ids: Iterable[str]) -> IdIndex:
        keys = sorted({i[:15] for i in ids})
        joined = "".join(keys)
        if len(joined) == 15 * len(keys) and joined.isascii():  # the usual case: no per-id encode/pad
            return IdIndex(chunk_sha256, joined.encode("ascii"), 15, bloom_of(keys))
        width = max((len(k.encode()) for k in keys), default=15)
        return IdIndex(chunk_sha256, b"".join(k.encode().ljust(width) for k in keys), width, bloom_of(keys))

    def __contains__(self, record_id: object) -> bool:
        if not isinstance(record_id, str):
            return False
        key = id15(record_id).encode().ljust(self.width)
        if len(key) != self.width:
            return False
        slots = _Slots(self.blob, self.width)
        i = bisect.bisect_left(slots, key)
        return i < len(slots) and slots[i] == key

    def __len__(self) -> int:
        return len(self.blob) // self.width if self.width else 0

    @property
    def ids(self) -> tuple[str, ...]:
        slots = _Slots(self.blob, self.width)
        return tuple(slots[i].decode().rstrip() for i in range(len(slots)))

    def first(self) -> str:
        return self.blob[: self.width].decode().rstrip()

    def last(self) -> str:
        return self.blob[-self.width :].decode().rstrip() if self.blob else ""


def record_ids(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Ids of records (tombstones included: they carry ``Id`` too), skipping rows without one."""
    out = []
    for r in records:
        rid = r.get("Id") or r.get("id")
        if isinstance(rid, str) and rid:
            out.append(rid)
    return out


def index_payload(chunk_sha256: str, ids: Iterable[str]) -> bytes:
    """The plaintext of a chunk's id index (to be sealed by the vault)."""
    idx = IdIndex.of(chunk_sha256, ids)
    raw = b"\n".join(
        [
            INDEX_MAGIC,
            chunk_sha256.encode(),
            str(idx.width).encode(),
            str(len(idx.bloom)).encode(),
            idx.bloom + idx.blob,
        ]
    )
    return zstandard.ZstdCompressor(level=3).compress(raw)


def index_for_chunk(chunk_sha256: str, records: Iterable[Mapping[str, Any]]) -> bytes:
    """What the backup calls right after sealing a chunk: the index payload for its records."""
    return index_payload(chunk_sha256, record_ids(records))


def parse_index(payload: bytes) -> IdIndex:
    """Inverse of :func:`index_payload`. Raises ``ValueError`` on anything else."""
    raw = zstandard.ZstdDecompressor().decompressobj().decompress(payload)
    magic, _, rest = raw.partition(b"\n")
    if magic != INDEX_MAGIC:
        raise ValueError("not an orgvault id index (bad magic)")
    sha, _, rest = rest.partition(b"\n")
    width, _, rest = rest.partition(b"\n")
    blen, _, body = rest.partition(b"\n")
    w, nb = int(width), int(blen)
    bloom, blob = body[:nb], body[nb:]
    if w <= 0 or len(blob) % w or len(bloom) != nb:
        raise ValueError("id index body is not a whole number of ids")
    return IdIndex(chunk_sha256=sha.decode(), blob=blob, width=w, bloom=bloom)


def ref_get(ref: Any, name: str, default: Any = None) -> Any:
    """Read a chunk-ref attribute whether refs are dataclasses or dicts."""
    if isinstance(ref, Mapping):
        return ref.get(name, default)
    return getattr(ref, name, default)


def may_contain(ref: Any, record_id: str) -> bool:
    """Whether the chunk's id range may contain ``record_id``. Without a range: maybe."""
    first, last = ref_get(ref, "first_id") or "", ref_get(ref, "last_id") or ""
    if not first or not last:
        return True
    key = id15(record_id)
    lo, hi = id15(first), id15(last)
    if lo > hi:  # not a min/max range (records were not read in id order): no pruning
        return True
    return lo <= key <= hi


def candidates(chunks: Sequence[Any], record_id: str, *, trust_ranges: bool = False) -> list[Any]:
    """Chunks of one layer that may hold ``record_id``, newest first: chunks apply in ``seq`` order
    (records upsert, tombstones delete), so the highest-seq chunk holding the id decides.

    ``trust_ranges`` prunes by ``[first_id, last_id]``; only valid when the writer records the
    min/max id of each chunk (not merely the first and last read)."""
    hits = [c for c in chunks if not trust_ranges or may_contain(c, record_id)]
    return sorted(hits, key=lambda c: int(ref_get(c, "seq", 0) or 0), reverse=True)


def decompress_payload(payload: bytes) -> bytes:
    """The JSON-lines text of a chunk payload (``orgvault.domain.chunks`` format)."""
    return zstandard.ZstdDecompressor().decompressobj().decompress(payload)


def find_in_rows(raw: bytes, record_id: str) -> dict[str, Any] | None:
    """The record with ``record_id`` from a decompressed chunk payload (a JSON header line with the
    field list, then one JSON array per row), parsing only the rows that mention the id instead of
    the whole chunk. ``None`` if absent."""
    import json

    head_line, _, body = raw.partition(b"\n")
    fields = json.loads(head_line)["fields"]
    try:
        pos = fields.index("Id")
    except ValueError:
        return None
    key = b'"' + id15(record_id).encode()
    start = 0
    while True:
        hit = body.find(key, start)
        if hit < 0:
            return None
        line_start = body.rfind(b"\n", 0, hit) + 1
        line_end = body.find(b"\n", hit)
        line_end = len(body) if line_end < 0 else line_end
        row = json.loads(body[line_start:line_end])
        value = row[pos] if isinstance(row, list) and len(row) > pos else None
        if isinstance(value, str) and id15(value) == id15(record_id):
            return dict(zip(fields, row, strict=False))
        start = line_end + 1


def find_in_payload(payload: bytes, record_id: str, *, piece: int = 1 << 20) -> dict[str, Any] | None:
    """:func:`find_in_rows` on a compressed payload, decompressing piece by piece and stopping at
    the row: on average half a chunk is decompressed, and memory stays at about one piece."""
    import json

    reader = zstandard.ZstdDecompressor().stream_reader(payload)
    key = b'"' + id15(record_id).encode()
    fields: list[str] | None = None
    pos = -1
    pending = b""
    while True:
        data = reader.read(piece)
        eof = not data
        buf = pending + data
        cut = len(buf) if eof else buf.rfind(b"\n") + 1
        complete, pending = buf[:cut], buf[cut:]
        start = 0
        if fields is None:
            nl = complete.find(b"\n")
            if nl < 0:
                if eof:
                    return None
                pending = complete + pending
                continue
            fields = json.loads(complete[:nl])["fields"]
            if "Id" not in fields:
                return None
            pos = fields.index("Id")
            start = nl + 1
        while True:
            hit = complete.find(key, start)
            if hit < 0:
                break
            line_start = complete.rfind(b"\n", 0, hit) + 1
            line_end = complete.find(b"\n", hit)
            line_end = len(complete) if line_end < 0 else line_end
            row = json.loads(complete[line_start:line_end])
            value = row[pos] if isinstance(row, list) and len(row) > pos else None
            if isinstance(value, str) and id15(value) == id15(record_id):
                return dict(zip(fields, row, strict=False))
            start = line_end + 1
        if eof:
            return None


BLOOM_BITS_PER_ID = 10  # about 1% false positives with 7 probes
BLOOM_PROBES = 7


def _probes(record_id: str, nbits: int) -> list[int]:
    import hashlib

    d = hashlib.blake2b(id15(record_id).encode(), digest_size=16).digest()
    h1, h2 = int.from_bytes(d[:8], "big"), int.from_bytes(d[8:], "big") | 1
    return [(h1 + i * h2) % nbits for i in range(BLOOM_PROBES)]


def bloom_of(ids: Iterable[str]) -> bytes:
    """A Bloom filter of ids (no false negatives, ~1% false positives). Sets exactly the bits of
    :func:`_probes` (``(h1 + i*h2) % n`` computed as ``(h1 % n + i*(h2 % n)) % n``, the same value),
    with the hashing and the probe loop inlined: about a third of the former time per id."""
    import hashlib

    keys = ids if isinstance(ids, list) else list(ids)
    nbits = max(64, len(keys) * BLOOM_BITS_PER_ID)
    bits = bytearray((nbits + 7) // 8)
    blake, frombytes, mask = hashlib.blake2b, int.from_bytes, (1 << 64) - 1
    for k in keys:
        v = frombytes(blake(k[:15].encode(), digest_size=16).digest(), "big")
        b = (v >> 64) % nbits
        step = ((v & mask) | 1) % nbits
        for _ in range(BLOOM_PROBES):
            bits[b >> 3] |= 1 << (b & 7)
            b += step
            if b >= nbits:
                b -= nbits
    return bytes(bits)


def bloom_bits(nbytes: int) -> int:
    """The number of bits :func:`bloom_of` hashed into for a filter of ``nbytes`` bytes: it sizes
    filters as ``max(64, ids * BLOOM_BITS_PER_ID)`` bits rounded up to whole bytes, so the bit count
    is 64 or the largest multiple of ``BLOOM_BITS_PER_ID`` that fits (exactly one candidate lies in
    the last byte). Reading with ``nbytes * 8`` instead (as before 2026-11-23) gave false negatives
    whenever the id count was not a multiple of 4; stored filters are unchanged by this fix."""
    top = nbytes * 8
    return max(64, top - top % BLOOM_BITS_PER_ID) if top > 64 else top


def bloom_may_contain(bloom: bytes, record_id: str) -> bool:
    if not bloom:
        return True
    nbits = bloom_bits(len(bloom))
    return all(bloom[b >> 3] & (1 << (b & 7)) for b in _probes(record_id, nbits))


Range = tuple[str, str, int, bytes]  # min id, max id, count, bloom filter (b"" = none)


def summary_payload(ranges: Mapping[str, Range]) -> bytes:
    """An object-level summary: chunk sha256 -> (min id, max id, count, Bloom filter of its ids),
    from the chunks' indexes. Delta chunks span the whole id range, so their filters (not their
    ranges) are what spare a lookup from opening one index per incremental."""
    import base64
    import json

    body = {k: [v[0], v[1], v[2], base64.b64encode(v[3]).decode()] for k, v in sorted(ranges.items())}
    return zstandard.ZstdCompressor(level=3).compress(b"OVIS2\n" + json.dumps(body).encode())


def parse_summary(payload: bytes) -> dict[str, Range]:
    import base64
    import json

    raw = zstandard.ZstdDecompressor().decompressobj().decompress(payload)
    magic, _, body = raw.partition(b"\n")
    if magic != b"OVIS2":
        raise ValueError("not an orgvault index summary")
    return {k: (str(v[0]), str(v[1]), int(v[2]), base64.b64decode(v[3])) for k, v in json.loads(body).items()}


def summary_key(chunk_shas: Sequence[str]) -> str:
    """Identifies a set of chunks (an object's layers at a snapshot): equal sets share a summary."""
    import hashlib

    return hashlib.sha256("\n".join(chunk_shas).encode()).hexdigest()
